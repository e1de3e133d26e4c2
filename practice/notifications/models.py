"""In-app notifications (the bell) and what was already notified, so nothing is said twice."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Notification(models.Model):
    """One message for one person of a firm (owner and admins get QuickBooks problems)."""

    firm = models.ForeignKey("firms.Firm", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True)
    url = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "read_at"], name="notif_user_unread")]

    def __str__(self) -> str:
        return self.title


class NoticeKey(models.Model):
    """What was last notified about one subject (e.g. "qbo-link:42" -> a hash of its error):
    the same error is never notified twice; a new one (or the same after a fix) is."""

    firm = models.ForeignKey("firms.Firm", on_delete=models.CASCADE, related_name="+")
    subject = models.CharField(max_length=100)
    key = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["firm", "subject"], name="notif_key_unique_subject")]

    def __str__(self) -> str:
        return f"{self.subject}={self.key}"

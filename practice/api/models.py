"""Personal API tokens: one user's key to the public JSON API (product.md §6)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from practice.common.models import TimeStampedModel


class ApiToken(TimeStampedModel):
    """Only the SHA-256 of the secret is stored: a leaked database copy cannot call the API.

    `prefix` (the first characters of the secret) is kept in clear so a person can tell their
    tokens apart in the profile page without the secret ever being shown again.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

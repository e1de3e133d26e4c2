"""Base models shared by the domain apps."""

from __future__ import annotations

from django.db import models


class TimeStampedModel(models.Model):
    """Adds created/updated timestamps."""

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class FirmScopedModel(TimeStampedModel):
    """A row that belongs to one firm (the tenant). Selectors always filter on `firm`."""

    firm = models.ForeignKey("firms.Firm", on_delete=models.CASCADE, related_name="+")

    class Meta:
        abstract = True

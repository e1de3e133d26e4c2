"""Client accounts: the firm's clients, which sync to QBO customers."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from practice.common.models import FirmScopedModel


class AccountKind(models.TextChoices):
    INDIVIDUAL = "individual", _("Individual")
    COMPANY = "company", _("Company")


class ClientAccount(FirmScopedModel):
    """A client of the firm. `name` is the display name matched against QBO customers."""

    firm = models.ForeignKey("firms.Firm", on_delete=models.CASCADE, related_name="accounts")
    name = models.CharField(_("name"), max_length=500)
    kind = models.CharField(
        _("kind"), max_length=16, choices=AccountKind.choices, default=AccountKind.INDIVIDUAL
    )
    email = models.EmailField(_("email"), blank=True)
    phone = models.CharField(_("phone"), max_length=30, blank=True)
    address_line1 = models.CharField(_("address"), max_length=500, blank=True)
    city = models.CharField(_("city"), max_length=255, blank=True)
    region = models.CharField(_("state / region"), max_length=255, blank=True)
    postal_code = models.CharField(_("postal code"), max_length=30, blank=True)
    country = models.CharField(_("country"), max_length=255, blank=True)
    archived = models.BooleanField(_("archived"), default=False)

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            models.Index(fields=["firm", "name"]),
            # QBO sync plans from what changed since its last run (quickbooks engine.plan_scope).
            models.Index(fields=["firm", "updated_at"], name="clients_account_changed"),
        ]

    def __str__(self) -> str:
        return self.name

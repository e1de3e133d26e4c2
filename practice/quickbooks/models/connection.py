"""Connection to a QBO company (realm): tokens, health, setup choices."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from practice.common.models import TimeStampedModel

__all__ = [
    "AccountScope",
    "Connection",
    "ConnectionStatus",
    "UnmatchedCustomer",
]


class ConnectionStatus(models.TextChoices):
    """Health of the link to QBO, separate from per-record sync errors (product.md §2)."""

    CONNECTED = "connected", _("Connected")
    NEEDS_RECONNECT = "needs_reconnect", _("Needs reconnect")
    DISCONNECTED = "disconnected", _("Disconnected")

    @property
    def colour(self) -> str:
        """Badge colour (CSS `badge-<colour>`), kept next to the label so templates never guess."""
        return _STATUS_COLOURS[self.value]


_STATUS_COLOURS = {
    ConnectionStatus.CONNECTED.value: "green",
    ConnectionStatus.NEEDS_RECONNECT.value: "amber",
    ConnectionStatus.DISCONNECTED.value: "grey",
}


class AccountScope(models.TextChoices):
    """Which client accounts sync."""

    WITH_ACTIVITY = "with_activity", _("Accounts with invoices or payments")
    ALL = "all", _("All accounts")


class UnmatchedCustomer(models.TextChoices):
    """What to do when no QBO customer has the account's name."""

    CREATE = "create", _("Create the customer in QuickBooks")
    ASK = "ask", _("Ask me")


# Columns owned by `practice.quickbooks.connection.oauth` (credentials and health). A plain `save()` of a
# Connection loaded earlier must not write them back: a refresh in another process may have
# rotated the tokens meanwhile, and writing the old refresh token back would lose the new one.
CREDENTIAL_FIELDS = frozenset(
    {
        "status",
        "access_token_enc",
        "access_token_expires_at",
        "refresh_token_enc",
        "refresh_token_expires_at",
        "token_version",
        "refresh_lock_owner",
        "refresh_lock_until",
        "pending_realm_id",
        "pending_company_name",
        "pending_tokens_enc",
    }
)


# Columns owned by the sync engine (`practice.quickbooks.sync.engine`): the per-realm lease and
# the company-level pause. They are only ever written with conditional UPDATEs; a plain `save()`
# of a Connection loaded before a run claimed (or renewed, or released) the lease must not undo
# that, or a second runner could start on the same realm.
ENGINE_FIELDS = frozenset(
    {
        "lease_owner",
        "lease_expires_at",
        "paused_code",
        "paused_message",
        "paused_at",
        "pause_retry_at",
        "pause_attempts",
    }
)


class Connection(TimeStampedModel):
    """A firm's link to one QBO company: credentials, health and the setup choices.

    One row per firm, kept after a disconnect so links and history survive and a reconnect to
    the same company resumes. Tokens are Fernet ciphertext (see `practice.quickbooks.connection.tokens`);
    they are written only through `practice.quickbooks.connection.oauth`, which bumps `token_version` on
    every change so concurrent refreshes can detect each other with a conditional UPDATE.
    """

    firm = models.OneToOneField("firms.Firm", on_delete=models.CASCADE, related_name="qbo_connection")
    realm_id = models.CharField(_("company id"), max_length=32, blank=True, db_index=True)
    company_name = models.CharField(_("company name"), max_length=255, blank=True)
    # Which environment the tokens belong to ("sandbox-local", "sandbox", "production").
    environment = models.CharField(_("environment"), max_length=32, blank=True)
    status = models.CharField(
        _("status"), max_length=20, choices=ConnectionStatus.choices, default=ConnectionStatus.DISCONNECTED
    )

    # Credentials: ciphertext only. Never rendered, logged or put in a URL.
    access_token_enc = models.TextField(blank=True, editable=False)
    access_token_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    refresh_token_enc = models.TextField(blank=True, editable=False)
    refresh_token_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Incremented on every token write; the single-flight refresh keys its conditional UPDATE on it.
    token_version = models.PositiveIntegerField(default=0, editable=False)
    # Cross-process refresh lock: who is refreshing and until when the claim holds.
    refresh_lock_owner = models.CharField(max_length=64, blank=True, editable=False)
    refresh_lock_until = models.DateTimeField(null=True, blank=True, editable=False)

    # A different company chosen on reconnect, parked until the owner confirms "start over".
    pending_realm_id = models.CharField(max_length=32, blank=True, editable=False)
    pending_company_name = models.CharField(max_length=255, blank=True, editable=False)
    pending_tokens_enc = models.TextField(blank=True, editable=False)

    last_error = models.TextField(_("last error"), blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    connected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    connected_at = models.DateTimeField(null=True, blank=True)
    disconnected_at = models.DateTimeField(null=True, blank=True)

    # Setup choices (product.md §2), editable by owner or admin.
    setup_completed_at = models.DateTimeField(null=True, blank=True)
    account_scope = models.CharField(
        _("accounts that sync"),
        max_length=20,
        choices=AccountScope.choices,
        default=AccountScope.WITH_ACTIVITY,
    )
    sync_start_date = models.DateField(_("sync start date"), null=True, blank=True)
    unmatched_customer = models.CharField(
        _("when no customer matches"),
        max_length=10,
        choices=UnmatchedCustomer.choices,
        default=UnmatchedCustomer.CREATE,
    )
    income_account_id = models.CharField(max_length=32, blank=True)
    income_account_name = models.CharField(_("service income account"), max_length=255, blank=True)
    deposit_account_id = models.CharField(max_length=32, blank=True)
    deposit_account_name = models.CharField(_("deposit payments to"), max_length=255, blank=True)
    fees_enabled = models.BooleanField(_("record processing fees"), default=False)
    fee_account_id = models.CharField(max_length=32, blank=True)
    fee_account_name = models.CharField(_("processing fee account"), max_length=255, blank=True)
    sync_manual_payments = models.BooleanField(_("sync manually created payments"), default=True)

    # Per-realm lease of the sync engine (architecture.md §3 step 1): one runner at a time.
    lease_owner = models.CharField(max_length=64, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)

    # Paused by a fault about the company or the app, not about one record (a lapsed
    # subscription, 6190; the app refused, 3100/3200 inside an answer; the app's keys refused,
    # invalid_client). Records keep their state and in-flight writes their requestid; the engine
    # tries again at `pause_retry_at` and clears the pause when QuickBooks answers normally.
    # Change data capture sweep (sync/drift.py): the `changedSince` of the next sweep (QBO's
    # server time of the last response, minus an overlap) and when the last sweep ended.
    cdc_cursor = models.DateTimeField(null=True, blank=True, editable=False)
    cdc_swept_at = models.DateTimeField(null=True, blank=True, editable=False)
    paused_code = models.CharField(max_length=32, blank=True, editable=False)
    paused_message = models.TextField(blank=True, editable=False)
    paused_at = models.DateTimeField(null=True, blank=True, editable=False)
    pause_retry_at = models.DateTimeField(null=True, blank=True, editable=False)
    pause_attempts = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        verbose_name = _("QuickBooks connection")
        verbose_name_plural = _("QuickBooks connections")
        constraints = [
            # One QuickBooks company, one firm (issue 12): two firms pushing into one set of books
            # would duplicate customers, and either firm's Disconnect would revoke the other's
            # access. oauth.connection_connect refuses it with a message; this catches the race.
            models.UniqueConstraint(
                fields=["environment", "realm_id"],
                condition=models.Q(status__in=["connected", "needs_reconnect"]) & ~models.Q(realm_id=""),
                name="quickbooks_one_live_connection_per_company",
            )
        ]

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Saves everything except `CREDENTIAL_FIELDS` (unless `update_fields` names them or the
        OAuth module flagged this instance, `_write_credentials`) and `ENGINE_FIELDS` (unless
        `update_fields` names them)."""
        write_credentials = getattr(self, "_write_credentials", False)
        self._write_credentials = False
        inserting = self._state.adding or bool(args) or bool(kwargs.get("force_insert"))
        if not inserting and kwargs.get("update_fields") is None:
            skip = ENGINE_FIELDS if write_credentials else CREDENTIAL_FIELDS | ENGINE_FIELDS
            kwargs["update_fields"] = [
                f.name for f in self._meta.concrete_fields if not f.primary_key and f.name not in skip
            ]
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return f"{self.company_name or self.realm_id or 'QuickBooks'} ({self.status})"

    def __repr__(self) -> str:
        # Keep tokens (even encrypted) out of reprs that end up in tracebacks and logs.
        return f"<Connection id={self.pk} firm={self.firm_id} realm={self.realm_id} status={self.status}>"

    @property
    def status_choice(self) -> ConnectionStatus:
        return ConnectionStatus(self.status)

    @property
    def status_colour(self) -> str:
        return self.status_choice.colour

    @property
    def is_connected(self) -> bool:
        return self.status == ConnectionStatus.CONNECTED

    @property
    def needs_reconnect(self) -> bool:
        return self.status == ConnectionStatus.NEEDS_RECONNECT

    @property
    def is_paused(self) -> bool:
        """Connected, but QuickBooks refused the company or the app: pushes wait, nothing is lost."""
        return bool(self.paused_code)

    @property
    def is_set_up(self) -> bool:
        return self.setup_completed_at is not None

    @property
    def has_pending_company(self) -> bool:
        return bool(self.pending_realm_id and self.pending_tokens_enc)

    def access_token_expires_within(self, seconds: float) -> bool:
        if self.access_token_expires_at is None:
            return True
        return (self.access_token_expires_at - timezone.now()).total_seconds() < seconds

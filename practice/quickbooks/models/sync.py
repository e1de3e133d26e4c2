"""Per-record sync state (SyncLink), attempt history (SyncAttempt) and per-realm run bookkeeping.

The engine is level-triggered (architecture.md §3): `SyncLink` is the *observed* state of one
app record in one QBO company; every run compares it with the app's data and pushes the
difference. `SyncAttempt` is the append-only history a person reads when something went wrong.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from practice.common.models import TimeStampedModel
from practice.quickbooks.statuses import Outcome, SyncStatus

__all__ = ["RealmName", "RealmSyncState", "SyncAttempt", "SyncLink"]

# What each SyncAttempt.operation means, for people reading the history.
OPERATION_LABELS = {
    "match": _("Match by name"),
    "create": _("Create customer"),
    "update": _("Update"),
    "link": _("Link by hand"),
    "reactivate": _("Reactivate and link"),
    "unsync": _("Unsync"),
    "sync": _("Sync requested"),
    "wait": _("Waiting"),
    "check": _("Check"),
    "create_item": _("Create item"),
    "update_item": _("Update item"),
    "deactivate_item": _("Make item inactive"),
    "create_invoice": _("Create invoice"),
    "match_number": _("Match by number"),
    "renumber": _("Renumber"),
    "void": _("Void"),
    "delete": _("Delete"),
    "retry": _("Retry requested"),
    "create_payment": _("Create payment"),
    "create_refund": _("Create refund"),
    "create_fee": _("Create processing fee expense"),
    "drift": _("Changed in QuickBooks"),
    "push_ours": _("Push ours again"),
    "accept_qbo": _("Accept QuickBooks' version"),
    "push_again": _("Push again"),
}


class SyncLink(TimeStampedModel):
    """One app record (`kind` + `local_id`) and the QBO entity it is linked to, or why it isn't.

    Idempotency fields: a write that may have reached QBO keeps `request_id` (deterministic,
    per logical operation), `batch_request_id` + `batch_bid` (the batch it went out in) and
    `pending_body` (exactly what was sent) until its outcome is recorded. A retry re-sends that
    same batch with the same requestid, so QBO replays the original answer instead of creating a
    second customer. They are written and committed *before* the request leaves.
    """

    firm = models.ForeignKey("firms.Firm", on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(
        "quickbooks.Connection", on_delete=models.CASCADE, related_name="sync_links"
    )
    kind = models.CharField(max_length=32)
    local_id = models.BigIntegerField()
    status = models.CharField(
        max_length=16, choices=SyncStatus.choices, default=SyncStatus.NOT_SYNCED, db_index=True
    )

    # What it is linked to in QBO.
    qbo_id = models.CharField(max_length=32, blank=True)
    qbo_sync_token = models.CharField(max_length=32, blank=True)
    qbo_name = models.CharField(max_length=500, blank=True)
    pushed_hash = models.CharField(max_length=64, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)

    # The write in progress (empty when nothing is pending).
    pending_op = models.CharField(max_length=16, blank=True)
    desired_name = models.CharField(max_length=500, blank=True)
    target_qbo_id = models.CharField(max_length=32, blank=True)
    op_seq = models.PositiveIntegerField(default=0)
    request_id = models.CharField(max_length=50, blank=True)
    batch_request_id = models.CharField(max_length=36, blank=True, db_index=True)
    batch_bid = models.CharField(max_length=10, blank=True)
    pending_body = models.JSONField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    # Retries of transient failures.
    attempts = models.PositiveIntegerField(default=0)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)

    # Why it needs a person (status Error).
    error_kind = models.CharField(max_length=32, blank=True)
    error_code = models.CharField(max_length=16, blank=True)
    error_message = models.TextField(blank=True)
    error_detail = models.TextField(blank=True)
    candidates = models.JSONField(default=list, blank=True)
    # Hash of the local fields the decision was made on: when they change (say the account is
    # renamed to fix a rejected name) the engine decides again instead of keeping the old error.
    input_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "kind", "local_id"], name="qbo_synclink_unique_record"
            )
        ]
        indexes = [
            models.Index(fields=["firm", "kind", "local_id"], name="qbo_synclink_firm_record"),
            models.Index(fields=["connection", "status", "next_retry_at"], name="qbo_synclink_due"),
            # A run planned from what changed reads a kind's links that still need work, and
            # those a person or a run touched since the last plan (engine.plan_scope).
            models.Index(fields=["connection", "kind", "status"], name="qbo_synclink_kind_status"),
            models.Index(fields=["connection", "kind", "updated_at"], name="qbo_synclink_kind_touched"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}#{self.local_id} {self.status}"


class SyncAttempt(models.Model):
    """One attempt to sync one record: what was tried and how it ended (never updated)."""

    link = models.ForeignKey(SyncLink, on_delete=models.CASCADE, related_name="attempts_log")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    operation = models.CharField(_("operation"), max_length=24)
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    qbo_id = models.CharField(_("QBO Id"), max_length=32, blank=True)
    request_id = models.CharField(_("request id"), max_length=50, blank=True)
    fault_code = models.CharField(_("fault code"), max_length=16, blank=True)
    fault_detail = models.TextField(_("fault detail"), blank=True)
    message = models.TextField(_("message"), blank=True)
    actor = models.CharField(max_length=254, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["link", "-created_at"], name="qbo_attempt_link_time")]

    def __str__(self) -> str:
        return f"{self.operation} {self.outcome}"

    @property
    def operation_label(self) -> str:
        return str(OPERATION_LABELS.get(self.operation, self.operation))

    @property
    def message_display(self) -> str:
        """The message in the reader's language (practice/quickbooks/history_text.py)."""
        from practice.quickbooks.history_text import translate

        return translate(self.message)


class RealmSyncState(models.Model):
    """Run bookkeeping per connection: de-duplicates queued runs and records the last run.

    `queued_at` is set with a conditional UPDATE when a run is enqueued and cleared when the run
    starts, so a burst of changes enqueues one run, and a change made during a run enqueues the
    next one. The sweep clears a `queued_at` that is too old (a lost task).
    """

    connection = models.OneToOneField(
        "quickbooks.Connection", on_delete=models.CASCADE, primary_key=True, related_name="sync_state"
    )
    queued_at = models.DateTimeField(null=True, blank=True)
    # When the delayed run for the realm's earliest waiting retry is due (one scheduled at a time).
    retry_run_at = models.DateTimeField(null=True, blank=True)
    last_run_started_at = models.DateTimeField(null=True, blank=True)
    last_run_finished_at = models.DateTimeField(null=True, blank=True)
    last_run_summary = models.JSONField(default=dict, blank=True)
    # A run that could not finish (a 429, 5xx or timeout while reading the realm to plan, or a
    # crash): how many in a row, when the next one is due, and why. Cleared by a run that ends.
    run_failures = models.PositiveIntegerField(default=0)
    run_retry_at = models.DateTimeField(null=True, blank=True)
    run_error = models.TextField(blank=True)
    # Planning from what changed (engine.plan_scope): the time the last complete run started
    # planning. The next run looks at records changed since then (less an overlap), plus the
    # links that still need work; None, or a full walk older than QBO_FULL_PLAN_SECONDS, walks
    # every record (the safety net).
    planned_through = models.DateTimeField(null=True, blank=True)
    full_plan_at = models.DateTimeField(null=True, blank=True)
    # The connection's sync settings the last plan ran with (engine.plan_settings_fingerprint):
    # a change of them makes the next run walk every record.
    plan_settings = models.CharField(max_length=64, blank=True)
    # The realm's name index (`RealmName`): QBO's time of the last refresh of its customers
    # (None: read the lists whole), and of vendors and employees.
    names_read_at = models.DateTimeField(null=True, blank=True)
    others_read_at = models.DateTimeField(null=True, blank=True)
    # Facts about the realm kept between runs (Preferences, payment methods, customer types,
    # classes, departments), each {"value": ..., "read_at": iso}; refreshed when the CDC sweep or
    # a webhook says they changed, or when older than their maximum age (sync/realm_facts.py).
    realm_facts = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"sync state for connection {self.connection_id}"


class RealmName(models.Model):
    """One customer, vendor or employee of the realm, as last read: the name index kept between
    runs (sync/kinds/names.py), so deciding one new account does not re-read the realm's lists.

    `normalized` is the exact-match key and `loose` the near-match key (kinds/matching.py); both
    are indexed so a run loads only the names its accounts could match.
    """

    connection = models.ForeignKey("quickbooks.Connection", on_delete=models.CASCADE, related_name="+")
    entity = models.CharField(max_length=16)  # Customer, Vendor, Employee
    qbo_id = models.CharField(max_length=32)
    name = models.CharField(max_length=500)
    normalized = models.CharField(max_length=500)
    loose = models.CharField(max_length=500)
    active = models.BooleanField(default=True)
    sync_token = models.CharField(max_length=32, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "entity", "qbo_id"], name="qbo_realm_name_once")
        ]
        indexes = [
            models.Index(fields=["connection", "normalized"], name="qbo_realm_name_exact"),
            models.Index(fields=["connection", "loose"], name="qbo_realm_name_loose"),
        ]

    def __str__(self) -> str:
        return f"{self.entity} {self.qbo_id} {self.name}"

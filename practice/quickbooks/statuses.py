"""The sync status vocabulary: value, label and badge colour in one place (NetBox ChoiceSet style).

Templates never hard-code a label or a colour; they ask `status_colour()` / `SyncStatus(x).label`.
The English labels are the gettext msgids the Spanish catalogue translates
(Synced→Sincronizada, Not synced→No sincronizada, Skipped→Omitida, Error→Error,
Syncing→Sincronización).
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class SyncStatus(models.TextChoices):
    SYNCED = "synced", _("Synced")
    NOT_SYNCED = "not_synced", _("Not synced")
    SKIPPED = "skipped", _("Skipped")
    ERROR = "error", _("Error")
    SYNCING = "syncing", _("Syncing")

    @property
    def colour(self) -> str:
        """Badge colour (CSS `badge-<colour>`), next to the label so templates never guess."""
        return STATUS_COLOURS[self.value]


# Badge classes defined in app.css (.badge-<colour>).
STATUS_COLOURS: dict[str, str] = {
    SyncStatus.SYNCED: "green",
    SyncStatus.NOT_SYNCED: "grey",
    SyncStatus.SKIPPED: "amber",
    SyncStatus.ERROR: "red",
    SyncStatus.SYNCING: "blue",
}

# Display order for filters and counts.
STATUS_ORDER: tuple[str, ...] = (
    SyncStatus.SYNCED,
    SyncStatus.SYNCING,
    SyncStatus.ERROR,
    SyncStatus.NOT_SYNCED,
    SyncStatus.SKIPPED,
)


def status_colour(status: str) -> str:
    return STATUS_COLOURS.get(status, "grey")


def status_label(status: str) -> str:
    try:
        return str(SyncStatus(status).label)
    except ValueError:
        return status


class Outcome(models.TextChoices):
    """What one attempt (SyncAttempt) ended with."""

    SUCCESS = "success", _("Succeeded")
    REJECTED = "rejected", _("Rejected")
    RETRY = "retry", _("Will retry")
    ERROR = "error", _("Needs attention")
    INFO = "info", _("Recorded")


# Error kinds of drift: a linked record changed inside QuickBooks (sync/drift.py). A record in
# one of these waits for a person's choice: the planners do not decide it again on a local edit,
# the engine drops a write planned for it, and "Retry all" leaves it alone (product.md: nothing
# is pushed blindly over a change made in QuickBooks).
CUSTOMER_DRIFT = frozenset({"customer_inactive", "customer_deleted", "customer_gone", "customer_merged"})
RECORD_DRIFT = frozenset({"changed_in_qbo", "voided_in_qbo", "deleted_in_qbo"})
DRIFT_ERRORS = CUSTOMER_DRIFT | RECORD_DRIFT


def held_by_drift(status: str, error_kind: str) -> bool:
    """True for a record in Error because it changed in QuickBooks (see DRIFT_ERRORS)."""
    return status == SyncStatus.ERROR and error_kind in DRIFT_ERRORS


# Which fixes (actions.DRIFT_ACTIONS) a record in each drift Error offers, besides Unsync.
DRIFT_FIXES: dict[str, tuple[str, ...]] = {
    "changed_in_qbo": ("push_ours", "accept_qbo"),
    "voided_in_qbo": ("push_again",),
    "deleted_in_qbo": ("push_again",),
}
# Their button labels (gettext msgids; translated where shown).
DRIFT_FIX_LABELS = {
    "push_ours": _("Push ours again"),
    "accept_qbo": _("Accept QuickBooks' version"),
    "push_again": _("Push again"),
}

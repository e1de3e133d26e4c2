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

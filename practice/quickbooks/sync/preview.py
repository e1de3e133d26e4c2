"""The first-sync preview: what the next run would do with the firm's accounts, without writing.

It reads the whole realm (every customer, vendor and employee), which for a large company is
many paced queries and may wait out a 429: too long for a web request. The setup page therefore
enqueues `preview_task` and polls for its result (web/sync_views.py `sync_preview`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from django.utils import timezone
from django_tasks import task

from practice.clients.models import ClientAccount
from practice.quickbooks.connection.errors import QBOError, ReauthRequired
from practice.quickbooks.models import Connection, SyncLink
from practice.quickbooks.statuses import SyncStatus
from practice.quickbooks.sync import engine
from practice.quickbooks.sync.kinds.customers import KIND, _read_index, eligible_account_ids
from practice.quickbooks.sync.kinds.matching import Decision, decide, normalize

if TYPE_CHECKING:
    from practice.quickbooks.connection.client import QBOClient


@dataclass
class SyncPreview:
    """What the next run would do with accounts (for the setup preview): nothing is written."""

    link_by_name: list[str]
    create: list[str]
    need_a_person: list[tuple[str, str]]  # (account name, message)
    already_linked: int
    skipped: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyncPreview:
        return cls(
            link_by_name=list(data["link_by_name"]),
            create=list(data["create"]),
            need_a_person=[(str(name), str(message)) for name, message in data["need_a_person"]],
            already_linked=int(data["already_linked"]),
            skipped=int(data["skipped"]),
        )

    def as_counts(self) -> dict[str, int]:
        return {
            "link_by_name": len(self.link_by_name),
            "create": len(self.create),
            "need_a_person": len(self.need_a_person),
            "already_linked": self.already_linked,
            "skipped": self.skipped,
        }


def account_sync_preview(*, connection: Connection, client: QBOClient | None = None) -> SyncPreview:
    """Decide every eligible, unlinked account against the realm's names, without writing.

    Reads the customer list (1,000 per query), vendors and employees: the same reads and rules
    as a run, so the preview and the first sync agree.
    """
    from practice.quickbooks.connection.client import QBOClient

    ctx = engine.RunContext(
        connection=connection, client=client or QBOClient(connection), owner="preview", now=timezone.now()
    )
    eligible = eligible_account_ids(connection)
    links = {link.local_id: link for link in SyncLink.objects.filter(connection=connection, kind=KIND)}
    taken = {link.qbo_id for link in links.values() if link.qbo_id}
    preview = SyncPreview([], [], [], 0, 0)
    create_when_missing = connection.unmatched_customer != "ask"
    claimed: set[str] = set()
    for account in ClientAccount.objects.filter(firm_id=connection.firm_id, archived=False).order_by("name"):
        link = links.get(account.pk)
        if link is not None and link.status == SyncStatus.SKIPPED:
            preview.skipped += 1
            continue
        if link is not None and link.qbo_id:
            preview.already_linked += 1
            continue
        if link is None and eligible is not None and account.pk not in eligible:
            continue
        result = decide(
            account.name, _read_index(ctx), create_when_missing=create_when_missing, taken_ids=taken
        )
        if result.decision == Decision.LINK and result.customer is not None:
            taken.add(result.customer.id)
            preview.link_by_name.append(account.name)
        elif result.decision == Decision.CREATE and normalize(account.name) not in claimed:
            claimed.add(normalize(account.name))
            preview.create.append(account.name)
        else:
            message = result.message or "Another account has the same name."
            preview.need_a_person.append((account.name, message))
    return preview


# What `preview_task` returns when QBO could not be read (the view words them for a person).
PREVIEW_NOT_CONNECTED = "not_connected"
PREVIEW_UNAVAILABLE = "unavailable"


@task()
def preview_task(connection_id: int) -> dict[str, Any]:
    """The preview, computed by a worker: {"connection_id", "preview"} or {"connection_id", "error"}.

    A fault is a result, not a task failure: the person sees why and may ask again.
    """
    connection = Connection.objects.get(pk=connection_id)
    try:
        preview = account_sync_preview(connection=connection)
    except ReauthRequired:
        return {"connection_id": connection_id, "error": PREVIEW_NOT_CONNECTED}
    except QBOError:
        return {"connection_id": connection_id, "error": PREVIEW_UNAVAILABLE}
    return {"connection_id": connection_id, "preview": preview.as_dict()}

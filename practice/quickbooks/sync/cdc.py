"""The CDC sweep (issue 16 item 2): QBO's change data capture read per connection, so a change
made inside QuickBooks is noticed even when its webhook is lost (qbo-api.md §9.3-9.4).

`sweep_connection(connection_id)`:

1. Only for a connected, set-up connection that is not paused (a paused or needs-reconnect
   connection is left alone; its cursor waits).
2. First sweep: the cursor starts now (less the overlap). History before the app looked is not
   drift.
3. `GET /cdc?entities=<CDC_ENTITIES>&changedSince=<cursor>` (Customer, Invoice, Payment,
   RefundReceipt, Purchase, Item, Vendor, Employee, and for the realm facts Preferences,
   PaymentMethod, Class, Department) through the client (its pacer, its token refresh). QBO
   answers at most 1,000 objects with no paging: a full answer is split in halves of time
   (`_split`), the newer half asked again (itself split while full). The older half is taken
   from the full answer, which covers everything before the newest stamp it holds (QBO answers
   the oldest changes first, as the sandbox does; what QBO keeps past 1,000 is unverified, §9.4),
   the rest of it asked from that stamp (`_older`). When a single second holds 1,000 changes,
   and when the cursor is older than 29 days (QBO keeps 30), every linked record is re-read
   instead (`_full_read`).
4. A notice is stored for each changed object the app has linked, unless it carries the
   SyncToken the app's link already holds (the app's own write) (`dedupe_key`
   entity|Id|SyncToken, or |Deleted), the reconciliation cache is marked stale for the
   customers the payload touched, the cursor moves to QBO's `time` minus a 5-minute overlap
   (changes committed while the answer was made are read twice, never missed; the notices'
   keys make the second time a no-op), and the notices are applied (`drift.apply_change_notices`).
   A change of Preferences, PaymentMethod, Class or Department marks the realm facts kept from
   them stale (`realm_facts.note_changes`: the next run reads them again); a first sweep and a
   full read mark them all.
5. Every Customer, Vendor and Employee in the answer is stored in the realm's name index
   (`RealmName`, a deleted one removed), and a complete answer moves the index's refresh times
   (`names.note_changes`): vendors and employees are kept current this way only.

`tasks.sweep_now` enqueues `cdc_sweep` for each due connection every `QBO_CDC_INTERVAL_SECONDS`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from practice.quickbooks.connection.errors import QBOError
from practice.quickbooks.models import ChangeNotice, Connection, SyncLink
from practice.quickbooks.statuses import SyncStatus
from practice.quickbooks.sync import drift, realm_facts
from practice.quickbooks.sync.kinds import names

if TYPE_CHECKING:
    from practice.quickbooks.connection.client import QBOClient

logger = logging.getLogger("practice.quickbooks.cdc")

# The synced records' entities; Vendor and Employee, which are not drift (nothing links them)
# but keep the realm's name index (kinds/names.py) true, so a run refreshes only customers; and
# those the realm's kept facts come from (realm_facts.py).
CDC_ENTITIES = (
    *("Customer", "Invoice", "Payment", "RefundReceipt", "Purchase", "Item", "Vendor", "Employee"),
    *realm_facts.CDC_ENTITIES,
)
MAX_OBJECTS = 1000  # QBO's cap per CDC answer (§9.3)
OVERLAP = timedelta(minutes=5)
MAX_AGE = timedelta(days=29)  # QBO keeps 30 days; past this the linked records are read instead
MIN_WINDOW = timedelta(seconds=1)  # MetaData stamps have whole seconds: no finer split helps
ID_CHUNK = 500


def interval_seconds() -> float:
    return float(getattr(settings, "QBO_CDC_INTERVAL_SECONDS", 7200))


@dataclass
class SweepResult:
    reason: str
    requests: int = 0
    objects: int = 0
    notices: int = 0
    applied: int = 0
    full_read: bool = False


def may_sweep(connection: Connection) -> bool:
    return connection.is_connected and connection.is_set_up and not connection.is_paused


def sweep_connection(
    connection_id: int, *, client: QBOClient | None = None, apply: bool = True
) -> SweepResult:
    """One CDC sweep of one connection (see the module docstring)."""
    from practice.quickbooks.connection.client import QBOClient

    connection = Connection.objects.filter(pk=connection_id).select_related("firm").first()
    if connection is None:
        return SweepResult(reason="gone")
    if not may_sweep(connection):
        return SweepResult(reason="paused" if connection.is_paused else f"connection {connection.status}")
    now = timezone.now()
    cursor = connection.cdc_cursor
    if cursor is None:
        # History is not drift: start from now (less the overlap, for clocks apart and QBO's
        # whole-second stamps; what was linked meanwhile carries its current SyncToken anyway).
        Connection.objects.filter(pk=connection_id).update(cdc_cursor=now - OVERLAP, cdc_swept_at=now)
        # Facts read before the cursor began could have changed unseen: read them again.
        realm_facts.mark_all_stale(connection_id)
        return SweepResult(reason="started")
    client = client or QBOClient(connection)
    result = SweepResult(reason="swept")
    try:
        if now - cursor > MAX_AGE:
            result.full_read = True
            new_cursor = now - OVERLAP
            result.notices = _full_read(connection, now)
            realm_facts.mark_all_stale(connection_id)
        else:
            objects, server_time, complete = _fetch(client, cursor, result)
            result.objects = len(objects)
            new_cursor = max(cursor, server_time - OVERLAP)
            result.notices = _store(connection, objects)
            _mark_stale(connection, objects)
            names.note_changes(connection, objects, since=cursor, answered_at=server_time, complete=complete)
            realm_facts.note_changes(connection_id, [(e, realm_facts.version(e, b)) for e, b in objects])
            if not complete:
                result.full_read = True
                result.notices += _full_read(connection, now)
                realm_facts.mark_all_stale(connection_id)
    except QBOError as e:
        # A 429, QBO away, reconnect needed: the cursor stays, the next sweep asks again.
        logger.warning("qbo.cdc.failed", extra={"connection": connection_id, "error": str(e)})
        return SweepResult(reason="failed", requests=result.requests)
    Connection.objects.filter(pk=connection_id).update(cdc_cursor=new_cursor, cdc_swept_at=timezone.now())
    if apply:
        result.applied = drift.apply_change_notices(connection_id, client=client)
    logger.info(
        "qbo.cdc.swept",
        extra={
            "connection": connection_id,
            "requests": result.requests,
            "objects": result.objects,
            "notices": result.notices,
            "full_read": result.full_read,
        },
    )
    return result


# --------------------------------------------------------------------------------------------
# Reading


def _stamp(body: dict[str, Any]) -> datetime | None:
    text = str((body.get("MetaData") or {}).get("LastUpdatedTime") or "")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def _server_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return timezone.now()


Objects = list[tuple[str, dict[str, Any]]]


def _fetch(client: QBOClient, since: datetime, result: SweepResult) -> tuple[Objects, datetime, bool]:
    """Every change since `since`: (objects, QBO's time, complete)."""
    page = client.cdc(CDC_ENTITIES, since)
    result.requests += 1
    server_time = _server_time(page.time)
    if len(page.objects) < MAX_OBJECTS:
        return page.objects, server_time, True
    objects, complete = _split(client, since, server_time, page.objects, result)
    return objects, server_time, complete


def _split(
    client: QBOClient, since: datetime, until: datetime, full: Objects, result: SweepResult
) -> tuple[Objects, bool]:
    """A full answer for [since, until]: ask again from the middle (split again while full) for
    the newer half, and take the older half from the full answer (`_older`)."""
    # changedSince goes out in whole seconds, like QBO's stamps: the middle is one too, so the
    # two halves meet exactly (nothing read twice, nothing between them).
    middle = (since + (until - since) / 2).replace(microsecond=0)
    if middle <= since or until - middle < MIN_WINDOW:
        # Too short to halve (stamps have whole seconds): page forward from the newest stamp
        # instead, up to anything QBO may add while we read.
        return _older(client, since, until + timedelta(days=1), full, result)
    page = client.cdc(CDC_ENTITIES, middle)
    result.requests += 1
    if len(page.objects) >= MAX_OBJECTS:
        newer, newer_complete = _split(client, middle, until, page.objects, result)
    else:
        newer, newer_complete = page.objects, True
    older, older_complete = _older(client, since, middle, full, result)
    return older + newer, newer_complete and older_complete


def _older(
    client: QBOClient, since: datetime, middle: datetime, full: Objects, result: SweepResult
) -> tuple[Objects, bool]:
    """The changes in [since, middle) from `full`, QBO's full answer from `since`. A full answer
    holds the oldest changes, so it covers everything before the newest stamp in it; when that
    stamp is still before the middle, the rest is asked from there (and so on)."""
    stamps = [_stamp(body) or middle for _entity, body in full]
    newest = max(stamps)
    if newest >= middle:
        return [o for o, at in zip(full, stamps, strict=True) if at < middle], True
    if newest <= since:
        return full, False  # a single second holds 1,000 changes
    kept = [o for o, at in zip(full, stamps, strict=True) if at < newest]
    page = client.cdc(CDC_ENTITIES, newest)
    result.requests += 1
    if len(page.objects) < MAX_OBJECTS:
        rest = [(e, b) for e, b in page.objects if (_stamp(b) or middle) < middle]
        return kept + rest, True
    more, complete = _older(client, newest, middle, page.objects, result)
    return kept + more, complete


# --------------------------------------------------------------------------------------------
# Storing notices


def _linked_ids(connection: Connection, entity: str, ids: Sequence[str]) -> dict[str, set[str]]:
    """{Id: the SyncTokens the app's links hold} of the linked ones among `ids`."""
    found: dict[str, set[str]] = {}
    for start in range(0, len(ids), ID_CHUNK):
        for qbo_id, token in (
            SyncLink.objects.filter(
                connection=connection,
                kind__in=drift.ENTITY_KINDS[entity],
                qbo_id__in=ids[start : start + ID_CHUNK],
            )
            .exclude(status=SyncStatus.SKIPPED)
            .values_list("qbo_id", "qbo_sync_token")
        ):
            found.setdefault(qbo_id, set()).add(token)
    return found


def _store(connection: Connection, objects: Objects) -> int:
    """A notice per changed object the app has linked; returns how many were new."""
    by_entity: dict[str, list[str]] = {}
    for entity, body in objects:
        if entity in drift.ENTITY_KINDS and body.get("Id") is not None:
            by_entity.setdefault(entity, []).append(str(body["Id"]))
    linked = {entity: _linked_ids(connection, entity, sorted(set(ids))) for entity, ids in by_entity.items()}
    notices: dict[str, ChangeNotice] = {}
    for entity, body in objects:
        obj_id = str(body.get("Id", ""))
        tokens = linked.get(entity, {}).get(obj_id)
        if tokens is None:
            continue
        deleted = str(body.get("status", "")) == "Deleted"
        version = "Deleted" if deleted else str(body.get("SyncToken", ""))
        if not deleted and tokens == {version}:
            # The version the app wrote (or last read): its own change, not drift. Storing it
            # would only make the drift check read it back to find that out.
            continue
        key = f"{entity}|{obj_id}|{version}"
        notices[key] = ChangeNotice(
            connection=connection,
            entity=entity,
            entity_id=obj_id,
            operation="Delete" if deleted else "Update",
            changed_at=_stamp(body),
            source="cdc",
            dedupe_key=key,
        )
    return _insert(connection, list(notices.values()))


def _insert(connection: Connection, notices: list[ChangeNotice]) -> int:
    if not notices:
        return 0
    before = ChangeNotice.objects.filter(connection=connection).count()
    ChangeNotice.objects.bulk_create(notices, ignore_conflicts=True, batch_size=500)
    return ChangeNotice.objects.filter(connection=connection).count() - before


def _full_read(connection: Connection, now: datetime) -> int:
    """The cursor is too old for CDC (or an answer was cut): a notice for every linked record,
    so the drift check re-reads them all (in pages of `drift.READ_PAGE`)."""
    notices = [
        ChangeNotice(
            connection=connection,
            entity=drift.KIND_ENTITY[kind],
            entity_id=qbo_id,
            operation="Update",
            changed_at=None,
            source="cdc",
            dedupe_key=f"full {now.isoformat()}|{drift.KIND_ENTITY[kind]}|{qbo_id}",
        )
        for kind, qbo_id in SyncLink.objects.filter(connection=connection, kind__in=list(drift.KIND_ENTITY))
        .exclude(qbo_id="")
        .exclude(status=SyncStatus.SKIPPED)
        .values_list("kind", "qbo_id")
        .distinct()
    ]
    return _insert(connection, notices)


def _mark_stale(connection: Connection, objects: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """The reconciliation cache of the customers whose totals these changes touched."""
    touched: set[str] = set()
    for entity, body in objects:
        if entity not in drift.BALANCE_ENTITIES:
            continue
        if entity == "Customer":
            touched.add(str(body.get("Id", "")))
            continue
        ref = body.get("CustomerRef")
        if not isinstance(ref, dict) or not ref.get("value"):
            drift.mark_balances_stale(connection, None)  # a deleted one says not whose it was
            return
        touched.add(str(ref["value"]))
    if touched:
        drift.mark_balances_stale(connection, touched)


# --------------------------------------------------------------------------------------------
# Which connections are due


def due_connections(now: datetime) -> list[int]:
    """Connected, set-up, unpaused connections whose last sweep is older than the interval."""
    every = interval_seconds()
    if every <= 0:
        return []
    return list(
        Connection.objects.filter(status="connected", setup_completed_at__isnull=False, paused_code="")
        .filter(Q(cdc_swept_at__isnull=True) | Q(cdc_swept_at__lte=now - timedelta(seconds=every)))
        .values_list("pk", flat=True)
    )


def claim(connection_id: int, now: datetime) -> bool:
    """Mark the connection swept now, unless another sweep did it first (one enqueue per interval)."""
    every = timedelta(seconds=interval_seconds())
    return (
        Connection.objects.filter(pk=connection_id)
        .filter(Q(cdc_swept_at__isnull=True) | Q(cdc_swept_at__lte=now - every))
        .update(cdc_swept_at=now)
        == 1
    )

"""The realm's name index kept between runs (issue 13 item 7): `RealmName` rows, one per QBO
customer, vendor and employee, so deciding one new account neither reads the realm's lists nor
loads them into memory.

- `index_for(ctx, names)`: the `NameIndex` that decides exactly these account names as the whole
  lists would. `matching.decide` looks at three things: the customers whose exact key
  (`normalize`) is the name's, the vendors and employees with that exact key, and the customers
  whose near-match key (`loose_key`) is the name's. Those are the rows whose `normalized` or
  (customers only) `loose` column is one of the names' keys: one indexed statement per 500
  names, whatever the size of the realm. Lists are kept in QBO's order (by Id, vendors before
  employees), so "the first inactive match" or "the first clash" is the one a full read names.
- `refresh(ctx)`, once per run, before the first decision: a realm never read (or read more than
  29 days ago) has its three lists read whole and stored; otherwise one query,
  `MetaData.LastUpdatedTime >= <names_read_at - 5 min>`, brings the customers changed since (the
  documented way to sync a list, qbo-api.md §3), and `names_read_at` moves to QBO's `time` of
  that answer. Vendors and employees are not re-read per run: the CDC sweep keeps them (and
  customers) current (`note_changes`), and a create QBO refuses with 6240 looks the name up.
- What else the app learns keeps the rows true: a create or reactivation answered
  (`note_written`), a name looked up after 6240 or before a re-sent create (`remember`), the drift
  check's reads (a customer gone or merged away is removed: `forget`), and every Customer, Vendor
  and Employee in a CDC answer (a deleted one is removed).

A query cannot see a customer merged away (QBO removes it); the CDC sweep and the drift check do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from practice.quickbooks.models import Connection, RealmName, RealmSyncState
from practice.quickbooks.sync.kinds.matching import NameIndex, QBOName, loose_key, normalize

if TYPE_CHECKING:
    from practice.quickbooks.sync import engine

logger = logging.getLogger("practice.quickbooks.sync")

ENTITIES = ("Customer", "Vendor", "Employee")
OTHERS = ("Vendor", "Employee")
# QBO's CDC keeps 30 days; a list not refreshed for longer is read whole again (the safety net
# for changes nobody told us about: a lost sweep, a realm left alone for a month).
MAX_AGE = timedelta(days=29)
# The refresh asks from a little before the last answer's time: a change committed while QBO was
# answering is read twice, never missed.
OVERLAP = timedelta(minutes=5)
KEY_CHUNK = 500  # keys per IN (...): well under SQLite's and PostgreSQL's parameter limits
_MAX = 500  # RealmName's column lengths (QBO caps DisplayName at 500)
_CACHE = "names"


@dataclass
class _Loaded:
    """The part of the index a run has loaded: the keys asked for and the rows they brought."""

    keys: set[str] = field(default_factory=set)
    loose: set[str] = field(default_factory=set)
    everything: bool = False
    rows: dict[tuple[str, str], QBOName] = field(default_factory=dict)
    index: NameIndex | None = None

    def add(self, name: QBOName) -> None:
        self.rows[(name.entity, name.id)] = name
        self.index = None

    def built(self) -> NameIndex:
        if self.index is None:
            # QBO's order of a full read: customers by Id, then vendors, then employees.
            ordered = sorted(self.rows.values(), key=_order)
            self.index = NameIndex.build(
                (n for n in ordered if n.entity == "Customer"),
                (n for n in ordered if n.entity != "Customer"),
            )
        return self.index


def _order(name: QBOName) -> tuple[int, int, str]:
    return (ENTITIES.index(name.entity) if name.entity in ENTITIES else 9, len(name.id), name.id)


def _loaded(ctx: engine.RunContext) -> _Loaded:
    loaded = ctx.cache.get(_CACHE)
    if not isinstance(loaded, _Loaded):
        loaded = ctx.cache[_CACHE] = _Loaded()
    return loaded


# --------------------------------------------------------------------------------------------
# The index a run decides with


def index_for(ctx: engine.RunContext, names: Iterable[str] | None) -> NameIndex:
    """The index that decides these account names (refreshed first, once per run). `None` loads
    every stored name: correct for any name, but it grows with the realm (a fallback, not for
    planning)."""
    refresh(ctx)
    loaded = _loaded(ctx)
    if names is None:
        if not loaded.everything:
            rows = RealmName.objects.filter(connection_id=ctx.connection.pk)
            for row in rows.iterator(chunk_size=2000):
                loaded.add(_name_of(row))
            loaded.everything = True
        return loaded.built()
    if loaded.everything:
        return loaded.built()
    keys: set[str] = set()
    loose: set[str] = set()
    for name in names:
        keys.add(normalize(name))
        near = loose_key(name)
        if near:  # an empty near key matches nothing (NameIndex.add_customer skips it)
            loose.add(near)
    new_keys = sorted(keys - loaded.keys)
    new_loose = sorted(loose - loaded.loose)
    for start in range(0, max(len(new_keys), len(new_loose)), KEY_CHUNK):
        exact_chunk = new_keys[start : start + KEY_CHUNK]
        loose_chunk = new_loose[start : start + KEY_CHUNK]
        where = Q(pk__in=[])
        if exact_chunk:
            where |= Q(normalized__in=exact_chunk)
        if loose_chunk:
            where |= Q(entity="Customer", loose__in=loose_chunk)
        for row in RealmName.objects.filter(where, connection_id=ctx.connection.pk):
            loaded.add(_name_of(row))
    loaded.keys.update(new_keys)
    loaded.loose.update(new_loose)
    return loaded.built()


def _name_of(row: RealmName) -> QBOName:
    return QBOName(
        id=row.qbo_id, name=row.name, entity=row.entity, active=row.active, sync_token=row.sync_token
    )


# --------------------------------------------------------------------------------------------
# Refreshing from QBO


def _parse(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def _stamp(body: dict[str, Any]) -> datetime | None:
    return _parse(str((body.get("MetaData") or {}).get("LastUpdatedTime") or ""))


def _answered_at(times: list[str], bodies: Iterable[dict[str, Any]]) -> datetime | None:
    """QBO's time of the first answer (the read began then), else the newest LastUpdatedTime in
    it; never the app's clock, which may run ahead of QBO's."""
    for text in times:
        at = _parse(text)
        if at is not None:
            return at
    stamps = [s for s in (_stamp(b) for b in bodies) if s is not None]
    return max(stamps) if stamps else None


def _stale(read_at: datetime | None, now: datetime) -> bool:
    return read_at is None or now - read_at > MAX_AGE


def refresh(ctx: engine.RunContext) -> None:
    """Bring the stored names up to date with QBO, at most once per run (see the module
    docstring). A 429 or 5xx propagates: the run cannot decide on names it could not check."""
    if ctx.cache.get("names_refreshed"):
        return
    client = ctx.client
    connection = ctx.connection
    state, _created = RealmSyncState.objects.get_or_create(connection_id=connection.pk)
    now = timezone.now()
    if _stale(state.others_read_at, now):
        # Vendors and employees whole (a new realm, or a month without a CDC sweep).
        times: list[str] = []
        bodies = {
            entity: list(client.query_all(entity, "Active IN (true, false)", times=times))
            for entity in OTHERS
        }
        at = _answered_at(times, (b for found in bodies.values() for b in found))
        with transaction.atomic():
            for entity, found in bodies.items():
                _replace(connection, entity, found)
            RealmSyncState.objects.filter(connection_id=connection.pk).update(others_read_at=at)
        ctx.count("names.others_read", sum(len(found) for found in bodies.values()))
    if _stale(state.names_read_at, now):
        # "Active IN (true, false)": without a mention of Active, QBO only returns active names.
        times = []
        customers = list(client.query_all("Customer", "Active IN (true, false)", times=times))
        at = _answered_at(times, customers)
        with transaction.atomic():
            _replace(connection, "Customer", customers)
            RealmSyncState.objects.filter(connection_id=connection.pk).update(names_read_at=at)
        ctx.count("customers_read", len(customers))
    else:
        assert state.names_read_at is not None
        since = (state.names_read_at - OVERLAP).isoformat(timespec="seconds")
        times = []
        where = f"MetaData.LastUpdatedTime >= '{since}' AND Active IN (true, false)"
        changed = list(client.query_all("Customer", where, times=times))
        at = _answered_at(times, changed)
        with transaction.atomic():
            remember(connection, "Customer", changed)
            if at is not None and at > state.names_read_at:
                RealmSyncState.objects.filter(connection_id=connection.pk).update(names_read_at=at)
        ctx.count("names.refreshed", len(changed))
    ctx.cache["names_refreshed"] = True


# --------------------------------------------------------------------------------------------
# Storing what QBO said


def _row(connection_id: int, entity: str, body: dict[str, Any]) -> RealmName | None:
    qbo_id = str(body.get("Id") or "")
    if not qbo_id:
        return None
    name = str(body.get("DisplayName") or "")[:_MAX]
    return RealmName(
        connection_id=connection_id,
        entity=entity,
        qbo_id=qbo_id,
        name=name,
        normalized=normalize(name)[:_MAX],
        loose=loose_key(name)[:_MAX],
        active=body.get("Active", True) is not False,
        sync_token=str(body.get("SyncToken") or "")[:32],
        updated_at=timezone.now(),
    )


def _token(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return -1


def _upsert(rows: list[RealmName]) -> None:
    # Always in the same order (entity, Id), so two writers of the same rows (a run and a CDC
    # sweep) lock them in the same order and cannot deadlock on PostgreSQL.
    RealmName.objects.bulk_create(
        sorted(rows, key=lambda r: (r.entity, len(r.qbo_id), r.qbo_id)),
        batch_size=500,
        update_conflicts=True,
        unique_fields=["connection", "entity", "qbo_id"],
        update_fields=["name", "normalized", "loose", "active", "sync_token", "updated_at"],
    )


def remember(connection: Connection | int, entity: str, bodies: Iterable[dict[str, Any]]) -> int:
    """Store these Customer/Vendor/Employee bodies as QBO answered them. A body older than the
    stored row (a lower SyncToken: a CDC answer read before a run's refresh, stored after it) is
    not written over the newer one. Returns how many rows were written."""
    connection_id = connection if isinstance(connection, int) else connection.pk
    if entity not in ENTITIES:
        return 0
    rows: dict[str, RealmName] = {}
    for body in bodies:
        row = _row(connection_id, entity, body)
        if row is not None:
            rows[row.qbo_id] = row
    if not rows:
        return 0
    ids = sorted(rows)
    for start in range(0, len(ids), KEY_CHUNK):
        stored = RealmName.objects.filter(
            connection_id=connection_id, entity=entity, qbo_id__in=ids[start : start + KEY_CHUNK]
        ).values_list("qbo_id", "sync_token")
        for qbo_id, token in stored:
            if _token(rows[qbo_id].sync_token) < _token(token):
                del rows[qbo_id]
    _upsert(list(rows.values()))
    return len(rows)


def forget(connection: Connection | int, entity: str, ids: Iterable[str]) -> None:
    """QBO no longer has these (deleted, merged away): a query would not return them."""
    connection_id = connection if isinstance(connection, int) else connection.pk
    wanted = sorted({str(i) for i in ids if i})
    for start in range(0, len(wanted), KEY_CHUNK):
        RealmName.objects.filter(
            connection_id=connection_id, entity=entity, qbo_id__in=wanted[start : start + KEY_CHUNK]
        ).delete()


def _replace(connection: Connection, entity: str, bodies: list[dict[str, Any]]) -> None:
    """A whole list read: store it as it is, and drop the rows QBO no longer has."""
    rows = [r for r in (_row(connection.pk, entity, b) for b in bodies) if r is not None]
    _upsert(rows)
    seen = {r.qbo_id for r in rows}
    stored = RealmName.objects.filter(connection=connection, entity=entity).values_list("qbo_id", flat=True)
    forget(connection, entity, [qbo_id for qbo_id in stored if qbo_id not in seen])


def note_written(ctx: engine.RunContext, entity: str, body: dict[str, Any]) -> None:
    """QBO answered a create or an update of a name: the run's index knows it at once, and the
    row is stored once the engine's recording transaction commits (outside its row locks)."""
    from practice.quickbooks.sync.kinds.matching import customer_from_qbo

    loaded = ctx.cache.get(_CACHE)
    if isinstance(loaded, _Loaded) and entity == "Customer":
        loaded.add(customer_from_qbo(body))
    connection_id = ctx.connection.pk
    transaction.on_commit(lambda: remember(connection_id, entity, [body]))


def note_looked_up(ctx: engine.RunContext, entity: str, bodies: list[dict[str, Any]]) -> None:
    """Names a run asked QBO about (6240, a re-sent create): stored, and known to this run."""
    remember(ctx.connection, entity, bodies)
    loaded = ctx.cache.get(_CACHE)
    if isinstance(loaded, _Loaded):
        for body in bodies:
            row = _row(ctx.connection.pk, entity, body)
            if row is not None:
                loaded.add(_name_of(row))


def note_changes(
    connection: Connection,
    objects: Iterable[tuple[str, dict[str, Any]]],
    *,
    since: datetime,
    answered_at: datetime,
    complete: bool,
) -> None:
    """Every Customer, Vendor and Employee in a CDC answer covering [since, answered_at]: stored,
    and a deleted one removed. When the answer was complete and starts no later than a list's last
    refresh, that list is known up to `answered_at` (vendors and employees are refreshed only
    this way; customers' per-run query then asks from later)."""
    changed: dict[str, list[dict[str, Any]]] = {}
    deleted: dict[str, list[str]] = {}
    for entity, body in objects:
        if entity not in ENTITIES:
            continue
        if str(body.get("status", "")) == "Deleted":
            deleted.setdefault(entity, []).append(str(body.get("Id", "")))
        else:
            changed.setdefault(entity, []).append(body)
    with transaction.atomic():
        for entity, ids in deleted.items():
            forget(connection, entity, ids)
        for entity, bodies in changed.items():
            remember(connection, entity, bodies)
        if not complete:
            return
        state = RealmSyncState.objects.filter(connection=connection).first()
        if state is None:
            return
        moved: dict[str, datetime] = {}
        for column in ("names_read_at", "others_read_at"):
            read_at = getattr(state, column)
            if read_at is not None and since <= read_at < answered_at:
                moved[column] = answered_at
        if moved:
            RealmSyncState.objects.filter(connection=connection).update(**moved)

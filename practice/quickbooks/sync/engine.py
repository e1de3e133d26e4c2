"""The sync engine: plan and execute one realm's pending work, and record every outcome.

Reconcile, don't replay (architecture.md §3, docs/adr/0003): a run compares the app's data with
the `SyncLink` rows and pushes only what differs, so a lost trigger loses nothing.

A run for one connection:

1. **Claim** the realm's lease (conditional UPDATE on `Connection.lease_owner/lease_expires_at`,
   checked by row count: works the same on SQLite and PostgreSQL). One runner per realm. The
   lease is short (`QBO_LEASE_SECONDS`, 90 s) so a realm whose runner was killed resumes soon;
   the run renews it every few seconds while it works, from every QBO request and every wait
   inside the client (`RunContext.keep_lease`), and renews it again inside each transaction
   that stores requestids or records outcomes: a runner that lost its lease writes nothing.
   A paused connection (a fault about the company or the app) is probed first, see `pause`.
2. **Replay** writes whose outcome is unknown (sent, then a timeout, a 5xx, a crash): same
   bodies, same bIds, same `requestid`, so QBO answers with the original result. An item whose
   own answer is missing or transient inside an answered batch goes out alone under its own
   requestid (QBO would only replay the batch's answer); see docs/adr/0007.
3. For every registered record kind in dependency order (customers first), **plan** the
   writes (from what changed since the last run, `plan_scope`; a full walk now and then),
   store their `requestid`/batch on the links and commit, then **execute** them in QBO
   batches of ≤ 30, and **record** the batch's outcomes in one transaction: each QBO Id lands
   together with its `SyncAttempt` row, and a crash before the commit leaves the whole batch in
   flight, to be replayed.

Bookkeeping is per page, not per record: new links are inserted together, decisions that need
no write and a batch's outcomes are saved with one UPDATE and one INSERT, so a run's SQL
statements grow with batches of 30 (tests/quickbooks/test_sync_engine.py guards it).
4. Loop while a round did something; release the lease.

A run that cannot read the realm to plan (a 429, 5xx or timeout) is deferred, not failed: the
realm gets a back-off (`RealmSyncState.run_retry_at`), the records it was deciding show Syncing
with their next attempt, and `tasks` schedules the next run (the sweep too, as a safety net).

Extension point: invoices and payments plug in as further `RecordKind`s (see `register`,
`depends_on`, `find_existing`, `dependency_ref`, `mark_waiting`, `unchanged_since_push`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connections, router, transaction
from django.db.models import Q, QuerySet
from django.db.models.constants import OnConflict
from django.utils import timezone

from practice.quickbooks.connection.errors import (
    CompanyUnavailable,
    RateLimited,
    ReauthRequired,
    RecordRejected,
    Retriable,
)
from practice.quickbooks.models import SyncAttempt, SyncLink
from practice.quickbooks.statuses import Outcome, SyncStatus, held_by_drift

if TYPE_CHECKING:
    from practice.quickbooks.connection.client import QBOClient
    from practice.quickbooks.models import Connection

logger = logging.getLogger("practice.quickbooks.engine")

BATCH_SIZE = 30  # QBO's maximum per batch (qbo-api.md §4)
# Default lease length. Longer than one HTTP request can take (QBO_HTTP_TIMEOUT_SECONDS, 60)
# since the lease is renewed between requests; short enough that a killed runner's realm is
# picked up again well within 2 minutes (the sweep and `tasks.run_now` look at its expiry).
LEASE_SECONDS = 90
MAX_ROUNDS = 25
# 100 batches: about two and a half minutes of writes at QBO's ceiling (40 batch calls a minute).
PLAN_WRITES_PER_ROUND = 3000
# Name-space for deterministic request ids (UUIDv5): the same logical write always gets the same id.
_RID_NAMESPACE = uuid.UUID("6f1c2a52-3a0e-4d39-9f7e-4b1f3c7a9e10")


def retry_base_seconds() -> float:
    return float(getattr(settings, "QBO_RETRY_BASE_SECONDS", 15))


def retry_max_seconds() -> float:
    return float(getattr(settings, "QBO_RETRY_MAX_SECONDS", 3600))


def max_attempts() -> int:
    return int(getattr(settings, "QBO_MAX_ATTEMPTS", 8))


def lease_seconds() -> float:
    return float(getattr(settings, "QBO_LEASE_SECONDS", LEASE_SECONDS))


def rate_limit_wait_seconds() -> float:
    return float(getattr(settings, "QBO_RATE_LIMIT_WAIT_SECONDS", 60))


def plan_write_cap() -> int:
    """Writes a kind plans in one round before it stops and lets them go out (`plan_full`)."""
    return int(getattr(settings, "QBO_PLAN_WRITES_PER_ROUND", PLAN_WRITES_PER_ROUND))


def plan_full(ops: Sequence[Op]) -> bool:
    """True when a kind has planned a round's worth of writes and should stop planning.

    Plan and write in pages: a backlog of 50,000 invoices is planned 3,000 writes at a time, each
    page sent before the next is planned, so the first writes reach QBO within seconds and a
    worker holds one page of bodies in memory, not the whole backlog. What was not reached is
    found again by the next round (no link yet, or a link that needs work), and a run that ends
    with work left does not move the plan cursor.
    """
    return len(ops) >= plan_write_cap()


def full_plan_seconds() -> float:
    return float(getattr(settings, "QBO_FULL_PLAN_SECONDS", 6 * 3600))


# How far before the last complete run's start the next run looks for changed records. A record
# is stamped (`updated_at`) when its transaction writes it, not when it commits, so one committed
# after the last run read the table may carry an older stamp; no write transaction of the app
# lasts anywhere near this long. Records changed in the window are looked at twice, which is
# harmless: planning is idempotent.
PLAN_OVERLAP = timedelta(minutes=5)


# --------------------------------------------------------------------------------------------
# Lease


def claim_lease(connection_id: int, owner: str, *, seconds: float | None = None) -> bool:
    """Take the realm's lease if it is free, expired, or already ours. True when we hold it.

    One UPDATE with the condition in its WHERE clause: the database serialises concurrent
    claims, and exactly one of them sees a row count of 1.
    """
    from practice.quickbooks.models import Connection

    now = timezone.now()
    claimed = (
        Connection.objects.filter(pk=connection_id)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now) | Q(lease_owner=owner))
        .update(lease_owner=owner, lease_expires_at=now + timedelta(seconds=seconds or lease_seconds()))
    )
    return claimed == 1


def renew_lease(connection_id: int, owner: str, *, seconds: float | None = None) -> bool:
    """Extend our lease. False when another runner has taken the realm (ours had expired).

    An expired lease nobody took is still ours: nothing ran meanwhile, so extending it is safe.
    Inside a transaction the UPDATE also locks the row until commit, so no other runner can
    claim the realm between this check and the writes that follow it.
    """
    from practice.quickbooks.models import Connection

    now = timezone.now()
    return (
        Connection.objects.filter(pk=connection_id, lease_owner=owner).update(
            lease_expires_at=now + timedelta(seconds=seconds or lease_seconds())
        )
        == 1
    )


def release_lease(connection_id: int, owner: str) -> None:
    from practice.quickbooks.models import Connection

    Connection.objects.filter(pk=connection_id, lease_owner=owner).update(
        lease_owner="", lease_expires_at=None
    )


class LeaseLost(Exception):
    """Another runner took the realm (ours expired): stop without writing anything more."""


# --------------------------------------------------------------------------------------------
# Run context and the record-kind registry


# Write operations an `Op` can carry. A void goes to QBO as an update with optionsData "void"
# in a batch (qbo-api.md §4) and as `operation=void` / `include=void` alone (client.void).
OPERATIONS = ("create", "update", "delete", "void")
# Deletes and voids undo what depends on them first: they go in reverse dependency order
# (refunds before payments before invoices), after the round's creates and updates.
UNDOING = ("delete", "void")


@dataclass
class Op:
    """One write planned for one link, stored on the link (`pending_body`) before it is sent, so
    a replay sends exactly the same thing.

    - `operation`: create, update (sparse: `body` carries Id, SyncToken and `"sparse": true`;
      on a 5010 the engine re-reads the SyncToken and sends it once more), void or delete
      (`body` is {Id, SyncToken}).
    - `kind`: the record kind's name (filled in by the engine from the kind that planned it).
    - `options`: a batch item's `optionsData` (e.g. "allowduplicatedocnumber").
    - `alone`: sent as a request of its own, keyed by `request_id` (see `_send_alone`).
    - `maybe_committed`: an earlier send's outcome is unknown under another key, so before a
      create goes out alone the kind's `find_existing` looks for it in QBO.
    - `stale_retried`: already re-sent once after a 5010.
    """

    link: SyncLink
    operation: str
    entity: str
    body: dict[str, Any]
    request_id: str
    label: str = ""  # the operation name in history ("create", "reactivate", ...)
    kind: str = ""
    options: str = ""
    alone: bool = False
    maybe_committed: bool = False
    stale_retried: bool = False
    # Said in the history row of the outcome (a kind's note about what it sent or found, e.g.
    # "QuickBooks added sales tax"); `on_success` may set it too.
    note: str = ""

    def __post_init__(self) -> None:
        if self.operation not in OPERATIONS:
            raise ValueError(f"Op.operation must be one of {', '.join(OPERATIONS)}, not {self.operation!r}")

    def stored(self) -> dict[str, Any]:
        """What goes into `SyncLink.pending_body`: everything a replay needs, nothing else."""
        return {
            "operation": self.operation,
            "entity": self.entity,
            "body": canonical(self.body),
            "label": self.label,
            "request_id": self.request_id,
            "kind": self.kind,
            "options": self.options,
            "alone": self.alone,
            "maybe_committed": self.maybe_committed,
            "stale_retried": self.stale_retried,
            "note": self.note,
        }

    @classmethod
    def from_stored(cls, link: SyncLink, stored: dict[str, Any], kind: str) -> Op:
        return cls(
            link=link,
            operation=str(stored.get("operation", "")),
            entity=str(stored.get("entity", "")),
            body=dict(stored.get("body") or {}),
            request_id=str(stored.get("request_id") or link.request_id),
            label=str(stored.get("label", "")),
            kind=kind,
            options=str(stored.get("options", "")),
            alone=bool(stored.get("alone", False)),
            maybe_committed=bool(stored.get("maybe_committed", False)),
            stale_retried=bool(stored.get("stale_retried", False)),
            note=str(stored.get("note", "")),
        )


def canonical(value: Any) -> Any:
    """`value` with every object's keys sorted.

    A replay must send the same bytes as the first attempt (QBO may answer 600 "Duplicate
    Request ID" to a requestid that comes back with a different request, qbo-api.md §5), and
    PostgreSQL's jsonb does not keep key order: both sends use this order.
    """
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


# A body's version fields, not its content: an update planned on a newer SyncToken that sets the
# same values is the same change.
_NOT_CONTENT = ("SyncToken", "sparse")


def hash_body(body: dict[str, Any]) -> str:
    """What `SyncLink.pushed_hash` holds: a record whose next body hashes the same is not sent."""
    content = {k: v for k, v in body.items() if k not in _NOT_CONTENT}
    text = json.dumps(canonical(content), separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def unchanged_since_push(link: SyncLink, body: dict[str, Any]) -> bool:
    """True when `body` is what was last pushed for `link` (nothing to send)."""
    return bool(link.pushed_hash) and link.pushed_hash == hash_body(body)


@dataclass
class RunContext:
    connection: Connection
    client: QBOClient
    owner: str
    now: datetime
    cache: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, int] = field(default_factory=dict)
    started_at: datetime = field(default_factory=timezone.now)
    lease_renewed: float = field(default_factory=time.monotonic)
    # Plan from what changed (`plan_scope`): the kinds look at records changed since this time
    # and at links that still need work. None: walk every record (a full plan).
    since: datetime | None = None

    def count(self, key: str, n: int = 1) -> None:
        self.summary[key] = self.summary.get(key, 0) + n

    def keep_lease(self, *, force: bool = False) -> None:
        """Renew the realm's lease if a sixth of it has gone by (or `force`); raise `LeaseLost`
        when another runner has taken the realm. The client calls this before every request
        and while it waits, so planning reads and long back-offs keep the lease too."""
        now = time.monotonic()
        if not force and now - self.lease_renewed < lease_seconds() / 6:
            return
        if not renew_lease(self.connection.pk, self.owner):
            raise LeaseLost
        self.lease_renewed = now


@dataclass
class Rejection:
    """What a kind decided about a rejected item: an Error to show, or a link to record."""

    error_kind: str = ""
    message: str = ""
    candidates: list[dict[str, Any]] = field(default_factory=list)
    link_to: dict[str, Any] | None = None  # a QBO entity to link instead (e.g. 6240 -> our own)
    operation: str = ""  # the history row's operation, when not the write's own (what was decided)
    # With link_to: the link's name and pushed_hash when the kind knows them (the QBO record
    # already holds what was sent, so nothing is pushed to it next).
    qbo_name: str = ""
    pushed_hash: str = ""


@dataclass
class RecordKind:
    """A kind of app record the engine syncs, keyed by `name` (two kinds may write the same QBO
    entity: an Item kind and a future one, say).

    - `plan(ctx)`: decide what each pending record needs. Decisions that need no write (link
      by name, Error, waiting for a dependency) are recorded right away; writes are returned as
      `Op`s.
    - `on_success(ctx, link, entity, op)`: update `link` (unsaved) from QBO's answer; the engine
      saves it with a history row in one transaction, and sets `pushed_hash` from `op.body`.
    - `on_rejected(ctx, link, error, op)`: turn a Fault into a `Rejection`. It may read QBO and
      runs outside any transaction; a `Retriable` (429 included) or `ReauthRequired` it raises
      is never swallowed: the record stays Syncing and the write is sent again later.
    - `depends_on`: names of kinds whose records must be in QBO first. They are planned (and
      their creates sent) earlier in each round; deletes and voids go in reverse order.
    - `find_existing(ctx, op)`: before a create whose earlier send may have been committed under
      another key goes out again, look for it in QBO (customers: by DisplayName; invoices: by
      DocNumber). Return the entity to link it instead of creating a second one, or None.
    """

    name: str
    entity: str
    order: int
    plan: Callable[[RunContext], list[Op]]
    on_success: Callable[[RunContext, SyncLink, dict[str, Any], Op], None]
    on_rejected: Callable[[RunContext, SyncLink, RecordRejected, Op], Rejection]
    depends_on: tuple[str, ...] = ()
    find_existing: Callable[[RunContext, Op], dict[str, Any] | None] | None = None


_KINDS: dict[str, RecordKind] = {}


def register(kind: RecordKind) -> RecordKind:
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    _KINDS.pop(name, None)


def kind_named(name: str) -> RecordKind | None:
    return _KINDS.get(name)


def kinds() -> list[RecordKind]:
    """Registered kinds, every kind after the kinds it depends on (then by `order`).

    The built-in kinds register themselves when `practice.quickbooks.sync.kinds` is imported
    (QuickbooksConfig.ready() does it), so the engine imports no kind.
    """
    placed: list[RecordKind] = []
    done: set[str] = set()
    pending = sorted(_KINDS.values(), key=lambda k: (k.order, k.name))
    while pending:
        ready = [k for k in pending if all(d in done for d in k.depends_on)]
        if not ready:
            missing = {d for k in pending for d in k.depends_on if d not in done}
            raise ValueError(f"record kinds with unknown or circular dependencies: {sorted(missing)}")
        placed.append(ready[0])
        done.add(ready[0].name)
        pending.remove(ready[0])
    return placed


# --------------------------------------------------------------------------------------------
# Planning from what changed
#
# A run does not walk every record of the firm. It looks at (a) the records whose `updated_at`
# moved since the last complete run began planning (less `PLAN_OVERLAP`), (b) the links that
# still need work whatever their record did: Not synced (new, waiting for a dependency, sent
# back by Retry or Sync again), Syncing without a write in flight (a decision deferred while QBO
# could not be read), and (c) links a person or a run changed since then (link by hand, Retry,
# "Push ours again"). A full walk, the safety net for anything that changes what QBO should hold
# without touching a record (a write that bypassed the services, a hard delete), runs when the
# realm has none on record, after the connection's sync settings change, and every
# QBO_FULL_PLAN_SECONDS.

_PLAN_SETTINGS = (
    "realm_id",
    "connected_at",
    "setup_completed_at",
    "account_scope",
    "sync_start_date",
    "unmatched_customer",
    "income_account_id",
    "deposit_account_id",
    "fees_enabled",
    "fee_account_id",
    "sync_manual_payments",
)


def plan_settings_fingerprint(connection: Connection) -> str:
    """A digest of the connection's settings that decide what belongs in QBO: when it differs
    from the one the last plan ran with, every record is looked at again."""
    values = {name: str(getattr(connection, name, "")) for name in _PLAN_SETTINGS}
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:32]


def plan_since(connection: Connection, *, now: datetime) -> datetime | None:
    """Where this run's plan starts: the last complete run's start less the overlap, or None
    (a full walk) when there is none, the settings changed, or the last full walk is too old."""
    from practice.quickbooks.models import RealmSyncState

    state = (
        RealmSyncState.objects.filter(connection_id=connection.pk)
        .values("planned_through", "full_plan_at", "plan_settings")
        .first()
    )
    if not state or state["planned_through"] is None or state["full_plan_at"] is None:
        return None
    if state["plan_settings"] != plan_settings_fingerprint(connection):
        return None
    if (now - state["full_plan_at"]).total_seconds() >= full_plan_seconds():
        return None
    since: datetime = state["planned_through"] - PLAN_OVERLAP
    return since


def _planned(ctx: RunContext) -> None:
    """The run looked at everything that had changed when it started: move the cursor there."""
    from practice.quickbooks.models import RealmSyncState

    values: dict[str, Any] = {
        "planned_through": ctx.started_at,
        "plan_settings": plan_settings_fingerprint(ctx.connection),
    }
    if ctx.since is None:
        values["full_plan_at"] = ctx.started_at
    RealmSyncState.objects.get_or_create(connection_id=ctx.connection.pk)
    RealmSyncState.objects.filter(connection_id=ctx.connection.pk).update(**values)


def _needs_work() -> Q:
    """Links that need looking at whatever their record did (see above)."""
    return Q(status=SyncStatus.NOT_SYNCED) | Q(status=SyncStatus.SYNCING, batch_request_id="")


def plan_scope(
    ctx: RunContext, kind: str, records: QuerySet[Any], *, also_changed: Q | None = None
) -> tuple[QuerySet[Any], dict[int, SyncLink]]:
    """What a kind's plan looks at: its records (a narrowed `records`) and their links by local id.

    A full walk returns `records` as given and every link of the kind. Otherwise the records
    changed since `ctx.since` (and those `also_changed` selects, records to treat as changed:
    the accounts whose billing changed, for the customer kind),
    plus the records of links that need work or were touched since; and the links of all of
    them. Two SQL statements whatever the size of the firm (the ids travel as subqueries).
    """
    links = SyncLink.objects.filter(connection=ctx.connection, kind=kind)
    if ctx.since is None:
        return records, {link.local_id: link for link in links}
    changed = Q(updated_at__gte=ctx.since)
    if also_changed is not None:
        changed |= also_changed
    live = _needs_work() | Q(updated_at__gte=ctx.since)
    scoped_links = {
        link.local_id: link
        for link in links.filter(live | Q(local_id__in=records.filter(changed).values("pk")))
    }
    scoped = records.filter(changed | Q(pk__in=links.filter(live).values("local_id")))
    return scoped, scoped_links


ID_CHUNK = 500  # ids per `IN (...)`: well under SQLite's and PostgreSQL's parameter limits


def chunks(values: Iterable[Any], size: int = ID_CHUNK) -> Iterable[list[Any]]:
    """`values`, de-duplicated and sorted, in lists of `size` (one `IN (...)` query each)."""
    ordered = sorted(set(values))
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def linked_qbo_ids(connection: Connection, kind: str, qbo_ids: Iterable[str]) -> set[str]:
    """Which of these QBO ids a record of `kind` is linked to already (only those ids are read,
    not every link of the firm)."""
    linked: set[str] = set()
    for chunk in chunks(qbo_ids):
        linked.update(
            SyncLink.objects.filter(connection=connection, kind=kind, qbo_id__in=chunk).values_list(
                "qbo_id", flat=True
            )
        )
    return linked


def dependency_ref(ctx: RunContext, kind: str, local_id: int) -> dict[str, str] | None:
    """The QBO reference ({"value", "name"}) of a record of `kind`, or None while it is not in QBO
    (not linked yet, Skipped or in Error): the dependent record waits (see `mark_waiting`)."""
    link = (
        SyncLink.objects.filter(
            connection=ctx.connection, kind=kind, local_id=local_id, status=SyncStatus.SYNCED
        )
        .exclude(qbo_id="")
        .only("qbo_id", "qbo_name")
        .first()
    )
    if link is None:
        return None
    return {"value": link.qbo_id, "name": link.qbo_name}


def mark_waiting(link: SyncLink, message: str) -> bool:
    """The record waits for a dependency (the message names it); no write, no error, no retry
    timer: the round that puts the dependency into QBO plans this record again. Returns False
    when it was already waiting for that reason: record nothing then (a waiting record re-planned
    every round must not count as work, or the run would loop)."""
    if link.error_message == message and link.status in (SyncStatus.NOT_SYNCED, SyncStatus.SKIPPED):
        return False
    clear_pending(link)
    clear_error(link)
    link.error_message = message
    if link.status != SyncStatus.SKIPPED:
        link.status = SyncStatus.NOT_SYNCED
    return True


# --------------------------------------------------------------------------------------------
# Ids and back-off


def request_id_for(realm_id: str, kind: str, local_id: int, operation: str, seq: int) -> str:
    """Deterministic per logical write (qbo-api.md §5): 36 chars, fits a batch requestid."""
    return str(uuid.uuid5(_RID_NAMESPACE, f"{realm_id}:{kind}:{local_id}:{operation}:{seq}"))


def batch_request_id_for(realm_id: str, item_request_ids: Sequence[str]) -> str:
    return str(uuid.uuid5(_RID_NAMESPACE, f"{realm_id}:batch:" + ",".join(item_request_ids)))


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """Exponential back-off with jitter: base·2^(n-1), capped, plus up to 25 % random jitter.

    Jitter spreads the retries of many realms after a QBO outage instead of a thundering herd.
    A 429's Retry-After (or Intuit's advice: 60 s) is a floor.
    """
    delay = min(retry_base_seconds() * (2 ** max(0, attempt - 1)), retry_max_seconds())
    if retry_after:
        delay = max(delay, retry_after)
    return delay + random.uniform(0, delay * 0.25)


# --------------------------------------------------------------------------------------------
# Recording outcomes


def attempt_row(
    link: SyncLink,
    *,
    operation: str,
    outcome: str,
    request_id: str = "",
    fault_code: str = "",
    fault_detail: str = "",
    message: str = "",
    actor: str = "",
) -> SyncAttempt:
    """An unsaved history row for `link` (its QBO Id as it is now)."""
    return SyncAttempt(
        link=link,
        operation=operation,
        outcome=outcome,
        qbo_id=link.qbo_id,
        request_id=request_id,
        fault_code=fault_code,
        fault_detail=fault_detail[:4000],
        message=message,
        actor=actor,
    )


def record_attempt(link: SyncLink, **attempt: Any) -> SyncAttempt:
    row = attempt_row(link, **attempt)
    row.save(force_insert=True)
    return row


def clear_pending(link: SyncLink) -> None:
    link.pending_op = ""
    link.desired_name = ""
    link.target_qbo_id = ""
    link.batch_request_id = ""
    link.batch_bid = ""
    link.pending_body = None
    link.sent_at = None
    link.attempts = 0
    link.next_retry_at = None


def clear_error(link: SyncLink) -> None:
    link.error_kind = ""
    link.error_code = ""
    link.error_message = ""
    link.error_detail = ""
    link.candidates = []


def mark_linked(link: SyncLink, entity: dict[str, Any], *, now: datetime) -> None:
    """Point `link` at the QBO `entity` and mark it Synced (a Skipped link stays Skipped)."""
    link.qbo_id = str(entity.get("Id", ""))
    link.qbo_sync_token = str(entity.get("SyncToken", ""))
    link.qbo_name = str(entity.get("DisplayName") or entity.get("Name") or "")
    link.synced_at = now
    clear_pending(link)
    clear_error(link)
    if link.status != SyncStatus.SKIPPED:
        link.status = SyncStatus.SYNCED


def mark_error(
    link: SyncLink,
    *,
    error_kind: str,
    message: str,
    code: str = "",
    detail: str = "",
    candidates: Iterable[dict[str, Any]] = (),
    keep_in_flight: bool = False,
) -> None:
    if not keep_in_flight:
        clear_pending(link)
    link.next_retry_at = None
    link.error_kind = error_kind
    link.error_code = code
    link.error_message = message
    link.error_detail = detail
    link.candidates = list(candidates)
    if link.status != SyncStatus.SKIPPED:
        link.status = SyncStatus.ERROR


def save_with_attempt(link: SyncLink, **attempt: Any) -> None:
    """Save the link and its history row together (the QBO Id never lands without its row)."""
    with transaction.atomic():
        link.save()
        record_attempt(link, **attempt)


# What a run may change on a link: everything but its identity. Bulk writes save these.
LINK_STATE_FIELDS = [
    f.name
    for f in SyncLink._meta.concrete_fields
    if f.name not in ("id", "firm", "connection", "kind", "local_id", "created_at")
]
# Decisions recorded without a write are saved this many at a time (one transaction each).
DECISION_CHUNK = 200


def bulk_save_links(links: Sequence[SyncLink], field_names: Sequence[str]) -> None:
    """UPDATE `field_names` of many links with one prepared statement run for each row
    (`executemany`: one statement per batch in query counts, one round trip with psycopg's
    pipeline).

    Why not `QuerySet.bulk_update`: its CASE WHEN per field and row costs more ORM time than
    it saves; measured on 2,000 accounts it doubled the engine's CPU time compared with one
    `save()` per link. Values go through each field's `get_db_prep_save`, like `save()`.
    """
    if not links:
        return
    meta = SyncLink._meta
    fields = [meta.get_field(name) for name in field_names]
    columns = [str(f.column) for f in fields]  # type: ignore[union-attr]
    db = connections[router.db_for_write(SyncLink)]
    qn = db.ops.quote_name
    # Only names from the model's own metadata go into the SQL; every value is a parameter.
    sql = "UPDATE {} SET {} WHERE {} = %s".format(  # noqa: S608
        qn(meta.db_table), ", ".join(f"{qn(c)} = %s" for c in columns), qn(str(meta.pk.column))
    )
    rows = [
        [f.get_db_prep_save(getattr(link, f.attname), connection=db) for f in fields]  # type: ignore[union-attr]
        + [link.pk]
        for link in links
    ]
    with db.cursor() as cursor:
        cursor.executemany(sql, rows)


def insert_links(
    connection: Connection, kind: str, local_ids: Sequence[int], *, read_chunk: int = 500
) -> dict[int, SyncLink]:
    """Create Not-synced links for `local_ids` that have none, and read them all back.

    One prepared INSERT run for each id (`executemany`), skipping ids whose link exists: a
    person acting on the record meanwhile (manual link, unsync) may have created it first, and
    theirs is kept and read back like ours. Cheaper than `bulk_create`, which compiles every
    column of every row into SQL (SQLite: 33 rows a statement) for rows that differ only in
    `local_id`.
    """
    if not local_ids:
        return {}
    now = timezone.now()
    # Every row is this prototype with its own local_id (a field with a per-row default, say a
    # uuid, would need its own value here).
    proto = SyncLink(
        firm_id=connection.firm_id,
        connection=connection,
        kind=kind,
        local_id=0,
        status=SyncStatus.NOT_SYNCED,
        created_at=now,
        updated_at=now,
    )
    meta = SyncLink._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    db = connections[router.db_for_write(SyncLink)]
    qn = db.ops.quote_name
    values = [f.get_db_prep_save(getattr(proto, f.attname), connection=db) for f in fields]
    at = [f.name for f in fields].index("local_id")
    # Only names from the model's own metadata go into the SQL; every value is a parameter.
    sql = "{} {} ({}) VALUES ({}) {}".format(
        db.ops.insert_statement(on_conflict=OnConflict.IGNORE),
        qn(meta.db_table),
        ", ".join(qn(str(f.column)) for f in fields),
        ", ".join(["%s"] * len(fields)),
        db.ops.on_conflict_suffix_sql(fields, OnConflict.IGNORE, None, None) or "",
    )
    with db.cursor() as cursor:
        cursor.executemany(sql, [[*values[:at], local_id, *values[at + 1 :]] for local_id in local_ids])
    made: dict[int, SyncLink] = {}
    for start in range(0, len(local_ids), read_chunk):
        chunk = local_ids[start : start + read_chunk]
        made.update(
            (link.local_id, link)
            for link in SyncLink.objects.filter(connection=connection, kind=kind, local_id__in=chunk)
        )
    return made


def save_links_with_attempts(links: Sequence[SyncLink], attempts: Sequence[SyncAttempt]) -> None:
    """Save links (every state field) and their history rows: one UPDATE and one INSERT.

    Call it inside a transaction: that is what keeps each QBO Id with its history row.
    """
    now = timezone.now()
    for link in links:
        link.updated_at = now  # auto_now is applied by save() only
    bulk_save_links(links, LINK_STATE_FIELDS)
    if attempts:
        SyncAttempt.objects.bulk_create(attempts)


@dataclass
class DecisionRecord:
    """A decision about a link that needs no write to QBO (a link by name, an Error), to be
    saved with its history row by `save_decisions`."""

    link: SyncLink
    attempt: dict[str, Any]


def save_decisions(ctx: RunContext, decisions: Sequence[DecisionRecord]) -> int:
    """Save decisions in a few transactions of `DECISION_CHUNK`. Returns how many were saved.

    Each link is re-read under lock first: one a person changed since the plan read it
    (unsynced, linked by hand: `updated_at` moved) is left as the person left it, and the next
    round decides again from its new state.
    """
    saved = 0
    for start in range(0, len(decisions), DECISION_CHUNK):
        chunk = decisions[start : start + DECISION_CHUNK]
        with transaction.atomic():
            ctx.keep_lease(force=True)
            current = dict(
                SyncLink.objects.select_for_update()
                .filter(pk__in=[d.link.pk for d in chunk])
                .values_list("pk", "updated_at")
            )
            keep = [d for d in chunk if d.link.pk in current and current[d.link.pk] == d.link.updated_at]
            save_links_with_attempts([d.link for d in keep], [attempt_row(d.link, **d.attempt) for d in keep])
        if len(keep) < len(chunk):
            ctx.count("changed_meanwhile", len(chunk) - len(keep))
        saved += len(keep)
    return saved


# --------------------------------------------------------------------------------------------
# Execution


@dataclass
class ItemOutcome:
    """How one item ended: QBO's entity, a rejection (and what the kind made of it), or a
    transient failure to retry.

    - `alone`: the item's outcome is unknown inside an answer QBO has cached under the batch's
      requestid (an item QBO did not answer, a per-item SystemFault, a 600): re-sending that
      batch would only replay the same answer, so from now on the item goes out by itself under
      its own requestid, with the same body, until QBO answers it definitively.
    - `resend`: a replacement write (after a 5010: the current SyncToken, a new requestid).
    """

    op: Op
    kind: RecordKind
    request_id: str  # for the history row
    entity: dict[str, Any] | None = None
    rejected: RecordRejected | None = None
    decision: Rejection | None = None
    retry: Retriable | None = None
    alone: bool = False
    resend: Op | None = None
    note: str = ""
    # QBO refused the item for the company's or the app's sake: not written, the record is not
    # at fault; it waits for the pause to clear (see `pause`).
    paused: CompanyUnavailable | None = None


def _kind_of(op: Op) -> RecordKind:
    kind = _KINDS.get(op.kind)
    if kind is None:
        raise LookupError(f"no record kind named {op.kind!r}")
    return kind


def _batch_op(op: Op) -> Any:
    from practice.quickbooks.connection.client import BatchOp

    operation = op.operation
    options = [o for o in op.options.split(",") if o]
    if operation == "void":
        # A void in a batch is an update with optionsData "void" (qbo-api.md §4).
        operation = "update"
        options.insert(0, "void")
    return BatchOp(
        bid=op.link.batch_bid,
        operation=operation,  # type: ignore[arg-type]
        entity=op.entity,
        body=canonical(op.body),
        options=",".join(options) or None,
    )


def _send(ctx: RunContext, batch_rid: str, ops: list[Op]) -> None:
    """Send one batch (already stored on the links) and record every item's outcome."""
    outcomes: list[ItemOutcome] = []

    def each(**kw: Any) -> list[ItemOutcome]:
        return [ItemOutcome(op, _kind_of(op), batch_rid, **kw) for op in ops]

    try:
        results = ctx.client.batch([_batch_op(op) for op in ops], request_id=batch_rid)
    except (ReauthRequired, CompanyUnavailable):
        # The connection or the company, not these records: the batch stays in flight, as is.
        raise
    except Retriable as e:
        # No answer, a 5xx, a timeout, a 429: QBO may or may not have run the batch. It stays
        # stored on its links and goes out again with the same requestid, bIds and bodies, so
        # QBO replays its answer if it did (qbo-api.md §5).
        outcomes = each(retry=e)
    except RecordRejected as e:
        if e.code == "600":
            # "Duplicate Request ID": QBO knows this requestid with another request, so it will
            # neither run nor replay it. Whether the items were written is unknown.
            outcomes = each(retry=Retriable(e.message, code=e.code, status=e.status), alone=True)
        else:
            # A Fault for the whole batch (malformed, too big, a 404): nothing in it was written.
            outcomes = each(rejected=e)
    else:
        for op, result in zip(ops, results, strict=True):
            kind = _kind_of(op)
            if result.error is None and result.entity is not None:
                outcomes.append(ItemOutcome(op, kind, batch_rid, entity=result.entity))
            elif isinstance(result.error, RecordRejected) and result.error.code != "600":
                outcomes.append(ItemOutcome(op, kind, batch_rid, rejected=result.error))
            elif isinstance(result.error, CompanyUnavailable):
                outcomes.append(ItemOutcome(op, kind, batch_rid, paused=result.error))
            else:
                # Not answered, a per-item transient fault, or an answer without the entity: the
                # item may have been written. Its answer is part of the batch's cached reply.
                err = result.error if isinstance(result.error, Retriable) else None
                err = err or Retriable(f"QuickBooks gave no usable answer for batch item {op.link.batch_bid}")
                outcomes.append(ItemOutcome(op, kind, batch_rid, retry=err, alone=True))
    _decide_rejections(ctx, outcomes)
    _record_outcomes(ctx, outcomes)
    paused = next((o.paused for o in outcomes if o.paused is not None), None)
    if paused is not None:
        raise paused  # the run pauses the connection; the neighbours' answers are recorded


_INCLUDE_SPELLING = {"allowduplicatedocnumber": "allowduplicatedocnum"}


def _write_alone(ctx: RunContext, op: Op) -> dict[str, Any]:
    client = ctx.client
    body = canonical(op.body)
    # A batch item's optionsData travels as the `include` query option of a single request,
    # where QBO spells the duplicate-number option "allowduplicatedocnum" (qbo-api.md §2.5).
    include = ",".join(_INCLUDE_SPELLING.get(o, o) for o in op.options.split(",") if o and o != "void")
    if op.operation == "create":
        return client.create(op.entity, body, request_id=op.request_id, include=include)
    if op.operation == "update":
        sparse = bool(body.get("sparse", True))
        return client.update(op.entity, body, request_id=op.request_id, sparse=sparse, include=include)
    if op.operation == "delete":
        return client.delete(op.entity, str(body["Id"]), str(body["SyncToken"]), request_id=op.request_id)
    return client.void(op.entity, str(body["Id"]), str(body["SyncToken"]), request_id=op.request_id)


def _send_alone(ctx: RunContext, op: Op) -> None:
    """Send one write by itself under its own requestid (stored on the link as its batch id).

    Every retry re-sends this same request; QBO does not cache a 5xx or a 429 (qbo-api.md §5),
    so a retry after one is executed or replayed, never doubled. A create whose earlier send in
    a batch may have been committed is first looked for with the kind's `find_existing`.
    """
    kind = _kind_of(op)
    outcome = ItemOutcome(op, kind, op.request_id)
    try:
        found = None
        if op.operation == "create" and op.maybe_committed and kind.find_existing is not None:
            found = kind.find_existing(ctx, op)
        if found is not None:
            outcome.entity = found
            outcome.note = "Found in QuickBooks (written by an earlier, unanswered attempt); linked to it."
        else:
            # Not there: from now on every retry is this same request, which QBO replays if it
            # ran it, so no further look-up is needed.
            op.maybe_committed = False
            outcome.entity = _write_alone(ctx, op)
    except ReauthRequired:
        raise
    except Retriable as e:
        outcome.retry = e
        outcome.alone = True
    except RecordRejected as e:
        outcome.rejected = e
    _decide_rejections(ctx, [outcome])
    _record_outcomes(ctx, [outcome])


def _decide_rejections(ctx: RunContext, outcomes: list[ItemOutcome]) -> None:
    """Turn each rejection into a decision before the recording transaction (this may read QBO).

    A 5010 on an update, void or delete re-reads the entity and sends the write once more with
    the current SyncToken. A `Retriable` while deciding (a 429 or 5xx on the look-up) is never
    turned into an Error: the item is retried alone, and QBO's answer (a rejection, so nothing
    was written) is looked into again then.
    """
    for o in outcomes:
        err = o.rejected
        if err is None:
            continue
        try:
            if err.is_stale and o.op.operation in ("update", "void", "delete") and not o.op.stale_retried:
                try:
                    current = ctx.client.read(o.op.entity, str(o.op.body.get("Id", "")))
                except RecordRejected as gone:
                    # Deleted in QBO meanwhile: that refusal is the one to explain.
                    o.rejected = gone
                    o.decision = o.kind.on_rejected(ctx, o.op.link, gone, o.op)
                    continue
                o.resend = Op(
                    link=o.op.link,
                    operation=o.op.operation,
                    entity=o.op.entity,
                    body={**o.op.body, "SyncToken": str(current.get("SyncToken", ""))},
                    request_id="",  # derived from the link's next op_seq when recorded
                    label=o.op.label,
                    kind=o.op.kind,
                    options=o.op.options,
                    alone=True,
                    stale_retried=True,
                )
                continue
            # Told first: e.g. a refusal that says a realm fact was wrong (a class gone, ...), so
            # that the Retry reads it again (sync/realm_facts.py registers for this).
            for callback in list(_ON_REFUSED):
                callback(ctx, err, o.op)
            o.decision = o.kind.on_rejected(ctx, o.op.link, err, o.op)
        except ReauthRequired:
            raise
        except Retriable as e:
            o.rejected = None
            o.resend = None
            o.retry = e
            o.alone = True
        except RecordRejected as e:
            # A look-up of the kind was refused: show QBO's own words rather than guess.
            o.decision = Rejection(
                error_kind="rejected",
                message=f"QuickBooks refused this record: {err.detail or err.message}. Fix it, then Retry.",
            )
            logger.warning(
                "qbo.push.lookup_refused", extra={"realm": ctx.connection.realm_id, "code": e.code}
            )


def _record_outcomes(ctx: RunContext, outcomes: list[ItemOutcome]) -> None:
    """Record a batch's outcomes in ONE transaction: every link's new state (its QBO Id
    included) is stored together with its SyncAttempt row, so no QBO Id lands without its
    history, and a crash before the commit leaves the whole batch in flight, to be replayed."""
    if not outcomes:
        return
    rate_limit_wait = rate_limit_wait_seconds()
    links: list[SyncLink] = []
    attempts: list[SyncAttempt] = []
    events: list[tuple[str, SyncLink, ItemOutcome]] = []
    with transaction.atomic():
        # Checked in the transaction that records: a runner that lost the realm records nothing
        # (the batch stays in flight and the new holder replays it with the same requestid).
        ctx.keep_lease(force=True)
        locked = {
            link.pk: link
            for link in SyncLink.objects.select_for_update().filter(pk__in=[o.op.link.pk for o in outcomes])
        }
        for o in outcomes:
            link = locked.get(o.op.link.pk)
            if link is None or link.batch_request_id != o.request_id:
                # Gone, or no longer waiting for this write (another runner recorded it first).
                logger.warning(
                    "qbo.push.link_moved_on", extra={"realm": ctx.connection.realm_id, "record": o.op.link.pk}
                )
                continue
            operation = o.op.label or o.op.operation
            link.last_attempt_at = ctx.now
            if o.entity is not None:
                # Kinds may refine it in on_success; this is what "unchanged" is compared with.
                link.pushed_hash = hash_body(o.op.body)
                o.kind.on_success(ctx, link, o.entity, o.op)
                # A kind may find the answer wrong (an invoice whose QBO total differs): it
                # marks the link Error in on_success, and the row says so.
                failed = link.status == SyncStatus.ERROR
                attempt = attempt_row(
                    link,
                    operation=operation,
                    outcome=Outcome.ERROR if failed else Outcome.SUCCESS,
                    request_id=o.request_id,
                    message=" ".join(
                        m for m in (o.note, o.op.note, link.error_message if failed else "") if m
                    ),
                )
                events.append(("ok", link, o))
            elif o.resend is not None:
                attempt = _apply_resend(ctx, link, o, operation)
                events.append(("resend", link, o))
            elif o.paused is not None:
                attempt = _apply_paused(link, o, operation)
                events.append(("paused", link, o))
            elif o.rejected is not None:
                attempt = _apply_rejection(ctx, link, o, operation)
                events.append(
                    ("linked_after_fault" if o.decision and o.decision.link_to else "rejected", link, o)
                )
            else:
                attempt = _apply_retry(ctx, link, o, operation, rate_limit_wait)
                events.append(("retry", link, o))
            links.append(link)
            attempts.append(attempt)
        save_links_with_attempts(links, attempts)
    retries = 0
    for what, link, o in events:
        if what == "ok":
            ctx.count(f"{o.kind.name}.{o.op.label or o.op.operation}")
            logger.info(
                "qbo.push.ok",
                extra={
                    "firm": link.firm_id,
                    "realm": ctx.connection.realm_id,
                    "record": link.pk,
                    "qbo_id": link.qbo_id,
                },
            )
        elif what == "linked_after_fault":
            ctx.count(f"{o.kind.name}.linked_after_fault")
        elif what == "paused":
            ctx.count(f"{o.kind.name}.paused")
        elif what == "rejected":
            ctx.count(f"{o.kind.name}.rejected")
            logger.warning(
                "qbo.push.rejected",
                extra={
                    "firm": link.firm_id,
                    "realm": ctx.connection.realm_id,
                    "record": link.pk,
                    "code": o.rejected.code if o.rejected else "",
                },
            )
        elif what == "resend":
            ctx.count(f"{o.kind.name}.stale_resend")
        else:
            retries += 1
    if retries:
        ctx.count("retry_scheduled", retries)
        errors = sorted({str(o.retry) for what, _link, o in events if what == "retry"})
        logger.info(
            "qbo.push.retry",
            extra={"realm": ctx.connection.realm_id, "items": retries, "error": "; ".join(errors)},
        )


def _apply_paused(link: SyncLink, o: ItemOutcome, operation: str) -> SyncAttempt:
    """QBO refused the item for the company's sake, so it was not written: out of flight (the
    cached batch answer would repeat the refusal), Syncing, planned afresh once the pause
    clears. Its attempts are not counted: the record is not at fault."""
    err = o.paused
    assert err is not None
    link.batch_request_id = ""
    link.batch_bid = ""
    link.pending_body = None
    link.sent_at = None
    link.next_retry_at = None
    if link.status != SyncStatus.SKIPPED:
        link.status = SyncStatus.SYNCING
    return attempt_row(
        link,
        operation=operation,
        outcome=Outcome.RETRY,
        request_id=o.request_id,
        fault_code=err.code,
        fault_detail=str(err),
        message="Waiting until QuickBooks accepts the company again",
    )


def _apply_rejection(ctx: RunContext, link: SyncLink, o: ItemOutcome, operation: str) -> SyncAttempt:
    err = o.rejected
    assert err is not None
    decision = o.decision or Rejection()
    operation = decision.operation or operation
    if decision.link_to is not None:
        mark_linked(link, decision.link_to, now=ctx.now)
        link.qbo_name = decision.qbo_name or link.qbo_name
        link.pushed_hash = decision.pushed_hash or link.pushed_hash
        return attempt_row(
            link,
            operation=operation,
            outcome=Outcome.SUCCESS,
            request_id=o.request_id,
            fault_code=err.code,
            fault_detail=err.detail or err.message,
            message=decision.message,
        )
    mark_error(
        link,
        error_kind=decision.error_kind or "rejected",
        message=decision.message,
        code=err.code,
        detail=err.detail or err.message,
        candidates=decision.candidates,
    )
    return attempt_row(
        link,
        operation=operation,
        outcome=Outcome.REJECTED,
        request_id=o.request_id,
        fault_code=err.code,
        fault_detail=err.detail or err.message,
        message=decision.message,
    )


def _go_alone(link: SyncLink, op: Op) -> None:
    """From now on this write goes out by itself, keyed by its own requestid (same body)."""
    if not op.alone:
        # Its batch may have written it under the batch's requestid, which a lone send does not
        # share: look for it first (see `_send_alone`).
        op.maybe_committed = op.operation == "create"
    op.alone = True
    link.batch_request_id = op.request_id
    link.batch_bid = ""
    link.request_id = op.request_id
    link.pending_body = op.stored()


def _apply_resend(ctx: RunContext, link: SyncLink, o: ItemOutcome, operation: str) -> SyncAttempt:
    """A 5010: QBO refused the write (nothing written) because the entity changed meanwhile. The
    same change goes out once more with the current SyncToken, under a new requestid, now."""
    assert o.resend is not None and o.rejected is not None
    link.op_seq += 1
    o.resend.request_id = request_id_for(
        str(ctx.connection.realm_id), link.kind, link.local_id, f"{operation}:stale", link.op_seq
    )
    link.batch_request_id = o.resend.request_id
    link.batch_bid = ""
    link.request_id = o.resend.request_id
    link.pending_body = o.resend.stored()
    link.next_retry_at = None
    if link.status != SyncStatus.SKIPPED:
        link.status = SyncStatus.SYNCING
    return attempt_row(
        link,
        operation=operation,
        outcome=Outcome.RETRY,
        request_id=o.request_id,
        fault_code=o.rejected.code,
        fault_detail=o.rejected.detail or o.rejected.message,
        message="Changed in QuickBooks meanwhile; sending the change again on top of the current version.",
    )


def _apply_retry(
    ctx: RunContext, link: SyncLink, o: ItemOutcome, operation: str, rate_limit_wait: float
) -> SyncAttempt:
    err = o.retry
    assert err is not None
    retry_after = err.retry_after
    if isinstance(err, RateLimited):
        # Intuit: "wait 60 seconds before retrying" (qbo-api.md §7); a longer Retry-After wins.
        retry_after = max(retry_after or 0.0, rate_limit_wait)
    link.attempts += 1
    if o.alone:
        _go_alone(link, o.op)
    if link.attempts >= max_attempts():
        # Kept in flight: Retry re-sends the same write under the same requestid.
        mark_error(
            link,
            error_kind="unavailable",
            message=(
                "QuickBooks did not answer after several tries. Nothing was duplicated; "
                "use Retry to try again, or check QuickBooks' status page."
            ),
            code=err.code,
            detail=str(err),
            keep_in_flight=True,
        )
        outcome = Outcome.ERROR
    else:
        if link.status != SyncStatus.SKIPPED:
            link.status = SyncStatus.SYNCING
        if o.alone and err.code == "600":
            # Not a failure of QBO's: the batch's requestid is spent, the lone send can go now.
            link.next_retry_at = None
        else:
            link.next_retry_at = ctx.now + timedelta(seconds=backoff_seconds(link.attempts, retry_after))
        outcome = Outcome.RETRY
    return attempt_row(
        link,
        operation=operation,
        outcome=outcome,
        request_id=o.request_id,
        fault_code=err.code,
        fault_detail=str(err),
        message="Waiting to retry" if outcome == Outcome.RETRY else link.error_message,
    )


# Stored on a link (committed) before its batch is sent.
_IN_FLIGHT_FIELDS = [
    "batch_request_id",
    "batch_bid",
    "pending_body",
    "request_id",
    "sent_at",
    "status",
    "op_seq",
    "pending_op",
    "desired_name",
    "target_qbo_id",
    "input_hash",
    "updated_at",
]


def dispatch(ctx: RunContext, ops: list[Op]) -> int:
    """Store each chunk's requestid on its links (committed), then send it. Returns ops sent."""
    sent = 0
    realm = str(ctx.connection.realm_id)
    for start in range(0, len(ops), BATCH_SIZE):
        chunk = ops[start : start + BATCH_SIZE]
        with transaction.atomic():
            ctx.keep_lease(force=True)
            # A person may have acted on a link since it was planned (unsync, link by hand):
            # re-read under lock and drop what no longer needs this write.
            locked = {
                link.pk: link
                for link in SyncLink.objects.select_for_update().filter(pk__in=[op.link.pk for op in chunk])
            }
            chunk = [op for op in chunk if _still_wanted(op, locked.get(op.link.pk))]
            if not chunk:
                continue
            batch_rid = batch_request_id_for(realm, [op.request_id for op in chunk])
            stamp = timezone.now()
            for i, op in enumerate(chunk):
                op.link.status = locked[op.link.pk].status
                op.link.batch_request_id = batch_rid
                op.link.batch_bid = f"b{i}"
                op.link.pending_body = op.stored()
                op.link.request_id = op.request_id
                op.link.sent_at = ctx.now
                op.link.updated_at = stamp
                if op.link.status != SyncStatus.SKIPPED:
                    op.link.status = SyncStatus.SYNCING
            bulk_save_links([op.link for op in chunk], _IN_FLIGHT_FIELDS)
        _send(ctx, batch_rid, chunk)
        sent += len(chunk)
    return sent


def _still_wanted(op: Op, current: SyncLink | None) -> bool:
    if current is None or current.batch_request_id:
        return False
    if held_by_drift(current.status, current.error_kind):
        # Changed in QuickBooks since it was planned (sync/drift.py): a person chooses first.
        return False
    if current.status == SyncStatus.SKIPPED:
        # Skipped records are never written, except a delete planned because of the Skip
        # (an "Unsync payment" takes the payment out of QBO, product.md §4).
        return op.operation == "delete"
    # Linked by hand meanwhile: a create would make a second customer.
    return not (op.operation == "create" and current.qbo_id and current.status == SyncStatus.SYNCED)


def _stored_kind(stored: dict[str, Any]) -> str:
    """The kind name of a stored write; writes stored before kinds were keyed by name carry
    only the entity, which then names a kind only when exactly one kind writes it."""
    if stored.get("kind"):
        return str(stored["kind"])
    owners = [k.name for k in _KINDS.values() if k.entity == stored.get("entity")]
    return owners[0] if len(owners) == 1 else ""


REPLAY_READ_CHUNK = 500
# ctx.cache key: the kind whose plan is running (see `run_round`).
PLANNING_KIND = "planning_kind"


def replay_in_flight(ctx: RunContext) -> int:
    """Re-send writes whose outcome is unknown, exactly as they were last sent.

    A batch goes again when one of its Syncing links is due, with all its Syncing links (their
    retry times differ only by jitter). A Skipped link (a person turned it off) or one out of
    attempts (Error) is never re-sent and never starts a re-send, which keeps a long outage from
    becoming a hot loop; it keeps its stored write for a later Retry. A batch re-sent without
    such a member is a different request under the same requestid: QBO then replays the stored
    answer (the member's included) or answers 600, and either way the items that are still
    unknown go out alone (see `_send`).
    """
    due_keys = list(
        SyncLink.objects.filter(connection=ctx.connection, status=SyncStatus.SYNCING)
        .exclude(batch_request_id="")
        .filter(Q(next_retry_at__isnull=True) | Q(next_retry_at__lte=ctx.now))
        .values_list("batch_request_id", flat=True)
        .distinct()
    )
    if not due_keys:
        return 0
    groups: dict[str, list[Op]] = {}
    for start in range(0, len(due_keys), REPLAY_READ_CHUNK):
        members = SyncLink.objects.filter(
            connection=ctx.connection,
            status=SyncStatus.SYNCING,
            batch_request_id__in=due_keys[start : start + REPLAY_READ_CHUNK],
        ).order_by("batch_request_id", "batch_bid")
        for link in members:
            stored = link.pending_body if isinstance(link.pending_body, dict) else {}
            kind = _stored_kind(stored)
            if kind not in _KINDS or stored.get("operation") not in OPERATIONS:
                logger.warning(
                    "qbo.replay.unknown_kind", extra={"realm": ctx.connection.realm_id, "record": link.pk}
                )
                continue
            groups.setdefault(link.batch_request_id, []).append(Op.from_stored(link, stored, kind))
    sent = 0
    for batch_rid, ops in groups.items():
        ctx.keep_lease(force=True)
        ctx.count("replayed", len(ops))
        if ops[0].alone:
            for op in ops:
                _send_alone(ctx, op)
        else:
            ops.sort(key=lambda op: int(op.link.batch_bid[1:] or 0))
            _send(ctx, batch_rid, ops)
        sent += len(ops)
    return sent


def run_round(ctx: RunContext) -> int:
    """One round: replay what is in flight, then plan and send every kind's writes. Returns how
    much it did (0: the realm is up to date for now).

    Creates and updates go kind by kind in dependency order, so an invoice planned after its
    customer's create was recorded can refer to it; deletes and voids go after them, in reverse
    order (refunds before payments before invoices), each kind in batches of its own because
    QBO does not run a batch's items in order (qbo-api.md §4).
    """
    did = replay_in_flight(ctx)
    undoing: list[list[Op]] = []
    for kind in kinds():
        # Named while the kind reads QBO to plan: a read failure defers the run and shows that
        # kind's undecided records as Syncing (see `_defer_run`).
        ctx.cache[PLANNING_KIND] = kind.name
        ops = kind.plan(ctx)
        ctx.cache[PLANNING_KIND] = ""
        for op in ops:
            op.kind = op.kind or kind.name
        did += len(ops)
        did += ctx.cache.pop("recorded_without_write", 0)
        did += dispatch(ctx, [op for op in ops if op.operation not in UNDOING])
        undo = [op for op in ops if op.operation in UNDOING]
        if undo:
            undoing.append(undo)
    for undo in reversed(undoing):
        did += dispatch(ctx, undo)
    return did


@dataclass
class RunResult:
    ran: bool
    reason: str = ""
    summary: dict[str, int] = field(default_factory=dict)
    # When the realm should run again by itself (a deferred run, a pause, a busy lease).
    retry_at: datetime | None = None


def is_connected(connection: Connection) -> bool:
    return str(getattr(connection, "status", "")) == "connected"


# Called with (connection_id, result) after every run that ran (e.g. notifications of new
# Errors, practice/quickbooks/notify.py). A failing callback is logged; the run stands.
_AFTER_RUN: list[Callable[[int, RunResult], None]] = []


# Called with (ctx, error, op) for every write QBO refused, before the kind explains it.
_ON_REFUSED: list[Callable[[RunContext, RecordRejected, Op], None]] = []


def on_write_refused(callback: Callable[[RunContext, RecordRejected, Op], None]) -> None:
    if callback not in _ON_REFUSED:
        _ON_REFUSED.append(callback)


def on_run_finished(callback: Callable[[int, RunResult], None]) -> None:
    if callback not in _AFTER_RUN:
        _AFTER_RUN.append(callback)


def run_realm(connection_id: int, *, owner: str | None = None, client: QBOClient | None = None) -> RunResult:
    """One run for one connection (`_run_realm`), then the `on_run_finished` callbacks."""
    result = _run_realm(connection_id, owner=owner, client=client)
    if result.ran:
        for callback in list(_AFTER_RUN):
            try:
                callback(connection_id, result)
            except Exception:
                logger.exception("qbo.run.after_run_failed connection=%s", connection_id)
    return result


def _run_realm(connection_id: int, *, owner: str | None = None, client: QBOClient | None = None) -> RunResult:
    """One run for one connection: claim, replay, plan + execute per kind, loop, release."""
    from practice.quickbooks.connection.client import QBOClient
    from practice.quickbooks.models import Connection

    owner = owner or f"run-{uuid.uuid4().hex[:16]}"
    if not claim_lease(connection_id, owner):
        held_until = (
            Connection.objects.filter(pk=connection_id).values_list("lease_expires_at", flat=True).first()
        )
        return RunResult(ran=False, reason="busy", retry_at=held_until)
    try:
        connection = Connection.objects.select_related("firm").get(pk=connection_id)
        if not is_connected(connection):
            # Needs reconnect / disconnected: everything waits, nothing is marked failed.
            return RunResult(ran=False, reason=f"connection {connection.status}")
        if not connection.is_set_up:
            # Nothing goes to QBO before the owner confirmed the setup preview (product.md §2).
            return RunResult(ran=False, reason="setup not confirmed")
        if connection.is_paused and connection.pause_retry_at and connection.pause_retry_at > timezone.now():
            return RunResult(ran=False, reason="paused", retry_at=connection.pause_retry_at)
        ctx = RunContext(
            connection=connection,
            client=client or QBOClient(connection),
            owner=owner,
            now=timezone.now(),
        )
        ctx.since = plan_since(connection, now=ctx.started_at)
        ctx.client.heartbeat = ctx.keep_lease
        try:
            if connection.is_paused:
                # The probe: one cheap read. It raises CompanyUnavailable while the fault lasts.
                ctx.client.company_info()
                resume(connection)
                ctx.count("resumed")
            for _round in range(MAX_ROUNDS):
                ctx.now = timezone.now()
                if not run_round(ctx):
                    break
            else:
                # Still busy after MAX_ROUNDS (a very large backlog): hand over to a fresh run
                # rather than hold the realm for ever. The plan cursor stays where it was: the
                # next run looks at everything this one was looking at (a record not reached
                # yet may have no link to say it needs work).
                _run_succeeded(connection)
                return RunResult(ran=True, reason="more work", summary=ctx.summary)
        except ReauthRequired as e:
            # The client has already marked the connection "needs reconnect"; in-flight writes
            # keep their requestid and are replayed after reconnecting.
            logger.warning("qbo.run.reauth", extra={"realm": connection.realm_id, "error": str(e)})
            _mark_needs_reconnect(connection)
            return RunResult(ran=True, reason="reauth", summary=ctx.summary)
        except CompanyUnavailable as e:
            retry_at = pause(connection, e)
            return RunResult(ran=True, reason="paused", summary=ctx.summary, retry_at=retry_at)
        except Retriable as e:
            # QBO could not be read (429, 5xx, timeout) while planning: defer, never fail.
            retry_at = _defer_run(ctx, str(ctx.cache.get(PLANNING_KIND, "")), e)
            return RunResult(ran=True, reason="deferred", summary=ctx.summary, retry_at=retry_at)
        except LeaseLost:
            logger.warning("qbo.run.lease_lost", extra={"realm": connection.realm_id})
            return RunResult(ran=True, reason="lease lost", summary=ctx.summary)
        _planned(ctx)
        _run_succeeded(connection)
        return RunResult(ran=True, summary=ctx.summary)
    finally:
        release_lease(connection_id, owner)


def _run_succeeded(connection: Connection) -> None:
    """A run got through: forget the realm's run-level back-off."""
    from practice.quickbooks.models import RealmSyncState

    RealmSyncState.objects.filter(connection_id=connection.pk).exclude(
        run_failures=0, run_retry_at__isnull=True, run_error=""
    ).update(run_failures=0, run_retry_at=None, run_error="")


def _defer_run(ctx: RunContext, kind_name: str, err: Retriable) -> datetime:
    """Back the realm off after a run that could not read QBO, and show the records it was
    deciding as Syncing with their next attempt (none of them is at fault, so none turns Error,
    however long QBO stays away). Returns when the next run is due."""
    from practice.quickbooks.models import RealmSyncState

    RealmSyncState.objects.get_or_create(connection_id=ctx.connection.pk)
    failures = (
        RealmSyncState.objects.filter(connection_id=ctx.connection.pk)
        .values_list("run_failures", flat=True)
        .get()
    ) + 1
    retry_after = err.retry_after
    if isinstance(err, RateLimited):
        # Intuit: "wait 60 seconds before retrying" (qbo-api.md §7); a longer Retry-After wins.
        retry_after = max(retry_after or 0.0, rate_limit_wait_seconds())
    now = timezone.now()
    retry_at = now + timedelta(seconds=backoff_seconds(failures, retry_after))
    waiting = 0
    try:
        with transaction.atomic():
            ctx.keep_lease(force=True)
            RealmSyncState.objects.filter(connection_id=ctx.connection.pk).update(
                run_failures=failures, run_retry_at=retry_at, run_error=str(err)[:2000]
            )
            if kind_name:
                due = Q(status=SyncStatus.SYNCING) & (
                    Q(next_retry_at__isnull=True) | Q(next_retry_at__lte=now)
                )
                # Links this run made for records seen for the first time, not decided yet.
                fresh = Q(
                    status=SyncStatus.NOT_SYNCED, qbo_id="", pending_op="", created_at__gte=ctx.started_at
                )
                waiting = (
                    SyncLink.objects.filter(connection=ctx.connection, kind=kind_name, batch_request_id="")
                    .filter(due | fresh)
                    .update(status=SyncStatus.SYNCING, next_retry_at=retry_at, updated_at=now)
                )
    except LeaseLost:
        logger.warning("qbo.run.lease_lost", extra={"realm": ctx.connection.realm_id})
        return retry_at
    ctx.count("deferred_records", waiting)
    logger.warning(
        "qbo.run.deferred",
        extra={
            "realm": ctx.connection.realm_id,
            "kind": kind_name,
            "failures": failures,
            "retry_at": retry_at.isoformat(),
            "error": str(err),
        },
    )
    return retry_at


def pause(connection: Connection, err: CompanyUnavailable) -> datetime:
    """Pause the connection for a fault about the company or the app (not a record).

    Records keep their state: in-flight batches keep their requestid and are replayed as they
    were once the pause clears; nothing is marked Error. The next probe backs off like a retry.
    """
    from practice.quickbooks.models import Connection

    attempts = (connection.pause_attempts if connection.is_paused else 0) + 1
    now = timezone.now()
    retry_at = now + timedelta(seconds=backoff_seconds(attempts))
    Connection.objects.filter(pk=connection.pk).update(
        paused_code=err.reason,
        paused_message=str(err)[:2000],
        paused_at=connection.paused_at if connection.is_paused else now,
        pause_retry_at=retry_at,
        pause_attempts=attempts,
    )
    connection.paused_code = err.reason
    connection.pause_retry_at = retry_at
    connection.pause_attempts = attempts
    logger.warning(
        "qbo.run.paused",
        extra={"realm": connection.realm_id, "reason": err.reason, "code": err.code, "retry_at": retry_at},
    )
    return retry_at


def resume(connection: Connection) -> None:
    """QuickBooks answered normally again: clear the pause (the run goes on with the same writes)."""
    from practice.quickbooks.models import Connection

    Connection.objects.filter(pk=connection.pk).update(
        paused_code="", paused_message="", paused_at=None, pause_retry_at=None, pause_attempts=0
    )
    connection.paused_code = ""
    connection.pause_retry_at = None
    connection.pause_attempts = 0
    logger.info("qbo.run.resumed", extra={"realm": connection.realm_id})


def _mark_needs_reconnect(connection: Connection) -> None:
    from practice.quickbooks.models import Connection

    status_field = Connection._meta.get_field("status")
    choices = {c[0] for c in (status_field.choices or [])}
    if "needs_reconnect" in choices:
        Connection.objects.filter(pk=connection.pk, status="connected").update(status="needs_reconnect")

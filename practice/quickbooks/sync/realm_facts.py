"""Facts about a realm kept between runs (issue 13 item 8): read from QBO once, then reused.

A run needs a few things about the realm that rarely change: its Preferences (custom
transaction numbers, class and location tracking), its PaymentMethod list, the id of the
"Individual" CustomerType and its Class and Department names. Read on every run they were most
of a firm's metered reads (docs/performance.md §7). They live in `RealmSyncState.realm_facts`,
one entry per fact: `{"value": ..., "read_at": iso, "stale_at": iso?, "seen": [version, ...]?}`.

A run reads a fact from QBO only when it is

- missing (never read, or the realm's state was reset);
- older than `MAX_AGE` (7 days), the safety net for a change nobody told us about; or
- marked stale: `stale_at` is at or after `read_at`. The CDC sweep (sync/cdc.py) and the webhook
  receiver (sync/webhooks.py) mark a fact stale when QBO reports a change of its entity, and the
  engine does when QBO refuses a write in a way that says the fact was wrong (`note_refusal`):
  the record goes Error as before, and its Retry runs with the fact read again. A kept list
  that lacks a name a record gives (a class created in QuickBooks and not reported yet) is
  marked too (`doubt`): the record's Error says so, and its Retry reads the list.

Whatever happens meanwhile, a run reads each fact at most once (`ctx.cache`): a fact marked
stale during a run is read again by the next one.

Both times are our clock: `read_at` when the read was sent, `stale_at` when the change was
reported (the change happened before its report, so a read sent after the report sees it). A
change reported while a run was reading keeps its mark (`_save` never drops a `stale_at` newer
than its read). The same change reported again by the same source (the CDC sweep's overlap
re-reads the last minutes; a webhook retried) is recognised by its version (CDC: entity, Id and
SyncToken; webhook: the event's key; the last few kept in `seen`) and does not force another
read. A change told by both a webhook and the sweep may cost a second read (their keys differ):
one read more for a rare event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import transaction
from django.utils import timezone

from practice.quickbooks.models import RealmSyncState
from practice.quickbooks.sync import engine

if TYPE_CHECKING:
    from practice.quickbooks.connection.errors import RecordRejected
    from practice.quickbooks.sync.engine import Op, RunContext

logger = logging.getLogger("practice.quickbooks.sync")

T = TypeVar("T")

# Seven days: a change of these is rare (a firm sets them up once) and is normally reported
# within the CDC sweep's interval or by a webhook; the age limit only bounds how long a change
# that neither reported (CustomerType has neither; a lost webhook while the sweep is off) can go
# unseen. Five facts re-read weekly cost about 22 reads a firm-month; daily would be 150, a
# sixth of the budget of 1,000 (docs/performance.md §7). A wrong fact is also caught sooner by
# the refusal it causes (`note_refusal`).
MAX_AGE = timedelta(days=7)
SEEN_KEEP = 20  # versions remembered per fact (re-reports come within minutes)

PREFERENCES = "preferences"
PAYMENT_METHODS = "payment_methods"
INDIVIDUAL_TYPE = "individual_type"
CLASSES = "names:Class"
DEPARTMENTS = "names:Department"
UNDEPOSITED = "account:undeposited"  # the realm's "Undeposited Funds" account id ("" if none)


@dataclass(frozen=True)
class Fact:
    name: str
    entity: str  # the QBO entity whose change makes it stale


FACTS = (
    Fact(PREFERENCES, "Preferences"),
    Fact(PAYMENT_METHODS, "PaymentMethod"),
    Fact(INDIVIDUAL_TYPE, "CustomerType"),  # neither CDC nor webhooks report it: MAX_AGE only
    Fact(CLASSES, "Class"),
    Fact(DEPARTMENTS, "Department"),
    Fact(UNDEPOSITED, "Account"),
)
FACTS_OF_ENTITY: dict[str, tuple[str, ...]] = {}
for _fact in FACTS:
    FACTS_OF_ENTITY[_fact.entity] = (*FACTS_OF_ENTITY.get(_fact.entity, ()), _fact.name)
# What the CDC sweep asks about for the facts' sake (CustomerType is not a CDC entity, §9.3).
CDC_ENTITIES = ("Preferences", "PaymentMethod", "Class", "Department", "Account")

_LOADED = "realm_facts"  # ctx.cache key: the stored facts, loaded once per run


def _parse(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def is_fresh(entry: Any, now: datetime) -> bool:
    """Whether a stored entry may be used instead of reading QBO."""
    if not isinstance(entry, dict) or "value" not in entry:
        return False
    read_at = _parse(entry.get("read_at"))
    if read_at is None or now - read_at > MAX_AGE:
        return False
    stale_at = _parse(entry.get("stale_at"))
    return stale_at is None or stale_at < read_at


def _stored(connection_id: int) -> dict[str, Any]:
    facts = (
        RealmSyncState.objects.filter(connection_id=connection_id)
        .values_list("realm_facts", flat=True)
        .first()
    )
    return dict(facts) if isinstance(facts, dict) else {}


def get(ctx: RunContext, name: str, read: Callable[[], T]) -> T:
    """The fact `name`: this run's copy, else the stored one while fresh, else `read()` from QBO
    (stored for the next runs). A failed read raises as before and stores nothing."""
    key = f"fact:{name}"
    if key in ctx.cache:
        value: T = ctx.cache[key]
        return value
    if _LOADED not in ctx.cache:
        ctx.cache[_LOADED] = _stored(ctx.connection.pk)
    entry = ctx.cache[_LOADED].get(name)
    if is_fresh(entry, timezone.now()):
        value = entry["value"]
        ctx.count("realm_facts.reused")
    else:
        started = timezone.now()
        value = read()
        _save(ctx.connection.pk, name, value, started)
        ctx.count("realm_facts.read")
        ctx.cache[f"{key}:read"] = True
    ctx.cache[key] = value
    return value


def doubt(ctx: RunContext, name: str) -> None:
    """A kept fact lacks what a record names (a class someone may have just created in
    QuickBooks): unless this run read it from QBO, the next run reads it again, so the record's
    Retry sees the new one even when no webhook or sweep has told of it yet. Once per run."""
    key = f"fact:{name}"
    if ctx.cache.get(f"{key}:read") or ctx.cache.get(f"{key}:doubted"):
        return
    ctx.cache[f"{key}:doubted"] = True
    mark_stale(ctx.connection.pk, {name: {None}})


def _save(connection_id: int, name: str, value: Any, started: datetime) -> None:
    RealmSyncState.objects.get_or_create(connection_id=connection_id)
    with transaction.atomic():
        locked = RealmSyncState.objects.select_for_update().only("realm_facts")
        state = locked.get(connection_id=connection_id)
        facts = dict(state.realm_facts or {})
        entry: dict[str, Any] = {"value": value, "read_at": started.isoformat()}
        old = facts.get(name)
        if isinstance(old, dict):
            stale_at = _parse(old.get("stale_at"))
            if stale_at is not None and stale_at >= started:
                entry["stale_at"] = stale_at.isoformat()  # reported while we read: read again next run
            if old.get("seen"):
                entry["seen"] = old["seen"]
        facts[name] = entry
        RealmSyncState.objects.filter(connection_id=connection_id).update(realm_facts=facts)


def mark_stale(connection_id: int, names: dict[str, set[str | None]]) -> list[str]:
    """Mark facts stale now, for the reported versions of their entity (None: a change without
    a version, always marked); a version already reported marks nothing. Returns the names marked."""
    if not names:
        return []
    now = timezone.now()
    marked: list[str] = []
    with transaction.atomic():
        state = (
            RealmSyncState.objects.select_for_update()
            .only("realm_facts")
            .filter(connection_id=connection_id)
            .first()
        )
        if state is None:
            return []  # no run yet: nothing was read
        facts = dict(state.realm_facts or {})
        for name, versions in names.items():
            # A fact not stored yet may be being read right now: the mark alone is kept, so the
            # read's `_save` keeps it too and the next run reads again.
            entry = facts.get(name)
            if not isinstance(entry, dict):
                entry = {}
            seen = list(entry.get("seen") or [])
            new = sorted(v for v in versions if v is not None and v not in seen)
            if not new and None not in versions:
                continue  # told again of a change already marked
            facts[name] = {**entry, "stale_at": now.isoformat(), "seen": (seen + new)[-SEEN_KEEP:]}
            marked.append(name)
        if marked:
            RealmSyncState.objects.filter(connection_id=connection_id).update(realm_facts=facts)
    if marked:
        logger.info("qbo.realm_facts.stale", extra={"connection": connection_id, "facts": marked})
    return marked


def mark_all_stale(connection_id: int) -> list[str]:
    """Every fact (a CDC cursor started or too old to tell what changed)."""
    return mark_stale(connection_id, {fact.name: {None} for fact in FACTS})


def note_changes(connection_id: int, changes: Iterable[tuple[str, str | None]]) -> list[str]:
    """QBO reported changes of these entities (CDC objects, webhook events), each with its
    version when known (`version`): mark the facts they feed stale."""
    names: dict[str, set[str | None]] = {}
    for entity, version in changes:
        for name in FACTS_OF_ENTITY.get(entity, ()):
            names.setdefault(name, set()).add(version)
    return mark_stale(connection_id, names)


def version(entity: str, body: dict[str, Any]) -> str:
    """A changed object's version as CDC reports it: entity, Id and SyncToken (or deleted)."""
    token = "Deleted" if str(body.get("status", "")) == "Deleted" else str(body.get("SyncToken", ""))
    return f"{entity}|{body.get('Id', '')}|{token}"


# Which fact a refused reference points at.
_REFERENCE_FACTS = {
    "ClassRef": (CLASSES, PREFERENCES),  # a class unknown, or class tracking turned off
    "DepartmentRef": (DEPARTMENTS, PREFERENCES),
    "PaymentMethodRef": (PAYMENT_METHODS,),
    "CustomerTypeRef": (INDIVIDUAL_TYPE,),
    "DepositToAccountRef": (UNDEPOSITED,),
}


def _referenced(body: dict[str, Any]) -> set[str]:
    """The fact references a write body carries (header and lines)."""
    found = {ref for ref in _REFERENCE_FACTS if body.get(ref)}
    for line in body.get("Line") or []:
        if isinstance(line, dict):
            for detail in line.values():
                if isinstance(detail, dict) and detail.get("ClassRef"):
                    found.add("ClassRef")
    return found


def facts_refused(err: RecordRejected, body: dict[str, Any]) -> set[str]:
    """The facts a refusal says were wrong:

    - a 2500 "Invalid Reference Id" or 610 "Object Not Found" naming a ClassRef, DepartmentRef,
      PaymentMethodRef or CustomerTypeRef element, or naming none (a batch item's 610 often has an
      empty element) while the body carried such a reference: the list it came from;
    - a refusal about the DocNumber other than a duplicate (6140 is about the number, not the
      setting): a number sent while custom transaction numbers are off, so the Preferences.
    """
    element = str(err.element or "")
    names: set[str] = set()
    if err.code in ("2500", "610"):
        refs = [ref for ref in _REFERENCE_FACTS if ref in element] if element else sorted(_referenced(body))
        for ref in refs:
            names.update(_REFERENCE_FACTS[ref])
    if "DocNumber" in element and not err.is_duplicate_docnumber:
        names.add(PREFERENCES)
    return names


def note_refusal(ctx: RunContext, err: RecordRejected, op: Op) -> None:
    """Called by the engine for every refused write, before its kind explains it."""
    names = facts_refused(err, op.body)
    if names:
        mark_stale(ctx.connection.pk, {name: {None} for name in names})


engine.on_write_refused(note_refusal)

"""Background tasks of QBO sync (django-tasks; worker: `manage.py db_worker` / `run_worker`).

- `sync_realm(connection_id)`: one engine run for one connection. Enqueued on commit of any
  relevant change (`triggers.on_record_changed`), de-duplicated while one is queued.
- After a run that leaves retries waiting, `schedule_next_retry` enqueues one delayed run for
  the earliest of the realm's waiting retries: a record's `next_retry_at`, a run deferred
  because QBO could not be read to plan (`run_retry_at`), the next probe of a paused connection
  (`pause_retry_at`), or the expiry of another runner's lease. Back-off retries happen on time
  by themselves, and never sooner than their back-off.
- `sweep()`: the periodic safety net. Re-enqueues realms with due retries, realms whose queued
  run was lost (a killed worker), realms whose last run was deferred or aborted, realms whose
  runner died holding the lease (a `kill -9`: the run resumes at the lease's expiry), and, with
  `all_realms`, every connected realm (lost events cannot lose data because each run re-plans
  from state). It runs every minute beside the
  worker (`run_worker --sweep-every`, default 60 s, calls `sweep_now()` in a thread); the
  `qbo_sweep` management command (`--loop 60` keeps it running) is there for plain `db_worker`.
  It also enqueues the CDC sweep (`cdc_sweep`, sync/cdc.py) of each connection due one.

Both are safe to run twice: the engine's lease lets one run work a realm at a time.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_tasks import task

logger = logging.getLogger("practice.quickbooks.tasks")

# A queued run older than this is assumed lost (its worker died before starting it).
STALE_QUEUE_SECONDS = 600


def enqueue_sync(connection_id: int, *, delay_seconds: float = 0) -> bool:
    """Enqueue a run after the current transaction commits, unless one is already queued.

    The de-duplication is a conditional UPDATE of `RealmSyncState.queued_at` (NULL → now): of
    many changes in a burst, one wins and enqueues; the run clears the flag when it starts, so
    a change made during a run enqueues the next one.
    """
    from practice.quickbooks.models import RealmSyncState

    def _enqueue() -> None:
        now = timezone.now()
        RealmSyncState.objects.get_or_create(connection_id=connection_id)
        won = RealmSyncState.objects.filter(connection_id=connection_id, queued_at__isnull=True).update(
            queued_at=now
        )
        if not won:
            return
        try:
            if delay_seconds > 0:
                sync_realm.using(run_after=now + timedelta(seconds=delay_seconds)).enqueue(connection_id)
            else:
                sync_realm.enqueue(connection_id)
        except Exception:
            # Could not enqueue: let the next change (or the sweep) try again.
            RealmSyncState.objects.filter(connection_id=connection_id).update(queued_at=None)
            raise

    transaction.on_commit(_enqueue, robust=True)
    return True


def run_now(connection_id: int) -> dict[str, Any]:
    """The body of `sync_realm`, callable directly (tests, `qbo_sync`)."""
    from practice.quickbooks.models import RealmSyncState
    from practice.quickbooks.sync import engine

    RealmSyncState.objects.get_or_create(connection_id=connection_id)
    RealmSyncState.objects.filter(connection_id=connection_id).update(
        queued_at=None, last_run_started_at=timezone.now()
    )
    try:
        result = engine.run_realm(connection_id)
    except Exception as exc:
        # An unexpected failure (a bug, the database): back the realm off and let the sweep
        # pick it up again, so a record never stays "Not synced" with nothing scheduled.
        _record_aborted_run(connection_id, exc)
        raise
    if result.reason == "more work":
        enqueue_sync(connection_id, delay_seconds=5)
    elif result.reason == "busy":
        # Another runner holds the realm (it may have planned before our change): look again
        # when its lease runs out, or sooner if it finishes and a change enqueues a run. Not
        # every few seconds: a long run would otherwise be polled all along.
        schedule_next_retry(connection_id, also_at=result.retry_at)
    elif result.ran or result.reason == "paused":
        schedule_next_retry(connection_id, also_at=result.retry_at)
    RealmSyncState.objects.filter(connection_id=connection_id).update(
        last_run_finished_at=timezone.now(),
        last_run_summary={"ran": result.ran, "reason": result.reason, **result.summary},
    )
    return {"ran": result.ran, "reason": result.reason, "summary": result.summary}


def _record_aborted_run(connection_id: int, exc: BaseException) -> None:
    from practice.quickbooks.models import RealmSyncState
    from practice.quickbooks.sync import engine

    state = RealmSyncState.objects.filter(connection_id=connection_id).first()
    failures = (state.run_failures if state else 0) + 1
    retry_at = timezone.now() + timedelta(seconds=engine.backoff_seconds(failures))
    RealmSyncState.objects.filter(connection_id=connection_id).update(
        run_failures=failures,
        run_retry_at=retry_at,
        run_error=f"{type(exc).__name__}: {exc}"[:2000],
        last_run_finished_at=timezone.now(),
        last_run_summary={"ran": False, "reason": "aborted", "error": type(exc).__name__},
    )
    logger.exception("qbo.run.aborted", extra={"connection": connection_id, "retry_at": retry_at})


def schedule_next_retry(connection_id: int, *, also_at: datetime | None = None) -> bool:
    """Enqueue a delayed run for the realm's earliest waiting retry, unless one is due sooner.

    Waiting retries: records' `next_retry_at`, the realm's deferred run (`run_retry_at`), the
    next probe of a paused connection, and `also_at` (another runner's lease expiry). Retries
    then happen on time without a sweep; the sweep stays as the safety net for lost tasks.
    Separate from the `queued_at` de-duplication, so a delayed retry run never holds back a
    change made meanwhile.
    """
    from practice.quickbooks.models import Connection, RealmSyncState, SyncLink
    from practice.quickbooks.statuses import SyncStatus

    now = timezone.now()
    candidates: list[datetime] = []
    link_due = (
        SyncLink.objects.filter(connection_id=connection_id, status=SyncStatus.SYNCING, next_retry_at__gt=now)
        .order_by("next_retry_at")
        .values_list("next_retry_at", flat=True)
        .first()
    )
    state = RealmSyncState.objects.filter(connection_id=connection_id)
    run_due = state.values_list("run_retry_at", flat=True)
    probe_due = Connection.objects.filter(pk=connection_id).exclude(paused_code="")
    for when in (
        link_due,
        run_due.first(),
        probe_due.values_list("pause_retry_at", flat=True).first(),
        # A lease is free only once its expiry has passed (claim_lease compares with "<").
        also_at + timedelta(seconds=1) if also_at is not None else None,
    ):
        if when is not None:
            candidates.append(max(when, now))
    if not candidates:
        return False
    earliest = min(candidates)
    RealmSyncState.objects.get_or_create(connection_id=connection_id)
    won = (
        RealmSyncState.objects.filter(connection_id=connection_id)
        .filter(Q(retry_run_at__isnull=True) | Q(retry_run_at__lt=now) | Q(retry_run_at__gt=earliest))
        .update(retry_run_at=earliest)
    )
    if won:
        transaction.on_commit(
            lambda: sync_realm.using(run_after=earliest).enqueue(connection_id),
            robust=True,
        )
    return bool(won)


@task()
def sync_realm(connection_id: int) -> dict[str, Any]:
    return run_now(connection_id)


@task()
def apply_qbo_changes(connection_id: int) -> int:
    """Look at the changes QBO told us about (webhook or CDC ChangeNotice rows) for one connection.

    Enqueued by the webhook receiver after it stored the notices (it must answer Intuit within
    3 s, so it never reads QBO itself) and by the CDC sweep. Returns how many notices it applied.
    """
    from practice.quickbooks.sync.drift import apply_change_notices

    applied = apply_change_notices(connection_id)
    apply_later_if_held(connection_id)
    return applied


def apply_later_if_held(connection_id: int) -> bool:
    """Notices that waited because a run held the realm: apply them once its lease runs out."""
    from practice.quickbooks.sync.drift import held_until

    when = held_until(connection_id)
    if when is None:
        return False
    transaction.on_commit(
        partial(apply_qbo_changes.using(run_after=when).enqueue, connection_id), robust=True
    )
    return True


@task()
def cdc_sweep(connection_id: int) -> dict[str, Any]:
    """One CDC sweep of one connection (sync/cdc.py): the changes made inside QuickBooks since
    the last one, applied as drift. Enqueued by `sweep_now` every QBO_CDC_INTERVAL_SECONDS."""
    from practice.quickbooks.sync.cdc import sweep_connection

    result = sweep_connection(connection_id)
    apply_later_if_held(connection_id)
    return {"reason": result.reason, "requests": result.requests, "notices": result.notices}


def enqueue_cdc_sweeps(now: datetime | None = None) -> int:
    """Enqueue `cdc_sweep` for each connection due one (connected, set up, not paused, last
    sweep older than QBO_CDC_INTERVAL_SECONDS; 0 turns it off). Returns how many."""
    from practice.quickbooks.sync import cdc

    now = now or timezone.now()
    enqueued = 0
    for connection_id in cdc.due_connections(now):
        with transaction.atomic():
            if not cdc.claim(connection_id, now):
                continue  # another sweep enqueued it first
            transaction.on_commit(partial(cdc_sweep.enqueue, connection_id), robust=True)
        enqueued += 1
    return enqueued


def sweep_now(*, all_realms: bool = False) -> int:
    """Enqueue runs for realms that need one, and the CDC sweeps that are due. Returns how many
    runs were enqueued."""
    from practice.quickbooks.models import Connection, RealmSyncState, SyncLink
    from practice.quickbooks.statuses import SyncStatus

    now = timezone.now()
    # A queued run that never started: its task was lost; allow a new one.
    RealmSyncState.objects.filter(queued_at__lt=now - timedelta(seconds=STALE_QUEUE_SECONDS)).update(
        queued_at=None
    )
    connected = Connection.objects.filter(status="connected", setup_completed_at__isnull=False)
    if all_realms:
        ids = set(connected.values_list("pk", flat=True))
    else:
        due = SyncLink.objects.filter(status=SyncStatus.SYNCING).filter(
            Q(next_retry_at__isnull=True) | Q(next_retry_at__lte=now)
        )
        # A run deferred (QBO unreadable while planning) or aborted (an exception), now due.
        deferred = RealmSyncState.objects.filter(run_retry_at__lte=now)
        ids = set(
            connected.filter(
                Q(pk__in=due.values("connection_id"))
                | Q(pk__in=deferred.values("connection_id"))
                | Q(pause_retry_at__lte=now)  # a paused connection's probe
                # A runner that died holding the lease (kill -9, OOM): its `finally` never
                # released it. Expired: run now.
                | Q(lease_expires_at__lt=now) & ~Q(lease_owner="")
            ).values_list("pk", flat=True)
        )
        # Held and not expired: alive, or killed a moment ago. A run at its expiry resumes the
        # realm within the lease's length of a crash (or finds it busy, and looks again then).
        held = connected.exclude(lease_owner="").filter(lease_expires_at__gte=now).exclude(pk__in=ids)
        for connection_id, expires in held.values_list("pk", "lease_expires_at"):
            with transaction.atomic():
                schedule_next_retry(connection_id, also_at=expires)
    for connection_id in ids:
        with transaction.atomic():
            enqueue_sync(connection_id)
    cdc_sweeps = enqueue_cdc_sweeps(now)
    if ids or cdc_sweeps:
        logger.info("qbo.sweep", extra={"enqueued": len(ids), "cdc_sweeps": cdc_sweeps})
    return len(ids)


@task()
def sweep(all_realms: bool = False) -> int:
    return sweep_now(all_realms=all_realms)

"""Background tasks of QBO sync (django-tasks; worker: `manage.py db_worker` / `run_worker`).

- `sync_realm(connection_id)`: one engine run for one connection. Enqueued on commit of any
  relevant change (`triggers.on_record_changed`), de-duplicated while one is queued.
- After a run that leaves retries waiting, `schedule_next_retry` enqueues one delayed run for
  the earliest `next_retry_at` of the realm, so back-off retries happen on time by themselves.
- `sweep()`: the periodic safety net. Re-enqueues realms with due retries, realms whose queued
  run was lost (a killed worker), and, with `all_realms`, every connected realm (lost events
  cannot lose data because each run re-plans from state). It runs every minute beside the
  worker (`run_worker --sweep-every`, default 60 s, calls `sweep_now()` in a thread); the
  `qbo_sweep` management command (`--loop 60` keeps it running) is there for plain `db_worker`.

Both are safe to run twice: the engine's lease lets one run work a realm at a time.
"""

from __future__ import annotations

import logging
from datetime import timedelta
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
    result = engine.run_realm(connection_id)
    if result.reason in ("busy", "more work"):
        # Another runner holds the realm (it may have planned before our change), or this run
        # stopped with work left: look again soon.
        enqueue_sync(connection_id, delay_seconds=5)
    elif result.ran:
        schedule_next_retry(connection_id)
    RealmSyncState.objects.filter(connection_id=connection_id).update(
        last_run_finished_at=timezone.now(),
        last_run_summary={"ran": result.ran, "reason": result.reason, **result.summary},
    )
    return {"ran": result.ran, "reason": result.reason, "summary": result.summary}


def schedule_next_retry(connection_id: int) -> bool:
    """Enqueue a delayed run for the realm's earliest waiting retry, unless one is due sooner.

    Retries then happen on time without a sweep; the sweep stays as the safety net for lost
    tasks. Separate from the `queued_at` de-duplication, so a delayed retry run never holds back
    a change made meanwhile.
    """
    from practice.quickbooks.models import RealmSyncState, SyncLink
    from practice.quickbooks.statuses import SyncStatus

    now = timezone.now()
    earliest = (
        SyncLink.objects.filter(connection_id=connection_id, status=SyncStatus.SYNCING, next_retry_at__gt=now)
        .order_by("next_retry_at")
        .values_list("next_retry_at", flat=True)
        .first()
    )
    if earliest is None:
        return False
    RealmSyncState.objects.get_or_create(connection_id=connection_id)
    won = (
        RealmSyncState.objects.filter(connection_id=connection_id)
        .filter(Q(retry_run_at__isnull=True) | Q(retry_run_at__lt=now) | Q(retry_run_at__gt=earliest))
        .update(retry_run_at=earliest)
    )
    if won:
        transaction.on_commit(
            lambda: sync_realm.using(run_after=earliest).enqueue(connection_id), robust=True
        )
    return bool(won)


@task()
def sync_realm(connection_id: int) -> dict[str, Any]:
    return run_now(connection_id)


def sweep_now(*, all_realms: bool = False) -> int:
    """Enqueue runs for realms that need one. Returns how many were enqueued."""
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
        ids = set(connected.filter(pk__in=due.values("connection_id")).values_list("pk", flat=True))
    for connection_id in ids:
        with transaction.atomic():
            enqueue_sync(connection_id)
    if ids:
        logger.info("qbo.sweep", extra={"enqueued": len(ids)})
    return len(ids)


@task()
def sweep(all_realms: bool = False) -> int:
    return sweep_now(all_realms=all_realms)

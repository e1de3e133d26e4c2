"""Background-work plumbing shared by every app: enqueue after commit, and the reaper.

Tasks use Django's Tasks API (`from django_tasks import task` on Django 5.2) with the database
backend; workers run `manage.py run_worker` (db_worker plus the reaper).

Why a reaper: db_worker marks a task RUNNING when it claims it and runs it outside any
transaction, with no lease or heartbeat. A worker killed mid-task (SIGKILL, OOM, a lost machine)
leaves the row RUNNING forever and no other worker will pick it up (stack-notes G3). The reaper
puts such rows back to READY so the work is retried; tasks must therefore be safe to run twice
(architecture.md §4). Which RUNNING rows are orphans:

- the worker that claimed it (the last of `worker_ids`) runs under `run_worker`, which records a
  WorkerHeartbeat every TASK_WORKER_HEARTBEAT_SECONDS: if that heartbeat is older than
  TASK_WORKER_DEAD_AFTER_SECONDS the worker is dead and the task is requeued, however young it
  is; while the heartbeat is fresh the task is left alone, however long it runs;
- a worker with no heartbeat (a plain `db_worker`): the task is requeued once it has been
  RUNNING longer than TASK_REAPER_STALE_SECONDS (the `older_than_seconds` argument).

A task that keeps killing its worker is not retried forever: after TASK_REAPER_MAX_ATTEMPTS
claims it is marked FAILED.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from practice.common.models import WorkerHeartbeat

logger = logging.getLogger(__name__)

# What a reaped-for-good task reports as its error (the worker died; there is no exception).
WORKER_LOST = "practice.common.tasks.WorkerLost"


class WorkerLost(Exception):
    """Recorded on tasks whose workers died too often while running them."""


def enqueue_on_commit(task: Any, *args: Any, using: str | None = None, **kwargs: Any) -> None:
    """Enqueue `task(*args, **kwargs)` once the current transaction commits (now if none).

    A task enqueued inside a transaction could start before the data it reads is committed, or
    run for data that is then rolled back. `robust=True`: the caller's write has succeeded by
    then, so a failure to enqueue is logged, not turned into an error for that write (the sync
    engine re-plans from state, so a lost enqueue is caught by the next sweep).
    """
    transaction.on_commit(functools.partial(task.enqueue, *args, **kwargs), using=using, robust=True)


@dataclass
class ReapResult:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.requeued or self.failed)


def heartbeat(worker_id: str, *, now: datetime | None = None) -> None:
    """Record that `worker_id` is alive (one small upsert)."""
    now = now or timezone.now()
    updated = WorkerHeartbeat.objects.filter(pk=worker_id).update(last_seen=now)
    if not updated:
        WorkerHeartbeat.objects.update_or_create(
            pk=worker_id,
            defaults={
                "hostname": socket.gethostname()[:255],
                "pid": os.getpid(),
                "started_at": now,
                "last_seen": now,
            },
        )


def heartbeat_stop(worker_id: str) -> None:
    """A worker going away: mark it dead at once, so anything it left RUNNING is reaped now."""
    WorkerHeartbeat.objects.filter(pk=worker_id).update(last_seen=datetime(2000, 1, 1, tzinfo=UTC))


def _dead_after() -> float:
    return float(getattr(settings, "TASK_WORKER_DEAD_AFTER_SECONDS", 60))


def reap_stale_tasks(
    older_than_seconds: float | None = None,
    *,
    max_attempts: int | None = None,
    now: datetime | None = None,
) -> ReapResult:
    """Put tasks whose worker died back to READY (see the module docstring for "died").

    `older_than_seconds` (default settings.TASK_REAPER_STALE_SECONDS) applies to tasks of
    workers without heartbeats. A task already claimed `max_attempts` times (one worker id per
    claim in `worker_ids`) is marked FAILED with `WorkerLost` instead. Each row is updated with
    a condition on its status and start time, so a task that finished, or was re-claimed, while
    we looked is left alone; that makes the reaper safe to run from many workers at once, on
    SQLite and PostgreSQL.
    """
    if older_than_seconds is None:
        older_than_seconds = settings.TASK_REAPER_STALE_SECONDS
    if max_attempts is None:
        max_attempts = getattr(settings, "TASK_REAPER_MAX_ATTEMPTS", 5)
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=older_than_seconds)
    result = ReapResult()
    running = list(DBTaskResult.objects.running().only("id", "started_at", "worker_ids", "task_path"))
    claimed_by = {row.pk: (row.worker_ids or [""])[-1] for row in running}
    beats = dict(
        WorkerHeartbeat.objects.filter(pk__in=set(claimed_by.values())).values_list("pk", "last_seen")
    )
    alive_since = now - timedelta(seconds=_dead_after())
    for row in running:
        last_seen = beats.get(claimed_by[row.pk])
        if last_seen is not None:
            if last_seen >= alive_since:
                continue  # its worker is alive: a long task, not an orphan
        elif row.started_at is None or row.started_at >= cutoff:
            continue  # no heartbeat to go by, and not old enough to presume the worker dead
        same_claim = DBTaskResult.objects.filter(
            pk=row.pk, status=TaskResultStatus.RUNNING, started_at=row.started_at
        )
        attempts = len(row.worker_ids or [])
        if attempts >= max_attempts:
            updated = same_claim.update(
                status=TaskResultStatus.FAILED,
                finished_at=now,
                exception_class_path=WORKER_LOST,
                traceback=(
                    f"{WORKER_LOST}: the worker running this task stopped without finishing it "
                    f"{attempts} times (worker ids: {', '.join(row.worker_ids or [])})."
                ),
                return_value=None,
            )
            if updated:
                result.failed.append(str(row.pk))
                logger.error(
                    "tasks.reaper.failed task=%s path=%s attempts=%d", row.pk, row.task_path, attempts
                )
        else:
            # started_at is cleared so the row reads like a freshly enqueued one; worker_ids keeps
            # the history of claims (it is how attempts are counted).
            updated = same_claim.update(status=TaskResultStatus.READY, started_at=None)
            if updated:
                result.requeued.append(str(row.pk))
                logger.warning(
                    "tasks.reaper.requeued task=%s path=%s attempts=%d", row.pk, row.task_path, attempts
                )
    # Heartbeats of workers gone for a day are history nobody needs.
    WorkerHeartbeat.objects.filter(last_seen__lt=now - timedelta(days=1)).delete()
    return result


class ReaperThread(threading.Thread):
    """Beside a worker, until `stop()`: its heartbeat every `beat_seconds` (when it has a
    `worker_id`) and the reaper every `every_seconds` (0: never)."""

    def __init__(
        self,
        *,
        every_seconds: float,
        older_than_seconds: float | None = None,
        worker_id: str | None = None,
        beat_seconds: float | None = None,
    ) -> None:
        super().__init__(name="task-reaper", daemon=True)
        self.every_seconds = every_seconds
        self.older_than_seconds = older_than_seconds
        self.worker_id = worker_id
        if beat_seconds is None:
            beat_seconds = float(getattr(settings, "TASK_WORKER_HEARTBEAT_SECONDS", 10))
        self.beat_seconds = beat_seconds
        self._stop_event = threading.Event()
        self.runs = 0

    def run(self) -> None:
        periods = [p for p in (self.every_seconds, self.beat_seconds if self.worker_id else 0) if p > 0]
        if not periods:
            return
        tick = min(periods)
        next_reap = time.monotonic() + self.every_seconds
        while not self._stop_event.wait(tick):
            try:
                if self.worker_id:
                    heartbeat(self.worker_id)
                if self.every_seconds > 0 and time.monotonic() >= next_reap:
                    next_reap = time.monotonic() + self.every_seconds
                    reap_stale_tasks(self.older_than_seconds)
                    self.runs += 1
            except Exception:
                # A database hiccup must not kill the thread; the next round tries again.
                logger.exception("tasks.reaper.error")
            finally:
                # This thread has its own connection; don't keep a stale one between rounds.
                close_old_connections()

    def stop(self) -> None:
        self._stop_event.set()

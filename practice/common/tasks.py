"""Background-work plumbing shared by every app: enqueue after commit, and the reaper.

Tasks use Django's Tasks API (`from django_tasks import task` on Django 5.2) with the database
backend; workers run `manage.py run_worker` (db_worker plus the reaper).

Why a reaper: db_worker marks a task RUNNING when it claims it and runs it outside any
transaction, with no lease or heartbeat. A worker killed mid-task (SIGKILL, OOM, a lost machine)
leaves the row RUNNING forever and no other worker will pick it up (stack-notes G3). The reaper
puts such rows back to READY once they have been RUNNING longer than any real task takes
(settings.TASK_REAPER_STALE_SECONDS), so the work is retried. Tasks must therefore be safe to
run twice (architecture.md §4). A task that keeps killing its worker is not retried forever:
after TASK_REAPER_MAX_ATTEMPTS claims it is marked FAILED.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.models import DBTaskResult

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


def reap_stale_tasks(
    older_than_seconds: float | None = None,
    *,
    max_attempts: int | None = None,
    now: datetime | None = None,
) -> ReapResult:
    """Put tasks RUNNING for longer than `older_than_seconds` back to READY.

    A task already claimed `max_attempts` times (one worker id per claim in `worker_ids`) is
    marked FAILED with `WorkerLost` instead. Each row is updated with a condition on its status
    and start time, so a task that finished, or was re-claimed, while we looked is left alone;
    that makes the reaper safe to run from many workers at once, on SQLite and PostgreSQL.
    """
    if older_than_seconds is None:
        older_than_seconds = settings.TASK_REAPER_STALE_SECONDS
    if max_attempts is None:
        max_attempts = getattr(settings, "TASK_REAPER_MAX_ATTEMPTS", 5)
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=older_than_seconds)
    result = ReapResult()
    stale = DBTaskResult.objects.running().filter(started_at__lt=cutoff)
    for row in stale.only("id", "started_at", "worker_ids", "task_path"):
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
    return result


class ReaperThread(threading.Thread):
    """Runs the reaper every `every_seconds` next to a worker, until `stop()`."""

    def __init__(self, *, every_seconds: float, older_than_seconds: float | None = None) -> None:
        super().__init__(name="task-reaper", daemon=True)
        self.every_seconds = every_seconds
        self.older_than_seconds = older_than_seconds
        self._stop_event = threading.Event()
        self.runs = 0

    def run(self) -> None:
        while not self._stop_event.wait(self.every_seconds):
            try:
                reap_stale_tasks(self.older_than_seconds)
            except Exception:
                # A database hiccup must not kill the reaper; the next round tries again.
                logger.exception("tasks.reaper.error")
            finally:
                self.runs += 1
                # This thread has its own connection; don't keep a stale one between rounds.
                close_old_connections()

    def stop(self) -> None:
        self._stop_event.set()

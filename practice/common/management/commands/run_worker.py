"""`manage.py run_worker`: django-tasks-db's `db_worker`, with a heartbeat and the reaper beside it.

The worker records a heartbeat (practice.common.models.WorkerHeartbeat) every
TASK_WORKER_HEARTBEAT_SECONDS, so the reaper can tell its long tasks from a dead worker's. The
reaper runs once before the first task is claimed (a restarted worker picks up what its killed
predecessor left RUNNING) and then every --reap-every seconds in a thread, so a pool of workers
keeps the queue healthy with no cron job. Several workers reaping at once is safe: the reaper's
updates are conditional (see practice.common.tasks.reap_stale_tasks).

Beside them, a sweep thread calls `practice.quickbooks.sync.tasks.sweep_now()` every --sweep-every
seconds (default QBO_SWEEP_INTERVAL_SECONDS, 60): it re-enqueues realms with due retries and
runs lost with a killed worker. An exception there is logged; it never stops the worker.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections
from django.utils.crypto import get_random_string

from practice.common.tasks import ReaperThread, heartbeat, heartbeat_stop, reap_stale_tasks

logger = logging.getLogger("practice.common.worker")


class SweepThread(threading.Thread):
    """Calls the QBO sweep now and then every `every_seconds` until `stop()`."""

    def __init__(self, *, every_seconds: float) -> None:
        super().__init__(name="qbo-sweep", daemon=True)
        self.every_seconds = every_seconds
        self._stop_event = threading.Event()
        self.runs = 0

    def run(self) -> None:
        while True:
            try:
                from practice.quickbooks.sync.tasks import sweep_now

                sweep_now()
                self.runs += 1
            except Exception:
                # A database or QBO hiccup must not kill the thread (or the worker): try again later.
                logger.exception("tasks.sweep.error")
            finally:
                close_old_connections()
            if self._stop_event.wait(self.every_seconds):
                return

    def stop(self) -> None:
        self._stop_event.set()


class Command(BaseCommand):
    help = "Run a background worker (db_worker) and reap tasks left RUNNING by killed workers."

    def add_arguments(self, parser: CommandParser) -> None:
        # The db_worker options people use, passed through unchanged.
        parser.add_argument("--queue-name", default="default", help="Queues, comma-separated, or '*'.")
        parser.add_argument("--exclude-queues", default="", help="With --queue-name='*'.")
        # An idle worker notices a new task after half this on average; the poll is one indexed
        # SELECT, so a quarter second keeps "issued → in QuickBooks" well under a second
        # (docs/performance.md §4) for a few queries a second per idle worker.
        parser.add_argument("--interval", type=float, default=0.25, help="Seconds between polls when idle.")
        parser.add_argument("--batch", action="store_true", help="Run what is queued, then exit.")
        parser.add_argument("--max-tasks", type=int, default=None)
        parser.add_argument("--worker-id", default=None, help="Unique per worker (default: random).")
        parser.add_argument("--backend", default="default", dest="backend_name")
        parser.add_argument("--no-startup-delay", action="store_false", dest="startup_delay")
        parser.add_argument(
            "--reload",
            action="store_true",
            help="Restart on code changes (development only; off unless given, unlike db_worker).",
        )
        parser.add_argument(
            "--reap-every",
            type=float,
            default=None,
            help="Seconds between reaper runs (default: TASK_REAPER_INTERVAL_SECONDS; 0: at start only).",
        )
        parser.add_argument(
            "--stale-seconds",
            type=float,
            default=None,
            help="Reap tasks RUNNING longer than this (default: settings.TASK_REAPER_STALE_SECONDS).",
        )
        parser.add_argument(
            "--sweep-every",
            type=float,
            default=None,
            help="Seconds between QBO sweeps (default: QBO_SWEEP_INTERVAL_SECONDS, 60; 0: never).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stale = options["stale_seconds"]
        if stale is None:
            stale = settings.TASK_REAPER_STALE_SECONDS
        every = options["reap_every"]
        if every is None:
            every = getattr(settings, "TASK_REAPER_INTERVAL_SECONDS", 60)

        # db_worker would pick its own random id; we need it to sign the heartbeat.
        worker_id = options["worker_id"] or get_random_string(32)
        heartbeat(worker_id)
        result = reap_stale_tasks(stale)
        if result:
            self.stdout.write(
                f"Reaper: requeued {len(result.requeued)}, failed {len(result.failed)} stale task(s)."
            )
        close_old_connections()

        beside = ReaperThread(
            every_seconds=0 if options["batch"] else every,
            older_than_seconds=stale,
            worker_id=worker_id,
        )
        beside.start()
        sweep_every = options["sweep_every"]
        if sweep_every is None:
            sweep_every = float(getattr(settings, "QBO_SWEEP_INTERVAL_SECONDS", 60))
        # Not in --batch mode: that runs what is queued and exits.
        sweeper = SweepThread(every_seconds=sweep_every) if sweep_every > 0 and not options["batch"] else None
        if sweeper is not None:
            sweeper.start()

        worker_options: dict[str, Any] = {
            "queue_name": options["queue_name"],
            "interval": options["interval"],
            "batch": options["batch"],
            "backend_name": options["backend_name"],
            "startup_delay": options["startup_delay"],
            "reload": options["reload"],
            "max_tasks": options["max_tasks"],
            "verbosity": options["verbosity"],
            "worker_id": worker_id,
        }
        if options["exclude_queues"]:
            worker_options["exclude_queues"] = options["exclude_queues"]
        try:
            call_command("db_worker", **worker_options)
        finally:
            beside.stop()
            beside.join(timeout=5)
            if sweeper is not None:
                sweeper.stop()
                sweeper.join(timeout=5)
            # Whatever this worker still holds (a task cut short) is reaped without waiting.
            heartbeat_stop(worker_id)

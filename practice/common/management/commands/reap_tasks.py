"""`manage.py reap_tasks`: put tasks left RUNNING by killed workers back in the queue."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from practice.common.tasks import reap_stale_tasks


class Command(BaseCommand):
    help = "Put tasks RUNNING longer than --older-than seconds (a killed worker's) back to READY."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            default=None,
            help="Seconds a task must have been RUNNING (default: settings.TASK_REAPER_STALE_SECONDS).",
        )
        parser.add_argument(
            "--max-attempts",
            type=int,
            default=None,
            help="Mark FAILED instead once a task was claimed this often "
            "(default: settings.TASK_REAPER_MAX_ATTEMPTS).",
        )

    def handle(self, *args: Any, older_than: float | None, max_attempts: int | None, **options: Any) -> None:
        if older_than is None:
            older_than = settings.TASK_REAPER_STALE_SECONDS
        result = reap_stale_tasks(older_than, max_attempts=max_attempts)
        self.stdout.write(
            f"Requeued {len(result.requeued)} task(s), failed {len(result.failed)} "
            f"(RUNNING for more than {older_than:g} s)."
        )
        for task_id in result.requeued:
            self.stdout.write(f"  requeued {task_id}")
        for task_id in result.failed:
            self.stdout.write(f"  failed {task_id}")

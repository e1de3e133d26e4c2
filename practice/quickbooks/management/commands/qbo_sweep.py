"""Enqueue sync runs for realms that need one (due retries, lost runs; --all: every realm), and
the CDC sweeps that are due (QBO_CDC_INTERVAL_SECONDS).

The periodic safety net of the event-driven sync (practice.quickbooks.sync.tasks): run it from cron
every minute, or keep it running with --loop SECONDS next to `run_worker`. --run executes the
runs in this process instead of enqueueing them (no worker needed).
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Enqueue QuickBooks sync runs for realms with due retries (or all connected realms)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true", help="every connected realm, not only due ones")
        parser.add_argument("--loop", type=float, default=0, help="repeat every N seconds until stopped")
        parser.add_argument("--run", action="store_true", help="run the syncs here instead of enqueueing")

    def handle(self, *args: Any, **options: Any) -> None:
        from practice.quickbooks.sync.cdc import sweep_connection
        from practice.quickbooks.sync.tasks import run_now, sweep_now

        while True:
            if options["run"]:
                for connection_id in _due_connection_ids(all_realms=options["all"]):
                    result = run_now(connection_id)
                    self.stdout.write(f"connection {connection_id}: {result}")
                for connection_id in _due_cdc_sweeps():
                    swept = sweep_connection(connection_id)
                    self.stdout.write(
                        f"connection {connection_id}: CDC {swept.reason}, {swept.notices} notice(s)"
                    )
            else:
                n = sweep_now(all_realms=options["all"])
                self.stdout.write(f"enqueued {n} sync run(s)")
            if not options["loop"]:
                return
            time.sleep(options["loop"])


def _due_cdc_sweeps() -> list[int]:
    from django.utils import timezone

    from practice.quickbooks.sync import cdc

    now = timezone.now()
    return [pk for pk in cdc.due_connections(now) if cdc.claim(pk, now)]


def _due_connection_ids(*, all_realms: bool) -> list[int]:
    from django.db.models import Q
    from django.utils import timezone

    from practice.quickbooks.models import Connection, SyncLink
    from practice.quickbooks.statuses import SyncStatus

    connected = Connection.objects.filter(status="connected", setup_completed_at__isnull=False)
    if not all_realms:
        due = SyncLink.objects.filter(status=SyncStatus.SYNCING).filter(
            Q(next_retry_at__isnull=True) | Q(next_retry_at__lte=timezone.now())
        )
        connected = connected.filter(pk__in=due.values("connection_id"))
    return list(connected.values_list("pk", flat=True))

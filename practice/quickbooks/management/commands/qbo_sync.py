"""Run QuickBooks sync now for one firm (or every connected firm), and show account sync state.

manage.py qbo_sync --firm 3          # one run for that firm's realm, in this process
manage.py qbo_sync --all             # every connected, set-up realm
manage.py qbo_sync --firm 3 --status # counts per status, no run
manage.py qbo_sync --firm 3 --enqueue  # leave it to the worker
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Run (or enqueue) a QuickBooks account sync and show per-status counts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--firm", type=int, help="firm id")
        parser.add_argument("--all", action="store_true", help="every connected realm")
        parser.add_argument("--enqueue", action="store_true", help="enqueue for the worker instead")
        parser.add_argument("--status", action="store_true", help="only show counts per status")

    def handle(self, *args: Any, **options: Any) -> None:
        from django.db import transaction
        from django.db.models import Count

        from practice.quickbooks.models import Connection, SyncLink
        from practice.quickbooks.sync.tasks import enqueue_sync, run_now

        connections = Connection.objects.exclude(realm_id="")
        if options["firm"]:
            connections = connections.filter(firm_id=options["firm"])
        elif not options["all"]:
            raise CommandError("Give --firm ID or --all.")
        if not connections.exists():
            raise CommandError("No QuickBooks connection found.")
        for conn in connections:
            if not options["status"]:
                if options["enqueue"]:
                    with transaction.atomic():
                        enqueue_sync(conn.pk)
                    self.stdout.write(f"firm {conn.firm_id}: run enqueued")
                else:
                    result = run_now(conn.pk)
                    self.stdout.write(f"firm {conn.firm_id}: {result}")
            counts = dict(
                SyncLink.objects.filter(connection=conn, kind="customer")
                .values_list("status")
                .annotate(n=Count("pk"))
                .values_list("status", "n")
            )
            self.stdout.write(
                f"firm {conn.firm_id} realm {conn.realm_id} ({conn.status}): "
                + ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
            )

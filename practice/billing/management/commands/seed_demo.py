"""`manage.py seed_demo [--reset]`: the demo firm used by `make demo` and the screenshots."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from practice.billing.demo import DEMO_EMAILS, DEMO_FIRM_NAME, DEMO_PASSWORD, demo_firm, demo_reset, demo_seed


class Command(BaseCommand):
    help = "Create the demo firm with members, 50 client accounts, services, invoices and payments."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reset", action="store_true", help="Delete the demo firm and its users first.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["reset"]:
            demo_reset()
            self.stdout.write(f"Removed the previous {DEMO_FIRM_NAME!r}.")
        elif demo_firm() is not None:
            # Idempotent: `make demo` runs this every time; never duplicate or overwrite data.
            self.stdout.write(f"{DEMO_FIRM_NAME!r} already exists; nothing to do (use --reset to recreate).")
            return
        result = demo_seed()
        self.stdout.write(
            self.style.SUCCESS(
                f"Created {DEMO_FIRM_NAME!r}: {result.accounts} accounts, {result.services} services, "
                f"{result.invoices} invoices, {result.payments} payments, {result.refunds} refunds."
            )
        )
        self.stdout.write(f"Sign in as {', '.join(DEMO_EMAILS)} with password {DEMO_PASSWORD!r}.")

"""Run by test_concurrency.py in a subprocess: N members post the new-invoice form at once.

A separate process so the app runs on its real database settings (a SQLite file with WAL and
the busy timeout, or PostgreSQL), each thread on its own connection, as gunicorn's threads are.
Prints JSON: the status of each post and the invoice numbers in the database afterwards.
"""

from __future__ import annotations

import json
import os
import sys
import threading

import django


def main(firm_id: int, account_id: int, service_id: int, writers: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.db import connection
    from django.test import Client

    from practice.billing.models import Invoice
    from practice.firms.models import Membership

    members = list(Membership.objects.filter(firm_id=firm_id).select_related("user"))
    connection.close()
    start = threading.Barrier(writers)
    statuses: list[object] = [None] * writers

    def write(n: int) -> None:
        from django.db import connection as thread_connection

        try:
            c = Client()
            c.force_login(members[n % len(members)].user)
            start.wait()
            response = c.post(
                "/billing/invoices/new/",
                {
                    "account": account_id,
                    "number": "",
                    "issue_date": "2026-11-01",
                    "due_date": "2026-12-01",
                    "memo": f"writer {n}",
                    "lines-0-service": service_id,
                    "lines-0-description": "October",
                    "lines-0-quantity": "1",
                    "lines-0-rate": "100.00",
                },
            )
            statuses[n] = response.status_code
        except Exception as exc:  # the outcome under test: reported, not raised in a thread
            statuses[n] = f"{type(exc).__name__}: {exc}"
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    numbers = sorted(Invoice.objects.filter(firm_id=firm_id).values_list("number", flat=True))
    print(json.dumps({"statuses": statuses, "numbers": numbers}))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:5]))

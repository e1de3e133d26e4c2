"""QBO reads per firm-month (issue 13 item 8): the CorePlus calls (reads, queries, CDC) that Intuit
meters per app per month, for a firm of 2,000 accounts with 50 changes a day.

    .venv/bin/python bench/reads_month_bench.py [--days 3] [--changes-per-day 50] [--accounts 2000]

What it does:
1. A firm with `--accounts` accounts (the account bench's mix: half match QBO customers, vendor
   clashes, near matches, inactive matches, new), the 20 services and 2,000 issued invoices, in
   a fresh `sample-us` realm holding the matching customers and vendors; the initial backfill
   runs first and is not counted (sandbox limits and client pacing off: only counts matter).
2. Then `--days` simulated days, each with `--changes-per-day` changes made through the app's
   service layer (60 % invoices issued, 24 % payments recorded against them, 10 % account
   edits, 6 % new accounts), twice on the same firm, in two phases:
   - `per-day`: one engine run (`tasks.run_now`, repeated while it reports more work) after the
     day's changes: the floor, as if the day's changes were batched;
   - `per-change`: a run after every change, as the on-commit trigger does when changes are
     minutes apart (the usual case in an office): the realistic figure.
3. Every request the engine sends is recorded in-process (QBOClient._send): reads, queries and
   CDC by entity and by the shape of the query; the sandbox's per-realm counters are read too.
   Per firm-month = per simulated day × 30 (linear: each day's work does not depend on the
   day's number; the table shows each day so that can be checked).

The CDC sweep (sync/cdc.py) runs too, every `--cdc-interval` seconds of the simulated day
(default: QBO_CDC_INTERVAL_SECONDS): the sweeps of the 8 office hours are spread between the
day's changes, the others run after them (a quiet night: one CDC call each). Its calls, and the
drift check's reads of what it reports, are counted with the rest. Simulated time is compressed
(the day's sweeps run within seconds), so every sweep of a day re-reads the day's changes; the
notices' version keys make that a no-op, as the sweep's 5-minute overlap is in real time.

Writes bench/results/reads-month-<UTC timestamp>.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import UNPACED_ENV, machine  # bench/ is a folder of scripts, not a package
from account_sync_bench import RESULTS, ROOT, Sandbox, git_state
from billing_sync_bench import fresh_realm, make_billing, pick_accounts

COREPLUS = ("read", "query", "cdc")
_FROM = re.compile(r"\bfrom\s+(\w+)(?:\s+where\s+(\w+))?", re.IGNORECASE)


def shape(op: str, kw: dict[str, Any]) -> tuple[str, str] | None:
    """(kind, label) of a request, kind in COREPLUS (metered monthly) or None for writes."""
    if op == "query":
        m = _FROM.search(str(kw.get("text_body", "")))
        if not m:
            return "query", "query ?"
        entity, field = m.group(1), m.group(2)
        return "query", f"query {entity}" + (f" where {field}" if field else " (whole list, paged)")
    if op.startswith("read"):
        return "read", op
    if op.startswith("cdc"):
        return "cdc", op
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--accounts", type=int, default=2000)
    p.add_argument("--days", type=int, default=3)
    p.add_argument("--changes-per-day", type=int, default=50)
    p.add_argument(
        "--cdc-interval", type=float, default=None, help="seconds (default: QBO_CDC_INTERVAL_SECONDS; 0: off)"
    )
    args = p.parse_args()
    started = datetime.now(UTC)
    workdir = tempfile.mkdtemp(prefix="reads-month-")
    sb = Sandbox()
    try:
        env = {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "SQLITE_PATH": f"{workdir}/reads.sqlite3",
            "QBO_ENVIRONMENT": "sandbox-local",
            "QBO_SANDBOX_URL": sb.url,
            "LOG_LEVEL": "WARNING",
            # Only counts matter here: lift the client's pacing (the sandbox's limits are off).
            **UNPACED_ENV,
        }
        os.environ.pop("DATABASE_URL", None)
        os.environ.update(env)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=True,
        )
        result = run(args, sb)
    finally:
        sb.close()
    out = {
        "benchmark": "reads_month",
        "started": started.isoformat(),
        "args": vars(args),
        "machine": machine(),
        "git": git_state(),
        **result,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"reads-month-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(out, indent=2, default=str))
    print(json.dumps({k: v for k, v in result.items() if k != "days"}, indent=2, default=str))
    print(f"wrote {path.relative_to(ROOT)}")


def run(args: argparse.Namespace, sb: Sandbox) -> dict[str, Any]:
    import django

    django.setup()
    from django.utils import timezone

    from practice.billing import services as billing
    from practice.billing.models import Invoice, InvoiceState, PaymentMethod, Service
    from practice.clients import services as clients
    from practice.clients.models import ClientAccount
    from practice.quickbooks.connection import client as qbo_client
    from practice.quickbooks.models import Connection, SyncLink
    from practice.quickbooks.sync import cdc, tasks

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from latency_bench import make_firm  # the same bulk set-up as the latency bench

    sb.config(throttling_enabled=False, latency_seconds=0.0)
    b = make_billing(args.accounts / 2000)
    b.invoices = b.invoices[:2000]
    b.payments, b.refunds = [], []
    realm = fresh_realm(sb, b)
    conn = make_firm(
        "Reads", b, realm, sb.call("POST", "/tokens", json={"realm_id": realm}), pick_accounts(sb, realm)
    )
    firm = conn.firm

    calls: list[tuple[str, str]] = []
    original = qbo_client.QBOClient._send

    def recording_send(self: Any, method: str, path: str, **kw: Any) -> Any:
        found = shape(str(kw.get("op", path)), kw)
        calls.append(found if found else ("write", str(kw.get("op", path))))
        return original(self, method, path, **kw)

    qbo_client.QBOClient._send = recording_send  # type: ignore[method-assign]

    def run_engine() -> int:
        runs = 0
        for _ in range(50):
            runs += 1
            out = tasks.run_now(conn.pk)
            if os.environ.get("BENCH_DEBUG"):
                print(out, flush=True)
            if out["reason"] != "more work":
                break
        return runs

    t0 = time.monotonic()
    run_engine()
    backfill_s = time.monotonic() - t0
    backfill_calls = Counter(k for k, _ in calls)
    calls.clear()

    interval = cdc.interval_seconds() if args.cdc_interval is None else args.cdc_interval
    sweeps_per_day = round(86400 / interval) if interval > 0 else 0
    office_sweeps = min(sweeps_per_day, round(8 * 3600 / interval)) if interval > 0 else 0
    # The sweep starts after the backfill (what it wrote is history, not this month's changes).
    Connection.objects.filter(pk=conn.pk).update(cdc_cursor=timezone.now(), cdc_swept_at=timezone.now())
    sweep_results: Counter[str] = Counter()

    def sweep() -> None:
        result = cdc.sweep_connection(conn.pk)
        sweep_results[result.reason] += 1
        sweep_results["notices"] += result.notices

    rng = random.Random(2026_12_01)
    synced_accounts = list(
        SyncLink.objects.filter(connection=conn, kind="customer", status="synced").values_list(
            "local_id", flat=True
        )
    )
    service_ids = list(Service.objects.filter(firm=firm).values_list("pk", flat=True))
    today = date.today()
    counter = [0]

    def one_change(k: int) -> str:
        counter[0] += 1
        n = counter[0]
        slot = k % 50
        if slot < 30:  # issue an invoice
            inv = billing.invoice_create(
                firm=firm,
                account=rng.choice(synced_accounts),
                issue_date=today,
                due_date=today + timedelta(days=30),
                number=f"M-{n:06d}",
                lines=[{"service": rng.choice(service_ids), "description": "Monthly work", "quantity": "1"}],
            )
            billing.invoice_issue(invoice=inv)
            return "invoice issued"
        if slot < 42:  # a payment of one of the month's invoices, in full
            inv = (
                Invoice.objects.filter(
                    firm=firm, state=InvoiceState.ISSUED, number__startswith="M-", allocations=None
                )
                .order_by("?")
                .first()
            )
            if inv is None:
                return "no invoice to pay"
            billing.payment_record(
                firm=firm,
                account=inv.account_id,
                date=today,
                amount=inv.total,
                method=PaymentMethod.CHECK,
                reference=f"MP-{n:06d}",
                allocations=[(inv, inv.total)],
            )
            return "payment recorded"
        if slot < 47:  # an account edit (e-mail): the customer is updated in QBO
            account = ClientAccount.objects.get(pk=rng.choice(synced_accounts))
            clients.account_update(account=account, email=f"client{n}@example.test")
            return "account edited"
        clients.account_create(firm=firm, name=f"New client {n:05d} Ltd")
        return "account created"

    phases: dict[str, Any] = {}
    days_out: list[dict[str, Any]] = []
    for phase in ("per-day", "per-change"):
        per_day: list[dict[str, Any]] = []
        for day in range(args.days):
            calls.clear()
            kinds: Counter[str] = Counter()
            runs = 0
            sweeps = 0
            for k in range(args.changes_per_day):
                kinds[one_change(k)] += 1
                if phase == "per-change":
                    runs += run_engine()
                per = args.changes_per_day
                due = (k + 1) * office_sweeps // per - k * office_sweeps // per
                for _ in range(due):
                    sweep()
                    sweeps += 1
            if phase == "per-day":
                runs += run_engine()
            while sweeps < sweeps_per_day:
                sweep()
                sweeps += 1
            by_kind = Counter(k for k, _ in calls)
            by_label = Counter(label for k, label in calls if k in COREPLUS)
            row = {
                "phase": phase,
                "day": day + 1,
                "changes": dict(kinds),
                "runs": runs,
                "cdc_sweeps": sweeps,
                "coreplus": sum(by_kind[k] for k in COREPLUS),
                "by_kind": dict(by_kind),
                "by_label": dict(by_label.most_common()),
            }
            per_day.append(row)
            days_out.append(row)
            print(
                f"{phase:<10} day {day + 1}: {runs:3d} runs, CorePlus calls {row['coreplus']:5d} "
                f"({dict(by_kind)}); top: {by_label.most_common(3)}",
                flush=True,
            )
        mean_day = sum(r["coreplus"] for r in per_day) / len(per_day)
        labels: Counter[str] = Counter()
        for r in per_day:
            labels.update(r["by_label"])
        phases[phase] = {
            "days": len(per_day),
            "coreplus_per_day_mean": mean_day,
            "coreplus_per_month_extrapolated": mean_day * 30,
            "by_label_per_month_extrapolated": {k: v * 30 / len(per_day) for k, v in labels.most_common()},
        }
    qbo_client.QBOClient._send = original  # type: ignore[method-assign]
    computed = {f"every {m} min": 30 * 24 * 60 / m for m in (5, 15, 60, 240)}
    return {
        "firm": {
            "accounts": len(b.accounts.accounts),
            "invoices_before": len(b.invoices),
            "services": len(b.services),
        },
        "backfill_s": backfill_s,
        "backfill_calls": dict(backfill_calls),
        "counters_end": sb.counters(realm),
        "phases": phases,
        "target_per_month": 1000,
        "cdc_interval_seconds": interval,
        "cdc_sweeps_per_day": sweeps_per_day,
        "cdc_sweep_results": dict(sweep_results),
        "cdc_sweep_calls_per_month_computed": computed,
        "days": days_out,
    }


if __name__ == "__main__":
    main()

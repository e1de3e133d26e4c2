"""Latency and memory of a real worker process (`manage.py run_worker`).

    .venv/bin/python bench/latency_bench.py idle   [--invoices 200] [--latency 0]
    .venv/bin/python bench/latency_bench.py load   [--invoices 60] [--backfill-scale 0.15] [--workers 2]
    .venv/bin/python bench/latency_bench.py memory [--backfill-scale 5]

- `idle`: one firm, connected and synced, the worker idle. Draft invoices are created first; then
  each is issued through `practice.billing.services.invoice_issue` (what the Issue button calls;
  the issue commits and enqueues `sync_realm` on commit) and the bench polls the sandbox's
  control plane (not metered, not counted) every 10 ms until the invoice exists in the realm
  (by DocNumber). Latency = the moment `invoice_issue` returned (committed) → the first poll that
  finds it. One invoice at a time: the next is issued after the previous one arrived and a
  random pause of 0-0.3 s (so issues do not fall in step with the worker's idle poll).
  Sandbox: QBO's real limits on, real time (`time_scale` 1).
- `load`: the same for firm B while firm A (another realm) backfills the billing workload
  (`--backfill-scale` × the standard workload of billing_sync_bench.py), with `--workers` worker
  processes. A's synced count before and after B's series shows the two overlapped.
- `memory`: one firm backfilling `--backfill-scale` × the standard workload (5 ≈ 100,000 records)
  with the sandbox's limits and the client's pacing off (the engine's own work is the limit);
  the worker's VmRSS and VmHWM (/proc/<pid>/status) sampled every 0.5 s with the number of
  records synced so far.

Database: a fresh SQLite file (or `--database-url`), migrated here; the bench process and the
workers share it. Writes bench/results/latency-<mode>-<UTC timestamp>.json and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (  # bench/ is a folder of scripts, not a package
    UNPACED_ENV,
    bench_firm,
    child_env,
    choose_billing_setup,
    machine,
    migrate,
    setup_django,
    start_run_worker,
    stop_processes,
)
from account_sync_bench import RESULTS, ROOT, Sandbox, git_state
from billing_sync_bench import Billing, fresh_realm, load_billing, make_billing, pick_accounts


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0-100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in kB, from /proc (Linux)."""
    rss = hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return rss, hwm


class Stack:
    """The database, the sandbox, and worker processes started and stopped by the bench."""

    def __init__(self, args: argparse.Namespace, workdir: str, extra_env: dict[str, str]) -> None:
        self.workdir = workdir
        self.sb = Sandbox()
        self.env = child_env(
            self.sb.url,
            database_url=args.database_url,
            sqlite_path=f"{workdir}/latency.sqlite3",
            log_level="WARNING",
            extra=extra_env,
        )
        self.workers: list[subprocess.Popen[bytes]] = []
        self.interval = getattr(args, "worker_interval", 0.25)

    def migrate_and_setup(self) -> None:
        migrate(self.env)
        setup_django(self.env)

    def start_workers(self, n: int) -> None:
        for k in range(n):
            # The production command and its production defaults (0.25 s idle poll).
            self.workers.append(
                start_run_worker(
                    f"bench-{k}", f"{self.workdir}/worker-{k}.log", self.env, interval=self.interval
                )
            )

    def close(self) -> None:
        stop_processes(self.workers)
        self.sb.close()


def make_firm(
    name: str, b: Billing, realm: str, token: dict[str, Any], accts: dict[str, str], *, start: bool = True
) -> Any:
    """A firm holding the workload's accounts, services and issued billing (bulk-inserted, the
    services' rules hold), connected to `realm` and set up ("all accounts", create unmatched).
    Saving the set-up connection enqueues the first run, as the setup page does (`start=False`:
    not set up yet; `finish_setup` does it later)."""
    from practice.quickbooks.connection import oauth

    firm, owner = bench_firm(name, "bench.test")
    spec = {
        "accounts": [a.name for a in b.accounts.accounts],
        "services": b.services,
        "invoices": b.invoices,
        "payments": b.payments,
        "refunds": b.refunds,
    }
    load_billing(firm, spec)
    conn, _ = oauth.connection_connect(
        firm=firm,
        user=owner,
        realm_id=realm,
        company_name=f"{name} company",
        token_set=oauth.TokenSet.from_response(token),
        env=oauth.environment(),
    )
    choose_billing_setup(conn, accts)
    conn.save()
    if start:
        finish_setup(conn)
    return conn


def finish_setup(conn: Any) -> None:
    from django.utils import timezone

    conn.setup_completed_at = timezone.now()
    conn.save()  # enqueues the first sync_realm on commit, as saving the setup page does


def pending_links(conn: Any) -> int:
    from practice.quickbooks.models import SyncLink

    return SyncLink.objects.filter(connection=conn, status__in=("syncing", "not_synced")).count()


def synced_links(conn: Any) -> int:
    from practice.quickbooks.models import SyncLink

    return SyncLink.objects.filter(connection=conn, status="synced").count()


def wait_settled(conn: Any, expect_links: int, timeout: float) -> float:
    """Wait until the firm has at least `expect_links` links and none Syncing / Not synced."""
    from practice.quickbooks.models import SyncLink

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        total = SyncLink.objects.filter(connection=conn).count()
        if total >= expect_links and pending_links(conn) == 0:
            return time.monotonic() - t0
        time.sleep(0.5)
    raise RuntimeError(f"not settled after {timeout} s: {pending_links(conn)} pending")


def small_firm_billing(accounts: int) -> Billing:
    """A small firm (B): `accounts` accounts and the 20 services, no billing yet."""
    b = make_billing(accounts / 2000, seed=7)
    b.invoices, b.payments, b.refunds = [], [], []
    return b


def issue_series(stack: Stack, conn: Any, realm: str, n: int, rng: random.Random) -> list[dict[str, Any]]:
    """Create n drafts, then issue them one at a time; per invoice: commit → exists in QBO."""
    from practice.billing import services
    from practice.billing.models import Service
    from practice.clients.models import ClientAccount
    from practice.quickbooks.models import SyncLink

    firm = conn.firm
    accounts = list(
        ClientAccount.objects.filter(
            firm=firm,
            pk__in=SyncLink.objects.filter(connection=conn, kind="customer", status="synced").values(
                "local_id"
            ),
        ).values_list("pk", flat=True)
    )
    service_ids = list(Service.objects.filter(firm=firm).values_list("pk", flat=True))
    today = date.today()
    drafts = []
    for i in range(n):
        drafts.append(
            services.invoice_create(
                firm=firm,
                account=rng.choice(accounts),
                issue_date=today,
                due_date=today + timedelta(days=30),
                number=f"L-{conn.pk}-{i + 1:05d}",
                lines=[
                    {
                        "service": rng.choice(service_ids),
                        "description": "Monthly bookkeeping",
                        "quantity": "1",
                    }
                    for _ in range(rng.randint(1, 3))
                ],
            )
        )
    # Drafts do not go to QBO; let the runs their creation triggered finish before timing issues.
    time.sleep(3)
    from django_tasks_db.models import DBTaskResult

    tasks = DBTaskResult.objects.filter(task_path="practice.quickbooks.sync.tasks.sync_realm")
    out = []
    for inv in drafts:
        services.invoice_issue(invoice=inv)
        committed = time.perf_counter()
        committed_at = datetime.now(UTC)
        query = f"select * from Invoice where DocNumber = '{inv.number}'"
        found = None
        while time.perf_counter() - committed < 60:
            page = stack.sb.call("POST", f"/realms/{realm}/query", content=query)
            if page.get("QueryResponse", {}).get("Invoice"):
                found = time.perf_counter()
                break
            time.sleep(0.01)
        out.append(
            {
                "number": inv.number,
                "latency_s": (found - committed) if found else None,
                "committed_at": committed_at,
                "at_s": committed,
            }
        )
        time.sleep(rng.uniform(0, 0.3))
    # Where the time went, from the task table's own timestamps once the runs have finished: the
    # sync_realm tasks of this connection enqueued between an issue's commit and the next issue;
    # queue wait = commit -> the first of them started, run = its start -> its end (the run goes
    # on after the invoice is in QBO: recording the outcome).
    time.sleep(3)
    rows = [
        t
        for t in tasks.order_by("enqueued_at").values(
            "enqueued_at", "started_at", "finished_at", "args_kwargs", "return_value"
        )
        if t["args_kwargs"]["args"][0] == conn.pk
    ]
    for k, item in enumerate(out):
        start = item["committed_at"] - timedelta(milliseconds=100)
        end = out[k + 1]["committed_at"] - timedelta(milliseconds=100) if k + 1 < len(out) else None
        mine = [t for t in rows if t["enqueued_at"] >= start and (end is None or t["enqueued_at"] < end)]
        item["queue_wait_s"] = item["task_run_s"] = None
        if mine and mine[0]["started_at"]:
            item["queue_wait_s"] = (mine[0]["started_at"] - item["committed_at"]).total_seconds()
            if mine[0]["finished_at"]:
                item["task_run_s"] = (mine[0]["finished_at"] - mine[0]["started_at"]).total_seconds()
        item["tasks"] = [
            {
                "started_s": (t["started_at"] - item["committed_at"]).total_seconds()
                if t["started_at"]
                else None,
                "finished_s": (t["finished_at"] - item["committed_at"]).total_seconds()
                if t["finished_at"]
                else None,
                "reason": (t["return_value"] or {}).get("reason"),
            }
            for t in mine
        ]
        item["committed_at"] = item["committed_at"].isoformat()
    return out


def summarise(series: list[dict[str, Any]]) -> dict[str, Any]:
    lat = [s["latency_s"] for s in series if s["latency_s"] is not None]
    waits = [s["queue_wait_s"] for s in series if s.get("queue_wait_s") is not None]
    runs = [s["task_run_s"] for s in series if s.get("task_run_s") is not None]
    return {
        "queue_wait_p50_s": statistics.median(waits) if waits else None,
        "task_run_p50_s": statistics.median(runs) if runs else None,
        "split_measured_for": len(runs),
        "n": len(series),
        "arrived": len(lat),
        "missing_after_60s": len(series) - len(lat),
        "p50_s": statistics.median(lat) if lat else None,
        "p90_s": percentile(lat, 90) if lat else None,
        "p99_s": percentile(lat, 99) if lat else None,
        "max_s": max(lat) if lat else None,
        "min_s": min(lat) if lat else None,
        "mean_s": statistics.fmean(lat) if lat else None,
    }


def run_idle(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    sb = stack.sb
    sb.config(throttling_enabled=True, time_scale=1.0, latency_seconds=args.latency)
    b = small_firm_billing(args.accounts)
    realm = fresh_realm(sb, b)
    conn = make_firm(
        "Latency", b, realm, sb.call("POST", "/tokens", json={"realm_id": realm}), pick_accounts(sb, realm)
    )
    stack.start_workers(1)
    settle = wait_settled(conn, len(b.accounts.accounts) + len(b.services), 300)
    series = issue_series(stack, conn, realm, args.invoices, random.Random(11))
    return {
        "initial_sync_s": settle,
        "series": series,
        "summary": summarise(series),
        "counters": sb.counters(realm),
    }


def run_load(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    sb = stack.sb
    sb.config(throttling_enabled=True, time_scale=1.0, latency_seconds=args.latency)
    small = small_firm_billing(args.accounts)
    realm_b = fresh_realm(sb, small)
    conn_b = make_firm(
        "Issuer",
        small,
        realm_b,
        sb.call("POST", "/tokens", json={"realm_id": realm_b}),
        pick_accounts(sb, realm_b),
    )
    # A's billing is inserted before the workers start (its bulk insert is set-up, not load);
    # its setup is saved, and its backfill starts, once B is synced and idle.
    big = make_billing(args.backfill_scale)
    realm_a = fresh_realm(sb, big)
    conn_a = make_firm(
        "Backfill",
        big,
        realm_a,
        sb.call("POST", "/tokens", json={"realm_id": realm_a}),
        pick_accounts(sb, realm_a),
        start=False,
    )
    stack.start_workers(args.workers)
    wait_settled(conn_b, len(small.accounts.accounts) + len(small.services), 300)
    from practice.quickbooks.models import Connection, RealmSyncState

    finish_setup(conn_a)
    if not RealmSyncState.objects.filter(connection=conn_a).exists():
        stored = Connection.objects.filter(pk=conn_a.pk).values("status", "setup_completed_at").first()
        raise RuntimeError(f"saving A's setup enqueued no sync_realm; stored: {stored}")
    t0 = time.monotonic()
    while sb.counters(realm_a)["batch_calls"] < 2 and time.monotonic() - t0 < 300:
        time.sleep(0.2)  # A's backfill is writing: its planning is done, its runner holds a worker
    a_before = synced_links(conn_a)
    series = issue_series(stack, conn_b, realm_b, args.invoices, random.Random(12))
    a_after = synced_links(conn_a)
    a_pending_after = pending_links(conn_a)
    state_a = RealmSyncState.objects.filter(connection=conn_a).values().first()
    logs = {
        p.name: p.read_text(errors="replace")[-1500:]
        for p in sorted(Path(stack.workdir).glob("worker-*.log"))
    }
    return {
        "a_sync_state": state_a,
        "worker_log_tails": logs,
        "backfill": big.counts(),
        "a_synced_before_series": a_before,
        "a_synced_after_series": a_after,
        "a_pending_after_series": a_pending_after,
        "a_counters": sb.counters(realm_a),
        "series": series,
        "summary": summarise(series),
        "b_counters": sb.counters(realm_b),
    }


def run_memory(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    sb = stack.sb
    sb.config(throttling_enabled=False, latency_seconds=0.0)
    big = make_billing(args.backfill_scale)
    records = (
        len(big.accounts.accounts)
        + len(big.services)
        + len(big.invoices)
        + len(big.payments)
        + len(big.refunds)
    )
    realm = fresh_realm(sb, big)
    t_insert = time.monotonic()
    conn = make_firm(
        "Memory", big, realm, sb.call("POST", "/tokens", json={"realm_id": realm}), pick_accounts(sb, realm)
    )
    insert_s = time.monotonic() - t_insert
    stack.start_workers(1)
    pid = stack.workers[0].pid
    samples: list[dict[str, Any]] = []
    t0 = time.monotonic()
    synced = 0
    last_count = 0.0
    changed_at = t0
    while time.monotonic() - t0 < args.timeout:
        now = time.monotonic()
        rss, hwm = rss_kb(pid)
        if now - last_count >= 2.0:
            count = synced_links(conn)
            last_count = now
            if count != synced:
                synced, changed_at = count, now
            elif synced and now - changed_at > 30:
                # Done: records of Error accounts wait "Not synced" for a person, so "nothing
                # pending" never comes; 30 s without a new synced record (the follow-up runs
                # are 5 s apart) means the backfill is over.
                break
        samples.append({"t_s": round(now - t0, 2), "synced": synced, "rss_kb": rss, "hwm_kb": hwm})
        time.sleep(0.5)
    from django.db.models import Count

    from practice.quickbooks.models import SyncLink

    statuses = {
        f"{r['kind']}:{r['status']}": r["n"]
        for r in SyncLink.objects.filter(connection=conn).values("kind", "status").annotate(n=Count("id"))
    }
    marks = {}
    for target in (10_000, 25_000, 50_000, 75_000, 100_000):
        hit = next((s for s in samples if s["synced"] >= target), None)
        if hit:
            marks[str(target)] = hit
    return {
        "workload": big.counts(),
        "records": records,
        "insert_s": insert_s,
        "wall_s": time.monotonic() - t0,
        "synced": synced_links(conn),
        "statuses": statuses,
        "marks": marks,
        "peak_hwm_kb": max(s["hwm_kb"] for s in samples),
        "samples": samples[:: max(1, len(samples) // 400)],
        "counters": sb.counters(realm),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=("idle", "load", "memory"))
    p.add_argument(
        "--invoices", type=int, default=None, help="invoices issued one at a time (200 idle, 60 load)"
    )
    p.add_argument("--accounts", type=int, default=20, help="accounts of the issuing firm")
    p.add_argument(
        "--backfill-scale", type=float, default=None, help="load: 0.15, memory: 5 (≈ 100k records)"
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--worker-interval",
        type=float,
        default=0.25,
        help="run_worker --interval (its idle poll; production 0.25 s)",
    )
    p.add_argument("--latency", type=float, default=0.0, help="seconds the sandbox adds to every API call")
    p.add_argument("--database-url", default=None)
    p.add_argument("--timeout", type=float, default=3000, help="memory: give up after this many seconds")
    args = p.parse_args()
    args.invoices = args.invoices or (200 if args.mode == "idle" else 60)
    args.backfill_scale = args.backfill_scale or (0.15 if args.mode == "load" else 5.0)
    extra: dict[str, str] = {}
    if args.mode == "memory":
        # The engine's own work is the limit, not QBO's budget (the sandbox's limits are off too).
        extra = UNPACED_ENV
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="latency-bench-") as workdir:
        stack = Stack(args, workdir, extra)
        try:
            stack.migrate_and_setup()
            runner = {"idle": run_idle, "load": run_load, "memory": run_memory}[args.mode]
            result = runner(args, stack)
        finally:
            stack.close()
    out = {
        "benchmark": f"latency_{args.mode}",
        "started": started.isoformat(),
        "args": vars(args),
        "machine": machine(loadavg_at_start=load_before),
        "git": git_state(),
        "database": "postgresql" if args.database_url else "sqlite",
        **result,
    }
    summary = {k: v for k, v in result.items() if k not in ("series", "samples")}
    print(json.dumps(summary, indent=2, default=str))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"latency-{args.mode}-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(out, indent=2, default=str))
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

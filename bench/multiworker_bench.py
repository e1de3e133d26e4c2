"""Many firms, many workers (issue 13 item 6): N firms × M invoices on PostgreSQL with 1, 2 and 4
`manage.py run_worker` processes.

    createdb -h 127.0.0.1 -U postgres practice_perf
    .venv/bin/python bench/multiworker_bench.py \
        --database-url postgres://postgres@127.0.0.1:5432/practice_perf \
        [--firms 50] [--invoices 50] [--workers 1,2,4]

For each worker count, in one sandbox (QBO's real limits on, real time) and one database:
1. N new firms, each with its own fresh realm and `--invoices` × the billing workload's mix
   (billing_sync_bench.make_billing at scale invoices/10,000: ≥ 10 accounts, the 20 services,
   the invoices, 0.8 payments per invoice, 2 % refunds), bulk-inserted and connected; saving
   each set-up connection enqueues its first `sync_realm`, while no worker runs yet.
2. The workers start together (t = 0). The bench samples, every 0.5 s, the synced links per firm
   (one grouped query) until nothing changed for 10 s; records/s = links synced ÷ the time of the
   last change.
3. Never two runners on one realm: every `sync_realm` task that ran (not "busy") has a
   started/finished interval and the worker id in the task table; per realm, no two such
   intervals may overlap. (The lease is what prevents it; this checks its effect independently.)
4. Fair share: per firm, the time its last record was synced; the spread (min / median / max)
   and Jain's fairness index of the firms' progress halfway through.

Writes bench/results/multiworker-<UTC timestamp>.json and prints a table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from account_sync_bench import RESULTS, ROOT, git_state  # bench/ is not a package
from billing_sync_bench import fresh_realm, make_billing, pick_accounts
from latency_bench import Stack, finish_setup, make_firm


def jain(values: list[float]) -> float:
    """Jain's fairness index: 1.0 when all equal, 1/n when one gets everything."""
    if not values or not any(values):
        return float("nan")
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))


def one_round(args: argparse.Namespace, workers: int, workdir: str) -> dict[str, Any]:
    from django.db import transaction
    from django.db.models import Count

    from practice.quickbooks.models import SyncLink

    stack = Stack(args, f"{workdir}", {})
    try:
        # Django is set up once per process; later rounds only point it at the new sandbox.
        os.environ["QBO_SANDBOX_URL"] = stack.sb.url
        from django.conf import settings

        settings.QBO_SANDBOX_URL = stack.sb.url
        stack.sb.config(throttling_enabled=True, time_scale=1.0, latency_seconds=args.latency)
        conns = []
        records = 0
        t_setup = time.monotonic()
        for i in range(args.firms):
            b = make_billing(args.invoices / 10000, seed=1000 + i)
            realm = fresh_realm(stack.sb, b)
            token = stack.sb.call("POST", "/tokens", json={"realm_id": realm})
            conns.append(
                make_firm(f"MW{workers}-{i}", b, realm, token, pick_accounts(stack.sb, realm), start=False)
            )
            records += (
                len(b.accounts.accounts)
                + len(b.services)
                + len(b.invoices)
                + len(b.payments)
                + len(b.refunds)
            )
        setup_s = time.monotonic() - t_setup
        ids = [c.pk for c in conns]
        # Workers up and idle first (their start-up is not the sync's time), then every firm's
        # setup is saved at once: N first runs queued together.
        from practice.common.models import WorkerHeartbeat

        WorkerHeartbeat.objects.filter(pk__startswith="bench-").delete()  # the last round's, stopped
        stack.start_workers(workers)
        deadline = time.monotonic() + 120
        while WorkerHeartbeat.objects.filter(pk__in=[f"bench-{k}" for k in range(workers)]).count() < workers:
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not start")
            time.sleep(0.2)
        t0_wall = datetime.now(UTC)
        t0 = time.monotonic()
        with transaction.atomic():
            for conn in conns:
                finish_setup(conn)
        samples: list[tuple[float, dict[int, int]]] = []
        last_total, last_change = -1, t0
        while time.monotonic() - t0 < args.timeout:
            per = dict(
                SyncLink.objects.filter(connection_id__in=ids, status="synced")
                .values_list("connection_id")
                .annotate(n=Count("id"))
                .values_list("connection_id", "n")
            )
            now = time.monotonic()
            samples.append((now - t0, per))
            total = sum(per.values())
            if total != last_total:
                last_total, last_change = total, now
            elif total > 0 and now - last_change > 10:
                break
            time.sleep(0.5)
        busy_s = last_change - t0
    finally:
        stack.close()

    from django_tasks_db.models import DBTaskResult

    overlaps = 0
    ran_tasks = 0
    worker_ids: set[str] = set()
    by_conn: dict[int, list[tuple[datetime, datetime, str]]] = {}
    for row in DBTaskResult.objects.filter(
        task_path="practice.quickbooks.sync.tasks.sync_realm", started_at__gte=t0_wall
    ).values("args_kwargs", "started_at", "finished_at", "return_value", "worker_ids"):
        conn_id = int(row["args_kwargs"]["args"][0])
        if conn_id not in ids or row["started_at"] is None or row["finished_at"] is None:
            continue
        if (row["return_value"] or {}).get("reason") == "busy":
            continue
        ran_tasks += 1
        wid = ",".join(row["worker_ids"] or [])
        worker_ids.add(wid)
        by_conn.setdefault(conn_id, []).append((row["started_at"], row["finished_at"], wid))
    for intervals in by_conn.values():
        intervals.sort()
        for (_s1, f1, _), (s2, _f2, _) in itertools.pairwise(intervals):
            if s2 < f1:
                overlaps += 1
    final = samples[-1][1] if samples else {}
    done_at: list[float] = []
    for cid in ids:
        want = final.get(cid, 0)
        hit = next((t for t, per in samples if per.get(cid, 0) >= want), None)
        if hit is not None and want:
            done_at.append(hit)
    half = next((per for t, per in samples if t >= busy_s / 2), final)
    progress = [half.get(cid, 0) / max(1, final.get(cid, 0)) for cid in ids]
    synced = sum(final.values())
    return {
        "workers": workers,
        "firms": len(ids),
        "records": records,
        "synced": synced,
        "setup_s": setup_s,
        "busy_s": busy_s,
        "records_per_s": synced / busy_s if busy_s > 0 else None,
        "sync_tasks_that_ran": ran_tasks,
        "worker_ids_seen": sorted(worker_ids),
        "overlapping_runs_on_one_realm": overlaps,
        "firm_done_s": {
            "min": min(done_at) if done_at else None,
            "median": statistics.median(done_at) if done_at else None,
            "max": max(done_at) if done_at else None,
        },
        "jain_progress_at_half_time": jain(progress),
        "loadavg": os.getloadavg(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--database-url",
        required=True,
        help="PostgreSQL, e.g. postgres://postgres@127.0.0.1:5432/practice_perf",
    )
    p.add_argument("--firms", type=int, default=50)
    p.add_argument("--invoices", type=int, default=50)
    p.add_argument("--workers", default="1,2,4")
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--timeout", type=float, default=1800)
    args = p.parse_args()
    started = datetime.now(UTC)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="multiworker-") as workdir:
        env = {k: v for k, v in os.environ.items() if k != "SQLITE_PATH"}
        env.update(
            {
                "DATABASE_URL": args.database_url,
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "PYTHONPATH": str(ROOT),
            }
        )
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
        )
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")})
        os.environ.update({"QBO_ENVIRONMENT": "sandbox-local", "LOG_LEVEL": "WARNING"})
        import django

        django.setup()
        from django.conf import settings

        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
        for workers in [int(w) for w in args.workers.split(",") if w]:
            r = one_round(args, workers, workdir)
            rounds.append(r)
            print(
                f"{workers} worker(s): {r['synced']}/{r['records']} records synced in {r['busy_s']:.1f} s = "
                f"{r['records_per_s']:.1f}/s; runs {r['sync_tasks_that_ran']}, overlapping runs on a realm "
                f"{r['overlapping_runs_on_one_realm']}; firm done s {r['firm_done_s']}; "
                f"Jain at half time {r['jain_progress_at_half_time']:.3f}",
                flush=True,
            )
    base = rounds[0]["records_per_s"] if rounds and rounds[0]["records_per_s"] else None
    for r in rounds:
        r["speed_up_vs_first"] = (r["records_per_s"] / base) if base and r["records_per_s"] else None
    out = {
        "benchmark": "multiworker",
        "started": started.isoformat(),
        "args": {**vars(args), "database_url": args.database_url.split("@")[-1]},
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "git": git_state(),
        "rounds": rounds,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"multiworker-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(out, indent=2, default=str))
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

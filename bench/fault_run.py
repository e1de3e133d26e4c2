"""Fault run: a first sync of 2,000 accounts while the worker is SIGKILLed 20 times.

    .venv/bin/python bench/fault_run.py [--accounts 2000] [--kills 20] [--seed N]
        [--database-url postgres://postgres@127.0.0.1:5432/fault_run] [--latency 0.2]
        [--lease-seconds 15] [--time-scale 1.0] [--settle-timeout 900]

What it does (docs/benchmarks.md "Fault run" has the figures):

1. Starts `qbo-sandbox serve` on a free loopback port with QBO's real limits on (throttling,
   batch calls per minute; `--time-scale` compresses its minute and the app's pacing window
   alike) and `--latency` seconds added to every API call, so a batch is in flight long enough
   to be killed in. Fills a fresh `sample-us` realm with the standard account workload of
   `account_sync_bench.py` (half the accounts match customers, 2.5 % vendor clashes, 1 % near
   matches, 0.5 % inactive matches, the rest new).
2. Migrates a fresh SQLite file (or uses `--database-url`), creates a firm with the accounts,
   connects it and saves the setup, which enqueues the first `sync_realm` the ordinary way.
3. Runs a real worker (`manage.py run_worker`, its own process) and SIGKILLs it `--kills`
   times, restarting it after each kill. Odd-numbered kills wait for the worker's next batch
   call to reach the sandbox and kill within `--latency` + 0.2 s (while QBO is answering, or
   while the answer is recorded); even-numbered ones come at a random moment 0.5-8 s after the
   worker signed its first heartbeat. "In flight" in the figures counts links holding a batch
   requestid when the kill landed (stored, sent, or answered but not yet recorded). Nothing
   else helps the worker: no command is run by hand, the reaper, the sweep and the engine's
   lease must bring the realm back each time.
4. After the last kill the worker runs undisturbed until no account is left Syncing or Not
   synced (or `--settle-timeout` passes), then stops with SIGTERM.
5. Checks, against QBO read back over HTTP: every matching and new account has exactly one
   customer of its name, no customer was created for a vendor clash or near match, inactive
   matches stay inactive, the realm holds exactly (customers before + new accounts) customers
   (no duplicate at all); every account's status is the one the product rules give (Synced, or
   Error with the right reason); none is stuck Syncing.

Prints the figures and writes bench/results/fault-run-<UTC timestamp>.json. Exit status 0 only
when every check holds. About 5-10 minutes with the defaults on 2 shared cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# bench/ is a folder of scripts, not a package: its neighbours are imported from the path above.
from _harness import Run, bench_firm, killable_worker, migrate, setup_django
from account_sync_bench import (
    EXPECTED_ENGINE,
    NEW,
    RESULTS,
    ROOT,
    Sandbox,
    api_client,
    check,
    git_state,
    make_workload,
    read_all,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--accounts", type=int, default=2000)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--seed", type=int, default=20261130)
    p.add_argument(
        "--database-url", default=None, help="PostgreSQL (migrated here); default a temp SQLite file"
    )
    p.add_argument("--latency", type=float, default=0.2, help="seconds the sandbox adds to every API call")
    p.add_argument("--lease-seconds", type=int, default=15, help="QBO_LEASE_SECONDS of the worker")
    p.add_argument(
        "--time-scale", type=float, default=1.0, help="sandbox minute = 60 s x this; pacing follows"
    )
    p.add_argument("--settle-timeout", type=float, default=900, help="seconds to wait after the last kill")
    p.add_argument("--keep", action="store_true", help="keep the temp folder (database, worker logs)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wl = make_workload(args.accounts, seed=args.seed)
    with killable_worker(args, Sandbox(), prefix="fault-run-") as run:
        return _main(args, wl, run)


def _main(args: argparse.Namespace, wl: Any, run: Run) -> int:
    sb = run.sb
    sb.config(throttling_enabled=True, time_scale=args.time_scale, latency_seconds=args.latency)
    realm = sb.fresh_realm(wl)
    with api_client(sb, realm) as api:
        customers_before = len(read_all(api, "Customer"))
    sb.call("POST", f"/realms/{realm}/counters/reset")
    if args.time_scale != 1.0:
        # The app's pacing window follows the sandbox's compressed minute: bench/soak_settings.py
        # (the worker's settings, and this process's) reads it, config/settings.py does not.
        run.env["QBO_RATE_WINDOW_SECONDS"] = str(60 * args.time_scale)
    migrate(run.env)
    setup_django(run.env)

    from django.utils import timezone
    from django_tasks_db.models import DBTaskResult

    from practice.clients.models import ClientAccount
    from practice.quickbooks.connection import oauth
    from practice.quickbooks.models import SyncAttempt, SyncLink
    from practice.quickbooks.statuses import SyncStatus

    firm, owner = bench_firm("Fault run", "fault.test")
    ClientAccount.objects.bulk_create(
        [ClientAccount(firm=firm, name=a.name) for a in wl.accounts], batch_size=500
    )
    names = dict(ClientAccount.objects.filter(firm=firm).values_list("pk", "name"))
    conn, _ = oauth.connection_connect(
        firm=firm,
        user=owner,
        realm_id=realm,
        company_name="Fault run company",
        token_set=oauth.TokenSet.from_response(sb.call("POST", "/tokens", json={"realm_id": realm})),
        env=oauth.environment(),
    )
    conn.account_scope = "all"
    conn.unmatched_customer = "create"
    conn.setup_completed_at = timezone.now()
    conn.save()  # what saving the setup page does: enqueues the first sync_realm on commit
    links = SyncLink.objects.filter(connection=conn, kind="customer")
    task_rows = DBTaskResult.objects.filter(task_path="practice.quickbooks.sync.tasks.sync_realm")
    if not task_rows.exists():
        print("saving the setup enqueued no sync_realm task", file=sys.stderr)
        return 2

    def in_flight() -> int:
        return links.exclude(batch_request_id="").count()

    def statuses() -> dict[str, int]:
        out: dict[str, int] = {}
        for status in links.values_list("status", flat=True):
            out[status] = out.get(status, 0) + 1
        out["no link"] = len(names) - sum(out.values())
        return out

    t0 = time.monotonic()
    print(
        f"{len(wl.accounts)} accounts, realm {realm}, {customers_before} customers before; "
        f"workdir {run.workdir}"
    )
    for k in range(args.kills):
        run.start_worker()
        if not run.wait_for_heartbeat():
            return 2
        moment = run.kill_at_random_point(realm, aim_at_batch=k % 2 == 0)
        flying = in_flight()  # read after the kill: what the dead worker left stored
        at_kill = statuses()
        run.kill_log.append(
            {
                "kill": k + 1,
                "at_s": round(time.monotonic() - t0, 1),
                "aimed_at": moment,
                "links_in_flight": flying,
                "statuses": at_kill,
            }
        )
        print(
            f"kill {k + 1:2d} at {time.monotonic() - t0:6.1f} s ({moment}): {flying} in flight, "
            + ", ".join(f"{s} {n}" for s, n in sorted(at_kill.items()) if n)
        )

    run.start_worker()
    settle_start = time.monotonic()
    while True:
        now_statuses = statuses()
        pending = now_statuses.get(SyncStatus.SYNCING, 0) + now_statuses.get(SyncStatus.NOT_SYNCED, 0)
        pending += now_statuses["no link"]
        if pending == 0 and in_flight() == 0:
            break
        if time.monotonic() - settle_start > args.settle_timeout:
            break
        time.sleep(1)
    settle_s = time.monotonic() - settle_start
    run.stop_worker()
    wall = time.monotonic() - t0

    final = {
        names[link.local_id]: (link.status, link.error_kind)
        for link in links.only("local_id", "status", "error_kind")
    }
    counters = sb.counters(realm)
    verdict = check(sb, realm, wl, final, engine=True)
    with api_client(sb, realm) as api:
        customers_after = len(read_all(api, "Customer"))
    n_new = sum(1 for a in wl.accounts if a.category == NEW)
    stuck_syncing = sum(1 for s, _ in final.values() if s == SyncStatus.SYNCING)
    not_synced = len(names) - sum(1 for s, _ in final.values() if s != SyncStatus.NOT_SYNCED)
    tasks = dict(
        (status, task_rows.filter(status=status).count())
        for status in ("SUCCESSFUL", "FAILED", "READY", "RUNNING")
    )
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": git_state(),
        "database": "postgresql" if args.database_url else "sqlite",
        "accounts": len(wl.accounts),
        "workload": wl.counts(),
        "kills": len(run.kill_log),
        "kills_with_a_batch_in_flight": sum(1 for e in run.kill_log if e["links_in_flight"]),
        "kills_just_after_a_batch_call": sum(1 for e in run.kill_log if e["aimed_at"] == "batch sent"),
        "worker_starts": run.starts,
        "wall_s": round(wall, 1),
        "settle_after_last_kill_s": round(settle_s, 1),
        "customers_before": customers_before,
        "customers_after": customers_after,
        "customers_expected": customers_before + n_new,
        "duplicate_or_missing_customers": customers_after - (customers_before + n_new),
        "stuck_syncing": stuck_syncing,
        "left_not_synced": not_synced,
        "wrong_status": verdict["unexpected_statuses"],
        "check_problems": verdict["problems"],
        "problem_examples": verdict["problem_examples"],
        "statuses_by_category": verdict["statuses_by_category"],
        "history_rows": SyncAttempt.objects.filter(link__connection=conn).count(),
        "sync_tasks": tasks,
        "qbo_counters": counters,
        "settings": {
            "latency_s": args.latency,
            "lease_seconds": args.lease_seconds,
            "time_scale": args.time_scale,
            "seed": args.seed,
        },
        "kill_log": run.kill_log,
    }
    ok = (
        verdict["ok"]
        and result["duplicate_or_missing_customers"] == 0
        and stuck_syncing == 0
        and not_synced == 0
        and result["kills"] == args.kills
    )
    result["ok"] = ok
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"fault-run-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(result, indent=2, default=str))

    print()
    print(
        f"fault run: {len(wl.accounts)} accounts, {result['kills']} SIGKILLs "
        f"({result['kills_with_a_batch_in_flight']} with a batch in flight), {run.starts} worker starts"
    )
    print(f"  wall {wall:.0f} s; settled {settle_s:.0f} s after the last kill")
    print(
        f"  customers in QBO: before {customers_before}, after {customers_after}, "
        f"expected {customers_before + n_new} (difference {result['duplicate_or_missing_customers']})"
    )
    print(
        f"  stuck Syncing: {stuck_syncing}; left Not synced: {not_synced}; "
        f"wrong status: {verdict['unexpected_statuses']}; "
        f"QBO check problems: {verdict['problems']}"
    )
    for category, counts in verdict["statuses_by_category"].items():
        expected = EXPECTED_ENGINE[category]
        label = f"{expected[0]}:{expected[1]}" if expected[1] else expected[0]
        print(f"  {category:15s} expected {label:22s} got {counts}")
    print(
        f"  QBO: {counters['requests']} requests, {counters['batch_calls']} batch calls, "
        f"{counters.get('replays', 0)} requestid replays, "
        f"{counters['throttled']} throttled; history rows {result['history_rows']}; sync tasks {tasks}"
    )
    if verdict["problem_examples"]:
        print("  examples:", *verdict["problem_examples"], sep="\n    ")
    print(f"  {'OK' if ok else 'FAILED'}; figures in {out.relative_to(ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

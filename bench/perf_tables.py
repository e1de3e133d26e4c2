# ruff: noqa: E501  (rows of Markdown tables read best as one f-string each)
"""Markdown tables for docs/performance.md, computed from result JSONs (no figure typed by hand).

    .venv/bin/python bench/perf_tables.py machine > bench/results/machine-<UTC>.json
    .venv/bin/python bench/perf_tables.py tables bench/results/<file>.json [...]

`machine` prints the machine's facts as JSON (CPU, cores, memory, Python, SQLite, PostgreSQL,
load); `tables` prints, for each result file by its "benchmark" field, the table the doc shows:
medians over runs and ratios of medians, plus the per-run pairs they come from.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    def run(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "not found"

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_model": cpu,
        "nproc": os.cpu_count(),
        "mem_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", "show server_version"]),
        "uptime": run(["uptime"]),
        "loadavg": os.getloadavg(),
        "machine_kind": "python-svc (/work/.library/env/machines/python-svc.md): 2 cores, 24 GiB, shared",
    }


def med(values: list[float]) -> float:
    return statistics.median(values)


def f(x: Any, digits: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def billing(d: dict[str, Any], name: str) -> None:
    runs = d["runs"]
    variants = sorted({r["variant"] for r in runs})
    print(
        f"#### Comparison ({name}; {len({r['run'] for r in runs})} runs; load at end {d['machine']['loadavg_at_end']})\n"
    )
    print(
        "| variant | records | requests | req / record | metered ops | ops / record | batch calls | "
        "wall s (median) | app CPU s / 1k records (median) | invoices ok | payments ok | refunds ok |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    meds: dict[str, dict[str, float]] = {}
    for v in variants:
        rs = [r for r in runs if r["variant"] == v]
        c = rs[0]["check"]
        meds[v] = {
            "wall": med([r["wall_s"] for r in rs]),
            "cpu": med([r["app_cpu_s_per_1000"] for r in rs]),
            "req": med([r["requests"] for r in rs]),
            "ops": med([r["operations"] for r in rs]),
        }
        same = all(r["requests"] == rs[0]["requests"] and r["operations"] == rs[0]["operations"] for r in rs)
        print(
            f"| {v} | {f(rs[0]['records'])} | {f(rs[0]['requests'])}{'' if same else ' (varies)'} | "
            f"{f(rs[0]['requests_per_record'], 4)} | {f(rs[0]['operations'])} | {f(rs[0]['operations_per_record'], 4)} | "
            f"{f(rs[0]['batch_calls'])} | {f(meds[v]['wall'])} ({', '.join(f(r['wall_s'], 1) for r in rs)}) | "
            f"{f(meds[v]['cpu'])} ({', '.join(f(r['app_cpu_s_per_1000'], 2) for r in rs)}) | "
            f"{c['invoices_correct']:,} / {c['invoices_expected']:,} | {c['payments_correct']:,} / {c['payments_expected']:,} | "
            f"{c.get('refunds_correct', '–')} / {c.get('refunds_expected', '–')} |"
        )
    if "engine" in meds and "reference" in meds:
        e, r = meds["engine"], meds["reference"]
        paired = []
        for run in sorted({x["run"] for x in runs}):
            pe = [x for x in runs if x["run"] == run and x["variant"] == "engine"]
            pr = [x for x in runs if x["run"] == run and x["variant"] == "reference"]
            if pe and pr:
                paired.append(pe[0]["wall_s"] / pr[0]["wall_s"])
        print(
            f"\nengine / reference: requests **{e['req'] / r['req']:.3f}**, metered ops **{e['ops'] / r['ops']:.2f}**, "
            f"wall **{e['wall'] / r['wall']:.2f}** (paired per run: {', '.join(f'{p:.2f}' for p in paired)}), "
            f"app CPU per 1k records **{e['cpu'] / r['cpu']:.2f}**\n"
        )
    for v in variants:
        rs = [r for r in runs if r["variant"] == v]
        probs = rs[0]["check"]["problems"]
        if probs:
            print(f"- {v} check problems: {probs}")
        det = rs[0]["detail"]
        if v == "engine":
            print(f"- engine link statuses: {det.get('statuses')}")
        else:
            print(f"- reference errors: {det.get('errors')}")
    budgets(d)


def budgets(d: dict[str, Any]) -> None:
    bs = d.get("budgets") or []
    if not bs:
        return
    b0 = bs[0]
    print(
        f"\n#### Budget runs ({b0['records']:,} records, limits {b0['limits']}, a minute = {b0['minute_s']:g} s)\n"
    )
    print(
        "| pacer batch calls / min | run | batch calls | wall (scaled min) | whole minutes | records / min ÷ ceiling "
        "from the first minute | batch calls / min ÷ 40 from the first minute | first minute ÷ ceiling | "
        "batch calls / min ÷ 40 first→last batch | 429s | correct |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for b in bs:
        print(
            f"| {b['batches_per_window_setting']:g} | {b['run'] + 1} | {b['batch_calls']} | {f(b['scaled_minutes'])} | "
            f"{b['whole_minutes_counted']} | **{f(b['items_utilisation_from_first_minute'], 3)}** | "
            f"{f(b['batch_utilisation_from_first_minute'], 3)} | {f(b['first_minute_items_utilisation'], 3)} | "
            f"{f(b['batch_utilisation'], 3)} | {b['throttled_429']} | {b['check_ok']} |"
        )
    print()
    for s in sorted({b["batches_per_window_setting"] for b in bs}):
        one = [b for b in bs if b["batches_per_window_setting"] == s]
        print(
            f"- pacer {s:g}: median records/min ÷ ceiling from the first minute "
            f"{med([b['items_utilisation_from_first_minute'] for b in one]):.3f}, steady batch utilisation "
            f"{med([b['batch_utilisation'] for b in one]):.3f}, 429s {sum(b['throttled_429'] for b in one)} "
            f"over {len(one)} run(s)"
        )
    print()
    for b in bs:
        per = ", ".join(str(r["batch_items"]) for r in b["per_minute"])
        print(f"- pacer {b['batches_per_window_setting']:g} run {b['run'] + 1}: records per minute: {per}")


def latency(d: dict[str, Any], name: str) -> None:
    s = d["summary"]
    load = d["machine"]
    a = d["args"]
    print(
        f"#### {d['benchmark']} ({name}; worker --interval {a.get('worker_interval', 1.0)} s, "
        f"workers {1 if a['mode'] == 'idle' else a['workers']}, {d['database']}; "
        f"load {', '.join(f'{x:.1f}' for x in load['loadavg_at_start'])} → "
        f"{', '.join(f'{x:.1f}' for x in load['loadavg_at_end'])})\n"
    )
    print("| invoices | arrived | p50 s | p90 s | p99 s | max s | min s |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {s['n']} | {s['arrived']} | **{f(s['p50_s'], 3)}** | {f(s['p90_s'], 3)} | **{f(s['p99_s'], 3)}** | "
        f"{f(s['max_s'], 3)} | {f(s['min_s'], 3)} |"
    )
    if "a_synced_before_series" in d:
        print(
            f"\nFirm A (backfill {d['backfill']}): synced links {d['a_synced_before_series']:,} when B's series "
            f"started, {d['a_synced_after_series']:,} when it ended, {d['a_pending_after_series']:,} still pending; "
            f"A's realm: {d['a_counters']['batch_calls']} batch calls, {d['a_counters']['throttled']} 429s."
        )
    print()


def memory(d: dict[str, Any], name: str) -> None:
    print(f"#### Memory ({name}; {d['records']:,} records: {d['workload']})\n")
    print("| records synced (mark) | at s | synced then | VmRSS MiB | VmHWM MiB |")
    print("|---|---|---|---|---|")
    for mark, s in d["marks"].items():
        print(
            f"| {int(mark):,} | {s['t_s']} | {s['synced']:,} | {s['rss_kb'] / 1024:.0f} | {s['hwm_kb'] / 1024:.0f} |"
        )
    last = max(x["synced"] for x in d["samples"])
    end = next(x for x in d["samples"] if x["synced"] == last)
    after = d["samples"][-1]
    print(
        f"| end of the backfill | {end['t_s']} | {end['synced']:,} | {end['rss_kb'] / 1024:.0f} | {end['hwm_kb'] / 1024:.0f} |"
    )
    print(
        f"| idle afterwards | {after['t_s']} | {after['synced']:,} | {after['rss_kb'] / 1024:.0f} | {after['hwm_kb'] / 1024:.0f} |"
    )
    print(
        f"\nPeak VmHWM {d['peak_hwm_kb'] / 1024:.0f} MiB; synced {d['synced']:,}; wall {d['wall_s']:.0f} s "
        f"(bulk insert {d['insert_s']:.0f} s before); statuses {d['statuses']}\n"
    )


def multiworker(d: dict[str, Any], name: str) -> None:
    a = d["args"]
    print(f"#### Many firms ({name}; {a['firms']} firms × {a['invoices']} invoices, {a['database_url']})\n")
    print(
        "| workers | records synced | busy s | records / s | × first | runs | overlapping runs on a realm | "
        "firm done s min / median / max | Jain at half time | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in d["rounds"]:
        fd = r["firm_done_s"]
        print(
            f"| {r['workers']} | {r['synced']:,} / {r['records']:,} | {f(r['busy_s'], 1)} | **{f(r['records_per_s'], 1)}** | "
            f"{f(r['speed_up_vs_first'])} | {r['sync_tasks_that_ran']} | {r['overlapping_runs_on_one_realm']} | "
            f"{f(fd['min'], 1)} / {f(fd['median'], 1)} / {f(fd['max'], 1)} | {f(r['jain_progress_at_half_time'], 3)} | "
            f"{', '.join(f'{x:.1f}' for x in r['loadavg'])} |"
        )
    print()


def reads(d: dict[str, Any], name: str) -> None:
    print(f"#### Reads per firm-month ({name}; firm {d['firm']}, {d['args']})\n")
    print("| phase | day | runs | CorePlus calls (reads + queries + CDC) | writes | top CorePlus calls |")
    print("|---|---|---|---|---|---|")
    for r in d["days"]:
        top = ", ".join(f"{k} {v}" for k, v in list(r["by_label"].items())[:4])
        print(
            f"| {r['phase']} | {r['day']} | {r['runs']} | {r['coreplus']} | {r['by_kind'].get('write', 0)} | {top} |"
        )
    print()
    for phase, p in d["phases"].items():
        top = ", ".join(f"{k} {v:,.0f}" for k, v in list(p["by_label_per_month_extrapolated"].items())[:5])
        print(
            f"- {phase}: {p['coreplus_per_day_mean']:.1f} CorePlus calls a day → **{p['coreplus_per_month_extrapolated']:,.0f} "
            f"a month** (× 30; target < {d['target_per_month']:,}); of which {top}"
        )
    print(f"- a CDC sweep adds per month (computed): {d['cdc_sweep_calls_per_month_computed']}\n")


def main() -> None:
    if sys.argv[1:2] == ["machine"]:
        print(json.dumps(machine(), indent=2))
        return
    for path in sys.argv[2:]:
        d = json.loads(Path(path).read_text())
        name = Path(path).name
        kind = d.get("benchmark", "")
        if kind == "billing_sync":
            billing(d, name)
        elif kind in ("latency_idle", "latency_load"):
            latency(d, name)
        elif kind == "latency_memory":
            memory(d, name)
        elif kind == "multiworker":
            multiworker(d, name)
        elif kind == "reads_month":
            reads(d, name)
        elif "cpu_model" in d:
            print(f"Machine ({name}): {d}\n")


if __name__ == "__main__":
    main()

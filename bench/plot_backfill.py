"""Plot records synced per minute against QBO's ceiling during a backfill (docs/performance.md).

    .venv/bin/python bench/plot_backfill.py bench/results/billing-sync-<timestamp>.json [more.json ...] \
        [--out docs/performance-backfill.png]

Reads the budget runs of a billing_sync_bench.py result (`budgets`: per-minute counts from the
sandbox's request log) and draws, per run, the records written per (time-scaled) minute, with
QBO's ceiling for a batching client (batch calls per minute × items per batch) and the 500
requests per minute a one-request-per-record integration could at best use. Needs matplotlib
(requirements-bench.txt).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "results", type=Path, nargs="+", help="billing_sync_bench.py JSONs; their budget runs together"
    )
    p.add_argument("--out", type=Path, default=Path("docs/performance-backfill.png"))
    args = p.parse_args()
    budgets = [b for path in args.results for b in json.loads(path.read_text()).get("budgets") or []]
    if not budgets:
        raise SystemExit("no budget runs (run billing_sync_bench.py without --no-budget)")
    limits = budgets[0]["limits"]
    ceiling = limits["batch_per_minute"] * limits["batch_max_items"]
    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    styles = ["-", "--", ":", "-."]
    settings = sorted({b["batches_per_window_setting"] for b in budgets})
    for b in budgets:
        series = b["per_minute"]
        xs = [r["minute"] for r in series]
        ys = [r["batch_items"] for r in series]
        k = settings.index(b["batches_per_window_setting"])
        label = (
            f"pacer {b['batches_per_window_setting']:g} batch calls/min, run {b['run'] + 1} "
            f"({b['throttled_429']} × 429)"
        )
        ax.plot(xs, ys, styles[k % len(styles)], marker="o", markersize=3, label=label)
    ax.axhline(
        ceiling,
        color="black",
        linewidth=1.5,
        label=f"QBO ceiling: {limits['batch_per_minute']} × {limits['batch_max_items']} = {ceiling}/min",
    )
    ax.axhline(
        limits["requests_per_minute"],
        color="grey",
        linestyle="--",
        linewidth=1,
        label=f"one request per record at best: {limits['requests_per_minute']}/min",
    )
    minute = budgets[0]["minute_s"]
    ax.set_xlabel(f"minute of the backfill (time-scaled: a QBO minute lasts {minute:g} s)")
    ax.set_ylabel("records written to QBO per minute")
    ax.set_title(f"Billing backfill of {budgets[0]['records']:,} records under the sandbox's real limits")
    ax.set_ylim(0, ceiling * 1.12)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower center", fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

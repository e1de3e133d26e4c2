"""The soak's short form (issue 13 item 9): `bench/soak.py` with small numbers, as `make soak` runs
it with large ones.

A real `run_worker` process is SIGKILLed 3 times during a backfill of 60 accounts, 60 invoices,
30 payments and a refund while the sandbox (its own `qbo-sandbox serve` process) injects one
fault of each kind, expires access tokens every 20 s (each refresh rotates the refresh token)
and revokes the app once; the script reconnects through the app's views. Everything is then
read back from QBO over HTTP by the script, which exits 0 only when every check holds; the test
also asserts the figures it wrote.

On SQLite the script migrates a temp file of its own. On PostgreSQL it drops and creates a
database next to the suite's test database (`<test database>_soak`), on the same server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connections

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
SHORT = [
    "--accounts", "60", "--invoices", "60", "--payments", "30", "--refunds", "3",
    "--kills", "3", "--faults-per-kind", "1", "--latency", "0.05", "--lease-seconds", "6",
    "--token-ttl", "20", "--time-scale", "0.2", "--max-wait", "4", "--batches-per-life", "1",
    "--settle-timeout", "150",
]  # fmt: skip


def database_args() -> list[str]:
    conn = connections["default"]
    if conn.vendor != "postgresql":
        return []
    s = conn.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    url = f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}_soak"
    return ["--database-url", url, "--fresh-database"]


def test_soak_short_form(tmp_path):
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), *SHORT, *database_args(), "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())

    assert r["ok"] is True and all(r["checks"].values()), r["checks"]
    assert r["kills"] == 3 and r["worker_starts"] == 4
    # Every fault kind met a request of the worker, once each; the revocation was noticed
    # ("Needs reconnect") and the owner's reconnect through the views restored the connection.
    assert r["faults_injected"] == r["faults_planned"] == dict.fromkeys(r["faults_planned"], 1)
    assert len(r["faults_planned"]) == 9
    assert r["revocation"]["needs_reconnect_seen"] is True and r["revocation"]["reconnected"] is True
    assert r["connection_statuses_seen"] == ["connected", "needs_reconnect"]
    assert r["refresh_tokens_seen"] >= 2  # rotated at least once, and the rotated one kept working

    # QBO read back: each record exactly once, amounts and balances equal to the app's.
    assert r["customers_after"] == r["customers_expected"] == r["customers_before"] + 27
    assert r["invoices"]["invoices_correct"] == r["invoices"]["invoices_expected"] > 0
    assert r["payments"]["payments_correct"] == r["payments"]["payments_expected"] > 0
    assert r["refunds"]["correct"] == r["refunds"]["expected"]
    assert r["customer_balances"]["correct"] == r["customer_balances"]["expected"] == 57
    assert r["realm_totals"]["after"] == r["realm_totals"]["expected"]
    assert r["realm_totals"]["after"]["RefundReceipt"] == r["realm_totals"]["before"]["RefundReceipt"] + 1
    assert r["check_problems"] == {} and r["wrong_status"] == {} and r["stuck_syncing"] == 0

    # Statuses: the workload's deliberate problems are Errors with their reason (2 vendor
    # clashes, 1 near match), every other account Synced; their invoices and payments wait.
    customers = r["statuses_by_kind"]["customer"]
    assert customers == {"synced": 57, "error:vendor_clash": 2, "error:near_match": 1}
    assert r["statuses_by_kind"]["service"] == {"synced": 20}
    assert set(r["statuses_by_kind"]["invoice"]) <= {"synced", "not_synced"}
    assert r["statuses_by_kind"]["invoice"]["synced"] == r["invoices"]["invoices_expected"]

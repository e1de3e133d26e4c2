"""Initial account sync into one QBO realm: the engine against a naive reference integration.

    .venv/bin/python bench/account_sync_bench.py [--accounts 2000] [--runs 3] [--database-url URL]
        [--latency 0] [--budget-accounts 4000 --time-scale 0.5 | --no-budget]

What it does (docs/benchmarks.md has the figures and the caveats):

1. Generates the account part of the standard workload (docs/design benchmarks.md) with a fixed
   seed: half of the accounts match existing QBO customers (a fifth of those with other case
   or spacing), 2.5 % clash with vendors, 1 % are near matches, 0.5 % match inactive customers,
   the rest are new. Each variant of each run gets its own fresh realm, filled through the
   sandbox's control plane (bulk insert: not metered), so every variant starts from the same
   state.
2. Starts `qbo-sandbox serve` as a separate process on a free loopback port (limits off for the
   comparison runs) and runs, in a fresh child process with a fresh database each time:
   - `engine`: the real engine through `practice.quickbooks.sync.tasks.run_now`, the body of the
     `sync_realm` task the worker executes;
   - `engine-b1`: the same with `engine.BATCH_SIZE = 1`. The engine has no batching switch;
     this is the closest thing (every write is still a batch call, of one item);
   and, in this process, `reference`: query Customer by DisplayName, create if missing, one
   request at a time (httpx directly, a token from the control plane).
   The sandbox's per-realm counters give requests, metered operations and batch calls; the
   realm's customers are then read back to check that every expected customer exists exactly
   once, and the link statuses are counted per category.
3. Optionally (default on) a budget run: the sandbox's real limits on, time compressed by
   `--time-scale` (0.5: a "minute" lasts 30 s) and the client's pacing window compressed the
   same way; reports useful operations per minute against the limits, and the 429s.

The engine's client paces itself below QBO's limits even when the sandbox does not enforce
them; for the comparison runs the child lifts that pacing (settings), so wall time measures
the engine and the sandbox, not the pacer. CPU is `time.process_time()` of the child around
the run only (setup excluded); the sandbox runs in its own process and is not counted.

Writes bench/results/account-sync-<UTC timestamp>.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

# bench/ is a folder of scripts (this one's folder is on sys.path), not a package.
from _harness import ROOT, Instruments, apply_pacing, bench_firm, child_setup, machine

RESULTS = ROOT / "bench" / "results"
SEED = 20261128
MINOR = "75"

# Categories of accounts and what a correct sync leaves behind.
MATCH, VENDOR, NEAR, INACTIVE, NEW = "match", "vendor_clash", "near_match", "inactive_match", "new"
CATEGORIES = (MATCH, NEW, VENDOR, NEAR, INACTIVE)
# Engine: (status, error_kind) expected per category.
EXPECTED_ENGINE = {
    MATCH: ("synced", ""),
    NEW: ("synced", ""),
    VENDOR: ("error", "vendor_clash"),
    NEAR: ("error", "near_match"),
    INACTIVE: ("error", "inactive_match"),
}


# --------------------------------------------------------------------------------------------
# Workload


_FIRST = [
    "Harbor",
    "Maple",
    "Cedar",
    "Summit",
    "Granite",
    "Willow",
    "Juniper",
    "Copper",
    "Silver",
    "Meadow",
    "Prairie",
    "Beacon",
    "Falcon",
    "Orchard",
    "Riverside",
    "Lakeside",
    "Northgate",
    "Sterling",
    "Bluebird",
    "Redwood",
    "Ironwood",
    "Highland",
    "Coastal",
    "Pioneer",
]
_SECOND = [
    "Bakery",
    "Dental",
    "Plumbing",
    "Design",
    "Consulting",
    "Logistics",
    "Florists",
    "Motors",
    "Studio",
    "Analytics",
    "Farms",
    "Builders",
    "Roofing",
    "Catering",
    "Legal",
    "Partners",
    "Fitness",
    "Optics",
    "Printing",
    "Landscaping",
    "Ventures",
    "Labs",
]


@dataclass(frozen=True)
class Account:
    name: str  # the app's account name
    category: str
    qbo_name: str = ""  # the name of the related QBO customer/vendor ("" for new accounts)


@dataclass
class Workload:
    accounts: list[Account]
    customers: list[dict[str, Any]]  # bodies for the control plane's bulk insert
    vendors: list[dict[str, Any]]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(CATEGORIES, 0)
        for a in self.accounts:
            out[a.category] += 1
        return out


def _near_pair(base: str, i: int) -> tuple[str, str]:
    """(account name, QBO name) that differ only in what `matching.loose_key` ignores."""
    kind = i % 4
    if kind == 0:
        return f"{base}'s Shop", f"{base}s Shop"
    if kind == 1:
        return f"{base} & Sons", f"{base} and Sons"
    if kind == 2:
        return f"{base} LLC", f"{base}, Inc."
    accented = base.replace("e", "é", 1) if "e" in base else base + " Café"
    plain = "".join(c for c in unicodedata.normalize("NFKD", accented) if not unicodedata.combining(c))
    return accented, plain


def _variant(name: str, rng: random.Random) -> str:
    """Same customer to the engine's exact-match rule: other case, or other white space."""
    roll = rng.randrange(4)
    if roll == 0:
        return name.upper()
    if roll == 1:
        return name.lower()
    if roll == 2:
        return "  " + name.replace(" ", "  ", 1)
    return name + " "


def make_workload(n: int, seed: int = SEED) -> Workload:
    rng = random.Random(seed)
    n_vendor = round(n * 0.025)
    n_near = round(n * 0.01)
    n_inactive = round(n * 0.005)
    n_match = n // 2
    n_new = n - n_match - n_vendor - n_near - n_inactive
    plan = [MATCH] * n_match + [VENDOR] * n_vendor + [NEAR] * n_near + [INACTIVE] * n_inactive
    plan += [NEW] * n_new
    rng.shuffle(plan)
    accounts: list[Account] = []
    customers: list[dict[str, Any]] = []
    vendors: list[dict[str, Any]] = []
    n_variant = 0
    for i, category in enumerate(plan):
        base = f"{rng.choice(_FIRST)} {rng.choice(_SECOND)} {i + 1:05d}"
        if category == MATCH:
            # A fifth differ in case or spacing (still an exact match once normalised).
            name = base
            if rng.random() < 0.2:
                name = _variant(base, rng)
                n_variant += 1
            accounts.append(Account(name, MATCH, base))
            customers.append({"DisplayName": base, "CompanyName": base})
        elif category == VENDOR:
            accounts.append(Account(base, VENDOR, base))
            vendors.append({"DisplayName": base, "CompanyName": base})
        elif category == NEAR:
            mine, theirs = _near_pair(base, i)
            accounts.append(Account(mine, NEAR, theirs))
            customers.append({"DisplayName": theirs})
        elif category == INACTIVE:
            accounts.append(Account(base, INACTIVE, base))
            customers.append({"DisplayName": base, "Active": False})
        else:
            accounts.append(Account(base, NEW))
    return Workload(accounts, customers, vendors)


def normalize(name: str) -> str:
    return " ".join(name.split()).casefold()


# --------------------------------------------------------------------------------------------
# Sandbox process and control plane


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sandbox:
    """`qbo-sandbox serve` in a child process, and its control plane over HTTP."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qbo_sandbox.cli", "serve", "--port", str(self.port)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.http = httpx.Client(base_url=f"{self.url}/_sandbox", timeout=300)
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.http.get("/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("qbo-sandbox did not start")
            time.sleep(0.1)

    def close(self) -> None:
        self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def call(self, method: str, path: str, **kw: Any) -> Any:
        resp = self.http.request(method, path, **kw)
        if resp.status_code >= 400:
            raise RuntimeError(f"control plane {method} {path}: {resp.status_code} {resp.text[:300]}")
        return resp.json()

    def config(self, **kw: Any) -> dict[str, Any]:
        return dict(self.call("POST", "/config", json=kw))

    def cpu_seconds(self) -> float:
        """CPU time of the sandbox process (Linux /proc), to show where the wall time went."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return float("nan")

    def fresh_realm(self, wl: Workload) -> str:
        realm = str(self.call("POST", "/realms", json={"seed": "sample-us"})["realm_id"])
        for entity, bodies in (("Customer", wl.customers), ("Vendor", wl.vendors)):
            for start in range(0, len(bodies), 5000):
                data = self.call("POST", f"/realms/{realm}/bulk/{entity}", json=bodies[start : start + 5000])
                if data.get("errors"):
                    raise RuntimeError(f"bulk {entity}: {data['errors'][:3]}")
        self.call("POST", f"/realms/{realm}/counters/reset")
        return realm

    def token(self, realm: str) -> str:
        return str(self.call("POST", "/tokens", json={"realm_id": realm})["access_token"])

    def counters(self, realm: str) -> dict[str, int]:
        return dict(self.call("GET", f"/realms/{realm}/counters"))


def api_client(sb: Sandbox, realm: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{sb.url}/v3/company/{realm}",
        headers={"Authorization": f"Bearer {sb.token(realm)}", "Accept": "application/json"},
        params={"minorversion": MINOR},
        timeout=60,
    )


def qbo_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def read_all(api: httpx.Client, entity: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    position = 1
    while True:
        q = (
            f"select * from {entity} where Active in (true, false) orderby Id "
            f"startposition {position} maxresults 1000"
        )
        resp = api.post("/query", content=q, headers={"Content-Type": "application/text"})
        resp.raise_for_status()
        page = resp.json().get("QueryResponse", {}).get(entity, [])
        out.extend(page)
        if len(page) < 1000:
            return out
        position += len(page)


# --------------------------------------------------------------------------------------------
# The reference integration: how most integrations are written


def reference_sync(sb: Sandbox, realm: str, wl: Workload) -> dict[str, Any]:
    """For each account: query Customer by DisplayName; create it if missing. One at a time."""
    statuses: dict[str, tuple[str, str]] = {}
    with api_client(sb, realm) as api:
        t0, c0 = time.perf_counter(), time.process_time()
        for account in wl.accounts:
            name = account.name.strip()
            q = f"select * from Customer where DisplayName = {qbo_quote(name)}"
            found = api.get("/query", params={"query": q}).json().get("QueryResponse", {}).get("Customer")
            if found:
                statuses[account.name] = ("synced", "linked")
                continue
            resp = api.post("/customer", json={"DisplayName": name, "CompanyName": name})
            body = resp.json()
            if resp.status_code == 200 and "Customer" in body:
                statuses[account.name] = ("synced", "created")
            else:
                errors = (body.get("Fault") or {}).get("Error") or [{}]
                statuses[account.name] = ("error", f"fault {errors[0].get('code', resp.status_code)}")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"wall_s": wall, "cpu_s": cpu, "statuses": statuses}


# --------------------------------------------------------------------------------------------
# The engine, in a child process (fresh DB, clean CPU accounting)


def engine_sync(
    sb: Sandbox,
    realm: str,
    wl: Workload,
    *,
    batch_size: int,
    db: DB,
    paced: bool = False,
    window_seconds: float = 60.0,
    log_level: str = "INFO",
    profile: bool = False,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="acct-bench-") as tmp:
        spec = {
            "mode": "run",
            "sandbox_url": sb.url,
            "realm": realm,
            "token": sb.call("POST", "/tokens", json={"realm_id": realm}),
            "accounts": [a.name for a in wl.accounts],
            "batch_size": batch_size,
            "paced": paced,
            "window_seconds": window_seconds,
            "out": f"{tmp}/out.json",
            "profile": profile,
        }
        Path(f"{tmp}/spec.json").write_text(json.dumps(spec))
        env = {**db.env(tmp), "LOG_LEVEL": log_level}
        with open(f"{tmp}/worker.log", "w") as log:
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", f"{tmp}/spec.json"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=1800,
            )
        if proc.returncode != 0:
            tail = Path(f"{tmp}/worker.log").read_text()[-3000:]
            raise RuntimeError(f"engine worker failed ({proc.returncode}):\n{tail}")
        result: dict[str, Any] = json.loads(Path(f"{tmp}/out.json").read_text())
        result["log_lines"] = len(Path(f"{tmp}/worker.log").read_text().splitlines())
    result["statuses"] = {k: tuple(v) for k, v in result["statuses"].items()}
    return result


class DB:
    """Where the child's Django database lives: a fresh SQLite file per run (copied from one
    migrated template), or the --database-url database (migrated once; a new firm per run)."""

    def __init__(self, url: str | None, workdir: str) -> None:
        self.url = url
        self.template = f"{workdir}/template.sqlite3"
        env = self._base_env()
        if url:
            env["DATABASE_URL"] = url
        else:
            env["SQLITE_PATH"] = self.template
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
        )

    @staticmethod
    def _base_env() -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SQLITE_PATH")}
        env["DJANGO_SETTINGS_MODULE"] = "config.settings"
        env["PYTHONPATH"] = str(ROOT)
        return env

    def env(self, tmp: str) -> dict[str, str]:
        env = self._base_env()
        if self.url:
            env["DATABASE_URL"] = self.url
        else:
            shutil.copy(self.template, f"{tmp}/db.sqlite3")
            env["SQLITE_PATH"] = f"{tmp}/db.sqlite3"
        return env

    @property
    def label(self) -> str:
        if not self.url:
            return "sqlite (fresh temp file per run)"
        return self.url.split("://", 1)[0] + " (--database-url, new firm per run)"


def worker(spec_path: str) -> None:
    """Child process: set up a firm with the accounts, connect it, run the engine once."""
    spec = child_setup(spec_path)
    from django.conf import settings
    from django.utils import timezone

    from practice.clients.models import ClientAccount
    from practice.quickbooks.connection import oauth, pacing
    from practice.quickbooks.models import SyncLink
    from practice.quickbooks.sync import engine, tasks

    engine.BATCH_SIZE = int(spec["batch_size"])
    apply_pacing(settings, paced=spec["paced"], window_seconds=spec["window_seconds"])

    firm, owner = bench_firm("Bench", "bench.test")
    names: list[str] = spec["accounts"]
    ClientAccount.objects.bulk_create([ClientAccount(firm=firm, name=n) for n in names], batch_size=1000)
    ids = dict(ClientAccount.objects.filter(firm=firm).values_list("pk", "name"))
    conn, _ = oauth.connection_connect(
        firm=firm,
        user=owner,
        realm_id=spec["realm"],
        company_name="Bench company",
        token_set=oauth.TokenSet.from_response(spec["token"]),
        env=oauth.environment(),
    )
    conn.account_scope = "all"
    conn.unmatched_customer = "create"
    conn.setup_completed_at = timezone.now()
    conn.save()
    pacing._registry.clear()

    instruments = Instruments()

    profiler = None
    if spec.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
    with instruments.counting_sql():
        if profiler is not None:
            profiler.enable()
        t0, c0 = time.perf_counter(), time.process_time()
        result = tasks.run_now(conn.pk)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if profiler is not None:
            profiler.disable()
    profile_text = ""
    if profiler is not None:
        import io
        import pstats

        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("cumulative").print_stats(45)
        profile_text = buf.getvalue()
    statuses = {
        ids[link.local_id]: (link.status, link.error_kind)
        for link in SyncLink.objects.filter(connection=conn, kind="customer")
    }
    for name in names:
        statuses.setdefault(name, ("no link", ""))
    out = {
        "wall_s": wall,
        "cpu_s": cpu,
        "sql_queries": instruments.sql,
        "summary": result,
        "statuses": statuses,
        "sends": [(t - t0, op) for t, op in instruments.sends],
        "profile": profile_text,
    }
    Path(spec["out"]).write_text(json.dumps(out))


# --------------------------------------------------------------------------------------------
# Checks


def check(sb: Sandbox, realm: str, wl: Workload, statuses: dict[str, tuple[str, str]], engine: bool) -> dict:
    """Every expected customer exactly once; statuses per category (read after the counters)."""
    with api_client(sb, realm) as api:
        customers = read_all(api, "Customer")
    by_name: dict[str, list[dict[str, Any]]] = {}
    for c in customers:
        by_name.setdefault(normalize(str(c.get("DisplayName", ""))), []).append(c)
    problems: list[str] = []
    spurious = 0
    for a in wl.accounts:
        mine = by_name.get(normalize(a.name), [])
        if a.category in (MATCH, NEW):
            if len(mine) != 1:
                problems.append(f"{a.category} {a.name!r}: {len(mine)} customers")
            elif not mine[0].get("Active", True):
                problems.append(f"{a.category} {a.name!r}: customer inactive")
        elif a.category == INACTIVE:
            if len(mine) != 1 or mine[0].get("Active", True):
                problems.append(f"inactive {a.name!r}: {len(mine)} customers, or reactivated")
        elif mine:  # vendor clash, near match: no customer of that exact name should appear
            spurious += len(mine)
            problems.append(f"{a.category} {a.name!r}: {len(mine)} customers created")
    expected_total = len(wl.customers) + sum(1 for a in wl.accounts if a.category == NEW)
    by_category: dict[str, dict[str, int]] = {c: {} for c in CATEGORIES}
    wrong = 0
    for a in wl.accounts:
        status, kind = statuses.get(a.name, ("no link", ""))
        label = f"{status}:{kind}" if kind else status
        by_category[a.category][label] = by_category[a.category].get(label, 0) + 1
        if engine and (status, kind) != EXPECTED_ENGINE[a.category]:
            wrong += 1
    return {
        "customers_in_qbo": len(customers),
        "customers_expected_at_least": expected_total,  # plus the sample-us seed's own customers
        "problems": len(problems),
        "problem_examples": problems[:5],
        "spurious_customers": spurious,
        "unexpected_statuses": wrong if engine else None,
        "statuses_by_category": by_category,
        "ok": not problems and (wrong == 0 if engine else True),
    }


# --------------------------------------------------------------------------------------------
# Runs


def measure(sb: Sandbox, wl: Workload, variant: str, db: DB) -> dict[str, Any]:
    realm = sb.fresh_realm(wl)
    cpu_sb0 = sb.cpu_seconds()
    if variant == "reference":
        res = reference_sync(sb, realm, wl)
    else:
        res = engine_sync(sb, realm, wl, batch_size=30 if variant == "engine" else 1, db=db)
    counters = sb.counters(realm)
    cpu_sb = sb.cpu_seconds() - cpu_sb0
    statuses = res.pop("statuses")
    verdict = check(sb, realm, wl, statuses, engine=variant != "reference")
    synced = sum(1 for s, _ in statuses.values() if s == "synced")
    n = len(wl.accounts)
    res.pop("sends", None)
    sb.call("DELETE", f"/realms/{realm}")
    return {
        "variant": variant,
        "accounts": n,
        "synced": synced,
        "requests": counters["requests"],
        "operations": counters["operations"],
        "batch_calls": counters["batch_calls"],
        "queries": counters["queries"],
        "throttled": counters["throttled"],
        "errors": counters["errors"],
        "requests_per_synced": counters["requests"] / max(synced, 1),
        "operations_per_synced": counters["operations"] / max(synced, 1),
        "wall_s": res["wall_s"],
        "app_cpu_s": res["cpu_s"],
        "app_cpu_s_per_1000": res["cpu_s"] * 1000 / n,
        "sandbox_cpu_s": cpu_sb,
        "sql_queries": res.get("sql_queries"),
        "counters": counters,
        "check": verdict,
        "summary": res.get("summary"),
    }


def budget_run(sb: Sandbox, n: int, time_scale: float, db: DB) -> dict[str, Any]:
    """Real limits, compressed time: how much of the realm's budget the engine turns into writes."""
    wl = make_workload(n, seed=SEED + 1)
    cfg = sb.config(throttling_enabled=True, time_scale=time_scale, latency_seconds=0.0)
    minute = 60 * time_scale
    realm = sb.fresh_realm(wl)
    res = engine_sync(sb, realm, wl, batch_size=30, db=db, paced=True, window_seconds=minute)
    counters = sb.counters(realm)
    verdict = check(sb, realm, wl, res.pop("statuses"), engine=True)
    sb.call("DELETE", f"/realms/{realm}")
    sb.config(throttling_enabled=False, time_scale=1.0)
    sends = res.pop("sends")
    batches = [t for t, op in sends if op.startswith("batch")]
    # Steady state: from the first batch call to the last (the reads and planning come before).
    span = (batches[-1] - batches[0]) if len(batches) > 1 else float("nan")
    minutes = span / minute
    calls = len(batches) - 1  # calls started within the span (fence posts)
    in_span = sum(1 for t, _ in sends if batches and batches[0] <= t < batches[-1])
    writes = res["summary"]["summary"]
    useful = sum(v for k, v in writes.items() if k.startswith("customer.create"))
    per_call = useful / max(len(batches), 1)
    return {
        "accounts": n,
        "time_scale": time_scale,
        "minute_s": minute,
        "limits": {k: cfg[k] for k in ("requests_per_minute", "batch_per_minute", "batch_max_items")},
        "wall_s": res["wall_s"],
        "scaled_minutes": res["wall_s"] / minute,
        "batch_calls": len(batches),
        "creates": useful,
        "items_per_batch": per_call,
        "steady_batch_calls_per_min": calls / minutes,
        "steady_requests_per_min": in_span / minutes,
        "steady_useful_ops_per_min": calls * per_call / minutes,
        "batch_utilisation": calls / minutes / cfg["batch_per_minute"],
        "useful_ops_per_min_over_500": calls * per_call / minutes / cfg["requests_per_minute"],
        "throttled_429": counters["throttled"],
        "counters": counters,
        "check_ok": verdict["ok"],
        "check_problems": verdict["problems"],
    }


def profile_only(args: argparse.Namespace) -> None:
    wl = make_workload(args.accounts)
    with tempfile.TemporaryDirectory(prefix="acct-bench-db-") as workdir:
        db = DB(args.database_url, workdir)
        sb = Sandbox()
        try:
            sb.config(throttling_enabled=False, latency_seconds=args.latency)
            realm = sb.fresh_realm(wl)
            res = engine_sync(sb, realm, wl, batch_size=30, db=db, profile=True)
        finally:
            sb.close()
    wall, cpu = res["wall_s"], res["cpu_s"]
    print(f"engine, {args.accounts} accounts (profiled): wall {wall:.2f} s, CPU {cpu:.2f} s")
    print(f"SQL queries: {res['sql_queries']}")
    print(res["profile"])


def git_state() -> dict[str, Any]:
    """The commit measured, and whether the sync code had uncommitted changes (shared tree)."""

    def git(*cmd: str) -> str:
        done = subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    dirty = git("status", "--porcelain", "--", "practice/quickbooks", "qbo_sandbox")
    return {"commit": git("rev-parse", "--short", "HEAD"), "sync_code_dirty": dirty.splitlines()}


def med(rows: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in rows))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default: temp SQLite)")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds the sandbox adds to every API call (0: loopback)"
    )
    parser.add_argument("--budget-accounts", type=int, default=4000)
    parser.add_argument("--time-scale", type=float, default=0.5, help="budget run: a minute lasts 60×this s")
    parser.add_argument("--no-budget", action="store_true")
    parser.add_argument(
        "--profile", action="store_true", help="only: one engine run under cProfile, print the top functions"
    )
    args = parser.parse_args()
    if args.profile:
        profile_only(args)
        return

    wl = make_workload(args.accounts)
    variants = ["engine", "engine-b1", "reference"]
    started = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    budget: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="acct-bench-db-") as workdir:
        db = DB(args.database_url, workdir)
        sb = Sandbox()
        try:
            sb.config(throttling_enabled=False, latency_seconds=args.latency)
            for run in range(args.runs):
                order = variants[run % 3 :] + variants[: run % 3]  # rotate: no variant always first
                for variant in order:
                    row = measure(sb, wl, variant, db)
                    row["run"] = run
                    rows.append(row)
                    print(
                        f"run {run} {variant:<10} wall {row['wall_s']:6.2f}s  req {row['requests']:5d}  "
                        f"ops {row['operations']:5d}  cpu {row['app_cpu_s']:6.2f}s  ok={row['check']['ok']}",
                        flush=True,
                    )
            if not args.no_budget:
                budget = budget_run(sb, args.budget_accounts, args.time_scale, db)
        finally:
            sb.close()

    table = {v: [r for r in rows if r["variant"] == v] for v in variants}
    medians = {
        v: {
            k: med(rs, k)
            for k in (
                "synced",
                "requests",
                "operations",
                "batch_calls",
                "requests_per_synced",
                "operations_per_synced",
                "wall_s",
                "app_cpu_s",
                "app_cpu_s_per_1000",
                "sandbox_cpu_s",
            )
        }
        for v, rs in table.items()
    }
    ratios = {
        f"{v}/reference": {
            k: medians[v][k] / medians["reference"][k] for k in ("requests", "operations", "wall_s")
        }
        for v in ("engine", "engine-b1")
    }
    ratios["engine/engine-b1"] = {
        k: medians["engine"][k] / medians["engine-b1"][k] for k in ("requests", "operations", "wall_s")
    }
    # Per-run ratios measured side by side, then their median (less sensitive to a noisy run).
    paired = {
        f"{v}/reference": {
            k: statistics.median(
                a[k] / b[k] for a, b in zip(table[v], table["reference"], strict=True) if b[k]
            )
            for k in ("requests", "operations", "wall_s")
        }
        for v in ("engine", "engine-b1")
    }

    print()
    print(f"Account sync, {args.accounts} accounts {wl.counts()}, medians of {args.runs} runs")
    print(f"DB: {db.label}; sandbox: separate process, limits off, added latency {args.latency} s")
    print(f"git: {git_state()}")
    head = (
        f"{'variant':<10} {'synced':>6} {'requests':>8} {'req/synced':>10} {'ops':>6} {'ops/synced':>10} "
        f"{'batches':>7} {'wall s':>7} {'app CPU s':>9} {'CPU s/1k':>8} {'sbx CPU s':>9} {'correct':>7}"
    )
    print(head)
    print("-" * len(head))
    for v in variants:
        m = medians[v]
        ok = all(r["check"]["ok"] for r in table[v])
        print(
            f"{v:<10} {m['synced']:6.0f} {m['requests']:8.0f} {m['requests_per_synced']:10.4f} "
            f"{m['operations']:6.0f} {m['operations_per_synced']:10.4f} {m['batch_calls']:7.0f} "
            f"{m['wall_s']:7.2f} {m['app_cpu_s']:9.2f} {m['app_cpu_s_per_1000']:8.2f} "
            f"{m['sandbox_cpu_s']:9.2f} {'yes' if ok else 'NO':>7}"
        )
    print()
    for name, r in ratios.items():
        p = paired.get(name)
        extra = (
            f"   (paired per run: req {p['requests']:.4f}, ops {p['operations']:.4f}, wall {p['wall_s']:.3f})"
            if p
            else ""
        )
        print(
            f"{name:<20} requests {r['requests']:.4f}  ops {r['operations']:.4f}  "
            f"wall {r['wall_s']:.3f}{extra}"
        )
    print()
    for v in variants:
        cats = table[v][0]["check"]["statuses_by_category"]
        print(f"{v:<10} statuses: " + "; ".join(f"{c} {d}" for c, d in cats.items()))
        ex = table[v][0]["check"]["problem_examples"]
        if ex:
            print(f"{'':<10} QBO check: {table[v][0]['check']['problems']} problems, e.g. {ex[:2]}")
    if budget:
        print()
        print(
            f"Budget run: {budget['accounts']} accounts, limits on, time_scale {budget['time_scale']} "
            f"(a minute = {budget['minute_s']:.1f} s): {budget['batch_calls']} batch calls, "
            f"{budget['creates']} creates, wall {budget['wall_s']:.1f} s = {budget['scaled_minutes']:.2f} min"
        )
        print(
            f"  steady state: {budget['steady_batch_calls_per_min']:.1f} batch calls/min "
            f"(÷ {budget['limits']['batch_per_minute']} = {budget['batch_utilisation']:.3f}), "
            f"{budget['steady_useful_ops_per_min']:.0f} useful ops/min "
            f"(÷ {budget['limits']['requests_per_minute']} = {budget['useful_ops_per_min_over_500']:.2f}), "
            f"429s: {budget['throttled_429']}, correct: {budget['check_ok']}"
        )

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"account-sync-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(
        json.dumps(
            {
                "benchmark": "account_sync",
                "started": started.isoformat(),
                "args": vars(args),
                "machine": machine(),
                "git": git_state(),
                "database": db.label,
                "sandbox": "qbo-sandbox serve, separate process, loopback",
                "workload": wl.counts(),
                "workload_seed": SEED,
                "medians": medians,
                "ratios_of_medians": ratios,
                "ratios_paired_median": paired,
                "runs": rows,
                "budget": budget,
                "accounts_sample": [asdict(a) for a in wl.accounts[:20]],
            },
            indent=2,
        )
    )
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

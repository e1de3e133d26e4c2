"""Soak: a billing backfill driven by a real worker that is SIGKILLed at random points while the
sandbox injects its fault matrix; then every record is checked against QBO read back over HTTP.

    .venv/bin/python bench/soak.py                      # make soak: 2,000 accounts, 2,000 invoices, 20 kills
    .venv/bin/python bench/soak.py --accounts 60 --invoices 60 --payments 30 --refunds 3 \\
        --kills 3 --faults-per-kind 1 --latency 0.05 --lease-seconds 6 --token-ttl 20 --time-scale 0.2 \\
        --max-wait 4 --batches-per-life 1 --settle-timeout 150              # the test's short form
    .venv/bin/python bench/soak.py --database-url postgres://postgres@127.0.0.1:5432/soak --fresh-database

What it does (bench/README.md "soak.py"; figures in docs/benchmarks.md "Soak"):

1. Starts `qbo-sandbox serve` (as fault_run.py does) with QBO's limits on, `--time-scale`
   compressing its minute, `--latency` added to every API call, access tokens living
   `--token-ttl` seconds and a superseded refresh token accepted for `--refresh-grace` seconds
   (every refresh rotates the refresh token, as Intuit's does). A fresh `sample-us` realm holds
   the account workload's customers and vendors (half the accounts match, vendor clashes, near
   matches, inactive matches, the rest new) with custom transaction numbers on.
2. A new firm in a fresh SQLite file (or `--database-url`) gets the workload of
   `billing_sync_bench.py` with `--accounts`, `--invoices`, `--payments` (single invoices paid
   in full or in part, two invoices plus credit, unapplied retainers) and `--refunds` refunded
   out of the retainers; connected through the OAuth app registered for the soak and set up
   (all accounts, create unmatched, manual payments synced), which enqueues the first run.
3. A real worker (`manage.py run_worker`, settings `bench/soak_settings.py`) is SIGKILLed
   `--kills` times and restarted (`Run` of bench/_harness.py, shared with fault_run.py):
   even-numbered kills land just after a batch call reached QBO, odd ones at a random moment.
   Meanwhile each worker life gets its share of `--faults-per-kind` faults of each kind (429,
   5xx, timeout, response dropped after the write committed, a batch item's 500 or missing
   answer with and without the write, an expired access token), queued on the sandbox's
   control plane; at the middle kill the realm's authorisation is revoked from QBO's side: the
   script waits for the connection to show "Needs reconnect", then reconnects it as the owner
   does (Connect, the sandbox's consent page, the callback) through the app's views.
4. After the last kill the worker runs undisturbed until every record has its final status
   (or `--settle-timeout`), then stops.
5. Checks, against QBO read back over HTTP (faults cleared first): customers as fault_run.py
   (each exactly once, none for vendor clashes and near matches, the realm holds exactly
   before + new); each service one Item; each invoice of a syncing account once by DocNumber
   under its customer with the app's total and balance, each payment once by PaymentRefNum with
   its amount, each refund once by its PrivateNote marker with its amount, none of the records
   of accounts in Error; every syncing customer's Balance equal to the app's (open invoices less
   unapplied credit); every link's status the one the product rules give (Synced, Error with
   the workload's reason, Not synced waiting for its account), none Syncing; the realm's
   invoice, payment, refund receipt and item totals = before + the app's; the connection
   Connected; each fault kind actually injected; the revocation seen and reconnected.

Prints a table, writes bench/results/soak-<UTC timestamp>.json (and `--json PATH`). Exit status
0 only when every check holds.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import signal
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# bench/ is a folder of scripts, not a package: the neighbours are imported from the path above.
from _harness import Run, bench_firm, choose_billing_setup, killable_worker, migrate, setup_django
from account_sync_bench import (
    EXPECTED_ENGINE,
    NEW,
    RESULTS,
    ROOT,
    Sandbox,
    api_client,
    git_state,
    normalize,
    read_all,
)
from account_sync_bench import check as check_customers
from billing_sync_bench import (
    CENT,
    SYNCING,
    Billing,
    fresh_realm,
    load_billing,
    make_billing,
    peek_all,
    pick_accounts,
)
from billing_sync_bench import check as check_billing

SOAK_SEED = 20261201
CLIENT_ID = "practice-soak"
CLIENT_SECRET = "practice-soak-secret"
# The Django test client's host: the reconnect goes through the app's views in this process.
REDIRECT_URI = "http://testserver/settings/integrations/quickbooks/callback/"
REFUND = Decimal("100.00")

# The fault matrix: label -> control-plane spec. Whole-request faults hit the next matching
# request; item faults the first item of the next batch. "drop" commits, then cuts the
# connection without an answer (aimed at batch calls: the writes).
FAULTS: dict[str, dict[str, Any]] = {
    "429": {"kind": "429"},
    "5xx": {"kind": "503"},  # the kind rotates over 500, 502, 503, 500_json (a SystemFault body)
    "timeout": {"kind": "timeout"},
    "dropped after commit": {"kind": "drop", "operation": "batch"},
    "item 500, committed": {"kind": "item_500", "item": 1, "committed": True},
    "item 500, not committed": {"kind": "item_500", "item": 1, "committed": False},
    "item unanswered, committed": {"kind": "item_unanswered", "item": 1, "committed": True},
    "item unanswered, not committed": {"kind": "item_unanswered", "item": 1, "committed": False},
    "access token expired (401)": {"kind": "401"},
}
FIVE_XX = ("500", "502", "503", "500_json")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--accounts", type=int, default=2000)
    p.add_argument("--invoices", type=int, default=2000)
    p.add_argument("--payments", type=int, default=None, help="default: half the invoices")
    p.add_argument("--refunds", type=int, default=20, help="refunds out of unapplied retainers")
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--faults-per-kind", type=int, default=3)
    p.add_argument("--seed", type=int, default=SOAK_SEED)
    p.add_argument("--database-url", default=None, help="PostgreSQL; default a temp SQLite file")
    p.add_argument(
        "--fresh-database", action="store_true", help="drop and create --database-url's database first"
    )
    p.add_argument("--latency", type=float, default=0.2, help="seconds the sandbox adds to every API call")
    p.add_argument("--lease-seconds", type=int, default=15, help="QBO_LEASE_SECONDS of the worker")
    p.add_argument(
        "--time-scale", type=float, default=0.5, help="sandbox minute = 60 s x this; the app's clocks follow"
    )
    p.add_argument("--token-ttl", type=int, default=60, help="access token lifetime, seconds")
    p.add_argument("--refresh-grace", type=int, default=60, help="a superseded refresh token works this long")
    p.add_argument("--http-timeout", type=float, default=8.0, help="the worker's QBO_HTTP_TIMEOUT_SECONDS")
    p.add_argument("--max-wait", type=float, default=20.0, help="random kills land 0.5 s to this after start")
    p.add_argument(
        "--batches-per-life",
        type=int,
        default=6,
        help="batch-aimed kills land on the worker's 1st to this-th batch call of its life",
    )
    p.add_argument("--settle-timeout", type=float, default=900, help="seconds to wait after the last kill")
    p.add_argument("--json", default=None, help="also write the result here")
    p.add_argument("--keep", action="store_true", help="keep the temp folder (database, worker logs)")
    args = p.parse_args(argv)
    if args.payments is None:
        args.payments = args.invoices // 2
    if args.kills < 2:
        p.error("--kills must be 2 or more (the revocation comes between two kills)")
    return args


def fresh_postgres(url: str) -> None:
    """Drop and create the database named in `url` (its server's `postgres` database is used)."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise SystemExit(f"--fresh-database: unexpected database name {name!r}")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        db.execute(f'CREATE DATABASE "{name}"')


class Faults:
    """The fault matrix, queued a share at a time on the sandbox's control plane."""

    def __init__(self, run: Run, realm: str, per_kind: int, lives: int) -> None:
        self.run, self.realm = run, realm
        plan = [label for _ in range(per_kind) for label in FAULTS]
        # Spread over the first two thirds of the worker lives, so the last ones are consumed
        # while the backfill still has writes to make.
        spread = max(1, (2 * lives) // 3)
        self.by_life: dict[int, list[str]] = {}
        for n, label in enumerate(plan):
            self.by_life.setdefault(n % spread, []).append(label)
        self.planned = {label: per_kind for label in FAULTS}
        self.rules: dict[str, str] = {}  # rule id -> label
        self.n_5xx = 0

    def queue(self, life: int) -> list[str]:
        labels = self.by_life.get(life, [])
        self.queue_labels(labels)
        return labels

    def queue_labels(self, labels: list[str]) -> None:
        for label in labels:
            spec = dict(FAULTS[label])
            if label == "5xx":
                spec["kind"] = FIVE_XX[self.n_5xx % len(FIVE_XX)]
                self.n_5xx += 1
            if label == "timeout":
                # Longer than the worker's HTTP timeout: the client gives up, as on a hung QBO.
                spec["seconds"] = self.run.args.http_timeout + 2
            rule = self.run.sb.call("POST", f"/realms/{self.realm}/faults", json=spec)
            self.rules[str(rule["id"])] = label

    def park(self) -> list[str]:
        """Take the queued, not yet met faults off the sandbox (their labels), so that they hit
        the worker's requests and not the reconnect's, made while the worker waits for it."""
        left = self.run.sb.call("GET", f"/realms/{self.realm}/faults")["faults"]
        self.run.sb.call("DELETE", f"/realms/{self.realm}/faults")
        parked = []
        for rule in left:
            label = self.rules.pop(str(rule["id"]), None)
            if label is not None:
                parked.append(label)
        return parked

    def restore(self, labels: list[str]) -> None:
        self.queue_labels(labels)

    def consumed(self) -> dict[str, int]:
        """Per label: how many of the queued faults a request actually met."""
        left = self.run.sb.call("GET", f"/realms/{self.realm}/faults")["faults"]
        remaining = {str(r["id"]): int(r["count"]) for r in left}
        out = dict.fromkeys(FAULTS, 0)
        for rule_id, label in self.rules.items():
            out[label] += 1 - remaining.get(rule_id, 0)
        return out


def reconnect_as_owner(owner: Any, realm: str) -> str:
    """What the owner does on the settings page: Connect, approve on QuickBooks' consent page,
    come back to the callback. Returns the status and the page it ended on."""
    from django.test import Client
    from django.urls import reverse

    person = Client()
    person.force_login(owner)
    start = person.post(reverse("quickbooks:connect"))
    if start.status_code != 302:
        raise RuntimeError(f"Connect answered {start.status_code}")
    with httpx.Client(timeout=30) as browser:
        page = browser.get(start["Location"])
        page.raise_for_status()
        fields = {
            name: html.unescape(value)
            for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text)
        }
        fields.update(decision="approve", realm_id=realm)
        answer = browser.post(str(page.url.copy_with(query=None)), data=fields)
    if answer.status_code != 302:
        raise RuntimeError(f"consent page answered {answer.status_code}: {answer.text[:200]}")
    back = urlsplit(answer.headers["location"])
    landed = person.get(f"{back.path}?{back.query}", follow=True)
    return f"{landed.status_code} {landed.redirect_chain[-1][0] if landed.redirect_chain else back.path}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A SIGTERM (a test's timeout, Ctrl-C from make) still stops the worker and the sandbox.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    b = make_billing(
        1.0,
        seed=args.seed,
        counts={"accounts": args.accounts, "invoices": args.invoices, "payments": args.payments},
    )
    # The soak makes its refunds itself, through the app's service (`--refunds`, below): the
    # benchmark workload's own refunds are not loaded, so they must not be expected in QBO.
    b.refunds = []
    with killable_worker(args, Sandbox(), prefix="soak-") as run:
        return _main(args, b, run)


def _main(args: argparse.Namespace, b: Billing, run: Run) -> int:
    sb = run.sb
    sb.config(
        throttling_enabled=True,
        time_scale=args.time_scale,
        latency_seconds=args.latency,
        access_token_ttl=args.token_ttl,
        refresh_token_grace_seconds=args.refresh_grace,
    )
    sb.call(
        "POST",
        "/apps",
        json={
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [REDIRECT_URI],
            "name": "Practice (soak)",
        },
    )
    realm = fresh_realm(sb, b)
    accts = pick_accounts(sb, realm)
    with api_client(sb, realm) as api:
        customers_before = read_all(api, "Customer")
    balance_before = {
        normalize(str(c.get("DisplayName", ""))): Decimal(str(c.get("Balance", 0))) for c in customers_before
    }
    # What the realm holds of each written entity before the backfill (sample-us has its own
    # invoices, payments and items): afterwards it must hold exactly these plus the app's.
    TOTALS = ("Invoice", "Payment", "RefundReceipt", "Item")
    where = {"Item": " where Active in (true, false)"}
    before = {e: len(peek_all(sb, realm, e, where.get(e, ""))) for e in TOTALS}
    item_names_before = {str(i.get("Name", "")) for i in peek_all(sb, realm, "Item", where["Item"])}
    sb.call("POST", f"/realms/{realm}/counters/reset")

    scale = args.time_scale
    run.env.update(
        {
            "QBO_CLIENT_ID": CLIENT_ID,
            "QBO_CLIENT_SECRET": CLIENT_SECRET,
            "QBO_REDIRECT_URI": REDIRECT_URI,
            "QBO_HTTP_TIMEOUT_SECONDS": str(args.http_timeout),
            "QBO_RATE_WINDOW_SECONDS": str(60 * scale),
            "QBO_BACKOFF_SCALE": str(scale),
            "QBO_RETRY_BASE_SECONDS": str(15 * scale),
            # Intuit: 3,600 s tokens refreshed 300 s early; the same proportion for short tokens.
            "QBO_REFRESH_MARGIN_SECONDS": str(args.token_ttl / 12),
            "LOG_LEVEL": "WARNING",
        }
    )
    if args.database_url and args.fresh_database:
        fresh_postgres(args.database_url)
    t_setup = time.monotonic()
    migrate(run.env)
    setup_django(run.env)

    from django.conf import settings
    from django.utils import timezone
    from django_tasks_db.models import DBTaskResult

    from practice.billing import services as billing
    from practice.billing.models import Payment
    from practice.quickbooks.connection import oauth, tokens
    from practice.quickbooks.models import Connection, ConnectionStatus, SyncAttempt, SyncLink
    from practice.quickbooks.statuses import SyncStatus

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    firm, owner = bench_firm("Soak", "soak.test")
    spec = {
        "accounts": [a.name for a in b.accounts.accounts],
        "services": b.services,
        "invoices": b.invoices,
        "payments": b.payments,
    }
    ids = load_billing(firm, spec)
    # Refunds out of unapplied retainers (500.00, no allocation), spread over the workload.
    retainers = [k for k, p in enumerate(b.payments) if not p["allocations"]]
    step = max(1, len(retainers) // max(1, args.refunds))
    refunded = retainers[::step][: args.refunds]
    refund_of: dict[int, int] = {}  # refund pk -> payment index
    for k in refunded:
        payment = Payment.objects.get(pk=ids["payments"][k])
        made = billing.refund_record(
            payment=payment, date=payment.date, amount=REFUND, reason=f"Soak refund {k + 1}"
        )
        refund_of[made.pk] = k

    conn, _ = oauth.connection_connect(
        firm=firm,
        user=owner,
        realm_id=realm,
        company_name="Soak company",
        token_set=oauth.TokenSet.from_response(
            sb.call("POST", "/tokens", json={"realm_id": realm, "client_id": CLIENT_ID})
        ),
        env=oauth.environment(),
    )
    choose_billing_setup(conn, accts)
    conn.setup_completed_at = timezone.now()
    conn.save()  # what saving the setup page does: enqueues the first sync_realm on commit
    setup_s = time.monotonic() - t_setup
    task_rows = DBTaskResult.objects.filter(task_path="practice.quickbooks.sync.tasks.sync_realm")
    if not task_rows.exists():
        print("saving the setup enqueued no sync_realm task", file=sys.stderr)
        return 2

    # What each record's link must end as (product rules): (kind, local id) -> (status, error kind).
    syncing_accounts = {i for i, a in enumerate(b.accounts.accounts) if a.category in SYNCING}

    def follows(account: int) -> tuple[str, str]:
        return (SyncStatus.SYNCED, "") if account in syncing_accounts else (SyncStatus.NOT_SYNCED, "")

    expected: dict[tuple[str, int], tuple[str, str]] = {}
    for i, a in enumerate(b.accounts.accounts):
        expected["customer", ids["accounts"][i]] = EXPECTED_ENGINE[a.category]
    for pk in ids["services"]:
        expected["service", pk] = (SyncStatus.SYNCED, "")
    for i, inv in enumerate(b.invoices):
        expected["invoice", ids["invoices"][i]] = follows(inv["account"])
    for k, p in enumerate(b.payments):
        expected["payment", ids["payments"][k]] = follows(p["account"])
    for pk, k in refund_of.items():
        expected["refund", pk] = follows(b.payments[k]["account"])

    links = SyncLink.objects.filter(connection=conn)

    def actual() -> dict[tuple[str, int], tuple[str, str]]:
        return {
            (kind, local_id): (status, error_kind)
            for kind, local_id, status, error_kind in links.values_list(
                "kind", "local_id", "status", "error_kind"
            )
        }

    def in_flight() -> int:
        return links.exclude(batch_request_id="").count()

    def counts(now: dict[tuple[str, int], tuple[str, str]]) -> dict[str, int]:
        out: dict[str, int] = {}
        for key in expected:
            status = now.get(key, ("no link", ""))[0]
            out[status] = out.get(status, 0) + 1
        return out

    def unfinished(now: dict[tuple[str, int], tuple[str, str]]) -> int:
        """Records that should end Synced or Error and have not got there yet."""
        n = 0
        for key, (want, _) in expected.items():
            got = now.get(key, (SyncStatus.NOT_SYNCED, ""))[0]
            if want != SyncStatus.NOT_SYNCED and got in (SyncStatus.NOT_SYNCED, SyncStatus.SYNCING):
                n += 1
        return n

    refresh_tokens_seen: set[str] = set()
    statuses_seen: set[str] = set()

    def watch_connection() -> str:
        c = Connection.objects.get(pk=conn.pk)
        if c.refresh_token_enc:
            refresh_tokens_seen.add(tokens.decrypt(c.refresh_token_enc))
        statuses_seen.add(c.status)
        return str(c.status)

    watch_connection()
    faults = Faults(run, realm, args.faults_per_kind, args.kills)
    revoke_life = args.kills // 2
    revocation: dict[str, Any] = {"injected": False}
    t0 = time.monotonic()
    n_records = len(expected)
    print(
        f"soak: {n_records} records ({len(b.accounts.accounts)} accounts, {len(b.services)} services, "
        f"{len(b.invoices)} invoices, {len(b.payments)} payments, {len(refund_of)} refunds), "
        f"realm {realm}, {len(customers_before)} customers before; set up in {setup_s:.0f} s; "
        f"workdir {run.workdir}"
    )
    for k in range(args.kills):
        run.start_worker()
        if not run.wait_for_heartbeat():
            return 2
        if k != revoke_life:
            queued = faults.queue(k)
        else:
            # QBO's side drops the app (the user disconnected it in QuickBooks): the next API call
            # gets 401 and the refresh token is refused. The faults still queued wait until the
            # owner has reconnected (they would otherwise meet the reconnect's own requests).
            parked = faults.park()
            sb.call("POST", f"/realms/{realm}/faults", json={"kind": "revoke"})
            revocation.update(injected=True, at_s=round(time.monotonic() - t0, 1))
            deadline = time.monotonic() + 300
            while watch_connection() != ConnectionStatus.NEEDS_RECONNECT and time.monotonic() < deadline:
                time.sleep(0.2)
            revocation["needs_reconnect_seen"] = watch_connection() == ConnectionStatus.NEEDS_RECONNECT
            revocation["noticed_after_s"] = round(time.monotonic() - t0 - revocation["at_s"], 1)
            if revocation["needs_reconnect_seen"]:
                time.sleep(run.rng.uniform(0.5, 2.0))  # the worker keeps running while nobody looks
                revocation["message"] = reconnect_as_owner(owner, realm)
                revocation["reconnected"] = watch_connection() == ConnectionStatus.CONNECTED
                print(
                    f"revoked at {revocation['at_s']} s, Needs reconnect after "
                    f"{revocation['noticed_after_s']} s; reconnected: {revocation['reconnected']}"
                )
            else:
                sb.call("DELETE", f"/realms/{realm}/faults")
                print("revocation not noticed within 300 s", file=sys.stderr)
            faults.restore(parked)
            queued = faults.queue(k)
        moment = run.kill_at_random_point(
            realm,
            aim_at_batch=k % 2 == 0,
            max_wait=args.max_wait,
            # Not always the life's first batch: kills then land on invoice and payment batches
            # too, not only on the customers that come first.
            batches=run.rng.randint(1, args.batches_per_life),
        )
        flying = in_flight()  # read after the kill: what the dead worker left stored
        now = actual()
        watch_connection()
        entry = {
            "kill": k + 1,
            "at_s": round(time.monotonic() - t0, 1),
            "aimed_at": moment,
            "links_in_flight": flying,
            "faults_queued": queued,
            "statuses": counts(now),
        }
        run.kill_log.append(entry)
        print(
            f"kill {k + 1:2d} at {entry['at_s']:6.1f} s ({moment}): {flying} in flight, "
            + ", ".join(f"{s} {n}" for s, n in sorted(counts(now).items()))
            + (f"; queued {len(queued)} faults" if queued else "")
        )

    run.start_worker()
    settle_start = time.monotonic()
    while True:
        now = actual()
        watch_connection()
        syncing = sum(1 for s, _ in now.values() if s == SyncStatus.SYNCING)
        if unfinished(now) == 0 and syncing == 0 and in_flight() == 0:
            break
        if time.monotonic() - settle_start > args.settle_timeout:
            break
        time.sleep(1)
    settle_s = time.monotonic() - settle_start
    run.stop_worker()
    wall = time.monotonic() - t0

    consumed = faults.consumed()
    sb.call("DELETE", f"/realms/{realm}/faults")  # nothing may disturb the read-back
    counters = sb.counters(realm)
    final = actual()
    final_status = watch_connection()

    # -- checks against QBO ---------------------------------------------------------------------
    names = {ids["accounts"][i]: a.name for i, a in enumerate(b.accounts.accounts)}
    by_name = {names[pk]: final.get(("customer", pk), ("no link", "")) for pk in names}
    customers = check_customers(sb, realm, b.accounts, by_name, engine=True)
    with api_client(sb, realm) as api:
        customers_after = read_all(api, "Customer")
    n_new = sum(1 for a in b.accounts.accounts if a.category == NEW)
    billing_check = check_billing(sb, realm, b)
    problems: dict[str, int] = dict(billing_check["problems"])
    examples: list[str] = list(billing_check["problem_examples"]) + list(customers["problem_examples"])

    def problem(kind: str, text: str) -> None:
        problems[kind] = problems.get(kind, 0) + 1
        if len(examples) < 12:
            examples.append(text)

    items = peek_all(sb, realm, "Item", " where Active in (true, false)")
    item_names: dict[str, int] = {}
    for it in items:
        item_names[str(it.get("Name", ""))] = item_names.get(str(it.get("Name", "")), 0) + 1
    for s in b.services:
        if item_names.get(s["name"], 0) != 1:
            problem("service not exactly one Item", f"{s['name']}: {item_names.get(s['name'], 0)}")
    receipts: dict[int, list[dict[str, Any]]] = {}
    for r in peek_all(sb, realm, "RefundReceipt"):
        found = re.match(r"Practice refund #(\d+):", str(r.get("PrivateNote", "")))
        if found:
            receipts.setdefault(int(found.group(1)), []).append(r)
    refunds_correct = 0
    for pk, k in refund_of.items():
        got = receipts.get(pk, [])
        if b.payments[k]["account"] not in syncing_accounts:
            if got:
                problem("refund of a non-syncing account in QBO", f"refund {pk}")
            continue
        if len(got) != 1:
            problem("refund not exactly once", f"refund {pk}: {len(got)}")
        elif Decimal(str(got[0].get("TotalAmt"))).quantize(CENT) != REFUND:
            problem("refund amount differs", f"refund {pk}: {got[0].get('TotalAmt')}")
        else:
            refunds_correct += 1
    # Customer balances: A/R of the app's records (open invoices less unapplied payment credit;
    # a RefundReceipt is not A/R), on top of what the customer owed before the backfill.
    balances = b.balances()
    owed: dict[int, Decimal] = {i: Decimal("0.00") for i in syncing_accounts}
    for i, inv in enumerate(b.invoices):
        if inv["account"] in owed:
            owed[inv["account"]] += balances[i]
    for p in b.payments:
        if p["account"] in owed:
            applied = sum((Decimal(a) for _, a in p["allocations"]), Decimal("0.00"))
            owed[p["account"]] -= Decimal(p["amount"]) - applied
    qbo_balance = {
        normalize(str(c.get("DisplayName", ""))): Decimal(str(c.get("Balance", 0))) for c in customers_after
    }
    balances_correct = 0
    for i, want in owed.items():
        key = normalize(b.accounts.accounts[i].name)
        start = balance_before.get(key, Decimal("0.00"))
        got_balance = qbo_balance.get(key)
        if got_balance is None or got_balance.quantize(CENT) != (start + want).quantize(CENT):
            problem(
                "customer balance differs", f"{b.accounts.accounts[i].name}: {got_balance} vs {start + want}"
            )
        else:
            balances_correct += 1
    # Realm totals: nothing written twice under another number or note, nothing extra.
    n_refunds = sum(1 for k in refund_of.values() if b.payments[k]["account"] in syncing_accounts)
    new_items = {s["name"] for s in b.services} | ({"Refunds"} if n_refunds else set())
    totals_expected = {
        "Invoice": before["Invoice"] + billing_check["invoices_expected"],
        "Payment": before["Payment"] + billing_check["payments_expected"],
        "RefundReceipt": before["RefundReceipt"] + n_refunds,
        "Item": before["Item"] + len(new_items - item_names_before),
    }
    totals_after = {e: len(peek_all(sb, realm, e, where.get(e, ""))) for e in TOTALS}
    wrong_status: dict[str, int] = {}
    for record, should in expected.items():
        has = final.get(record, (SyncStatus.NOT_SYNCED, ""))
        if has != should:
            label = f"{record[0]} {':'.join(filter(None, should))} -> {':'.join(filter(None, has))}"
            wrong_status[label] = wrong_status.get(label, 0) + 1
            if len(examples) < 12:
                examples.append(f"{record[0]} {record[1]}: {has} instead of {should}")
    stuck_syncing = sum(1 for s, _ in final.values() if s == SyncStatus.SYNCING)
    by_kind: dict[str, dict[str, int]] = {}
    for (kind, _), (status, error_kind) in final.items():
        label = f"{status}:{error_kind}" if error_kind else status
        by_kind.setdefault(kind, {})
        by_kind[kind][label] = by_kind[kind].get(label, 0) + 1
    tasks = {s: task_rows.filter(status=s).count() for s in ("SUCCESSFUL", "FAILED", "READY", "RUNNING")}

    checks = {
        "kills": len(run.kill_log) == args.kills,
        "customers exactly once, none for clashes": customers["problems"] == 0,
        "realm holds before + new customers": len(customers_after) == len(customers_before) + n_new,
        "realm holds before + the app's invoices, payments, refunds, items": totals_after == totals_expected,
        "invoices, payments once with totals and balances": billing_check["ok"],
        "services and refunds once": not any(k.startswith(("service", "refund")) for k in problems),
        "customer balances equal the app's": balances_correct == len(owed),
        "every status right": not wrong_status,
        "nothing stuck Syncing": stuck_syncing == 0,
        "connection Connected at the end": final_status == ConnectionStatus.CONNECTED,
        "revocation: Needs reconnect, then reconnected": bool(
            revocation.get("needs_reconnect_seen") and revocation.get("reconnected")
        ),
        "refresh token rotated": len(refresh_tokens_seen) >= 2,
        "every fault kind injected": all(n >= 1 for n in consumed.values()),
    }
    ok = all(checks.values())
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": git_state(),
        "database": "postgresql" if args.database_url else "sqlite",
        "records": n_records,
        "workload": {**b.counts(), "refunds": len(refund_of)},
        "kills": len(run.kill_log),
        "kills_with_a_batch_in_flight": sum(1 for e in run.kill_log if e["links_in_flight"]),
        "kills_just_after_a_batch_call": sum(1 for e in run.kill_log if e["aimed_at"] == "batch sent"),
        "worker_starts": run.starts,
        "faults_planned": faults.planned,
        "faults_injected": consumed,
        "faults_injected_total_sandbox": counters.get("faults_injected"),
        "revocation": revocation,
        "refresh_tokens_seen": len(refresh_tokens_seen),
        "connection_statuses_seen": sorted(statuses_seen),
        "setup_s": round(setup_s, 1),
        "wall_s": round(wall, 1),
        "settle_after_last_kill_s": round(settle_s, 1),
        "customers_before": len(customers_before),
        "customers_after": len(customers_after),
        "customers_expected": len(customers_before) + n_new,
        "invoices": {
            k: billing_check[k] for k in ("invoices_expected", "invoices_correct", "invoices_in_qbo")
        },
        "payments": {
            k: billing_check[k] for k in ("payments_expected", "payments_correct", "payments_in_qbo")
        },
        "refunds": {"expected": n_refunds, "correct": refunds_correct},
        "customer_balances": {"expected": len(owed), "correct": balances_correct},
        "realm_totals": {"before": before, "expected": totals_expected, "after": totals_after},
        "statuses_by_kind": by_kind,
        "customer_statuses_by_category": customers["statuses_by_category"],
        "wrong_status": wrong_status,
        "stuck_syncing": stuck_syncing,
        "check_problems": problems,
        "problem_examples": examples,
        "history_rows": SyncAttempt.objects.filter(link__connection=conn).count(),
        "sync_tasks": tasks,
        "qbo_counters": counters,
        "settings": {
            k: getattr(args, k)
            for k in (
                "seed",
                "latency",
                "lease_seconds",
                "time_scale",
                "token_ttl",
                "refresh_grace",
                "http_timeout",
                "faults_per_kind",
            )
        },
        "checks": checks,
        "ok": ok,
        "kill_log": run.kill_log,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"soak-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    text = json.dumps(result, indent=2, default=str)
    out.write_text(text)
    if args.json:
        Path(args.json).write_text(text)

    print()
    print(
        f"soak: {n_records} records, {result['kills']} SIGKILLs ({result['kills_with_a_batch_in_flight']} "
        f"with a batch in flight), {run.starts} worker starts; wall {wall:.0f} s, settled {settle_s:.0f} s "
        f"after the last kill"
    )
    print(f"  {'fault':34s} planned  injected")
    for label in FAULTS:
        print(f"  {label:34s} {faults.planned[label]:7d}  {consumed[label]:8d}")
    print(
        f"  {'revocation':34s} {1:7d}  {int(revocation.get('injected', False)):8d}"
        f"   (reconnected: {bool(revocation.get('reconnected'))})"
    )
    print(
        f"  access tokens live {args.token_ttl} s; refresh tokens seen in the app: {len(refresh_tokens_seen)}"
    )
    print(f"  {'record kind':10s} {'expected in QBO':>16s} {'correct':>8s}")
    print(f"  {'customers':10s} {len(customers_before) + n_new:16d} {len(customers_after):8d}  (realm total)")
    print(
        f"  {'invoices':10s} {billing_check['invoices_expected']:16d} {billing_check['invoices_correct']:8d}"
    )
    print(
        f"  {'payments':10s} {billing_check['payments_expected']:16d} {billing_check['payments_correct']:8d}"
    )
    print(f"  {'refunds':10s} {result['refunds']['expected']:16d} {refunds_correct:8d}")
    print(f"  {'balances':10s} {len(owed):16d} {balances_correct:8d}")
    for entity in TOTALS:
        print(
            f"  realm {entity:13s} before {before[entity]:5d}, after {totals_after[entity]:5d}, "
            f"expected {totals_expected[entity]:5d}"
        )
    for kind, kind_counts in sorted(by_kind.items()):
        print(f"  status {kind:9s} {kind_counts}")
    print(
        f"  QBO: {counters['requests']} requests, {counters['batch_calls']} batch calls, "
        f"{counters.get('replays', 0)} requestid replays, {counters['throttled']} throttled by limits; "
        f"sync tasks {tasks}"
    )
    for name, held in checks.items():
        print(f"  [{'ok' if held else 'FAILED'}] {name}")
    if examples:
        print("  examples:", *examples, sep="\n    ")
    if wrong_status:
        print("  wrong statuses:", wrong_status)
    print(f"  {'OK' if ok else 'FAILED'}; figures in {out.relative_to(ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

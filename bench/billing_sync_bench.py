"""Billing backfill into one QBO realm: the engine against a python-quickbooks reference integration.

    .venv/bin/python bench/billing_sync_bench.py [--scale 1.0] [--runs 1] [--database-url URL]
        [--latency 0] [--budget-scale 0.25 --time-scale 0.5 | --no-budget]

The reference integration needs `python-quickbooks` (requirements-bench.txt):
    .venv/bin/pip install -r requirements-bench.txt

What it does (docs/benchmarks.md "Billing backfill" has the figures and the caveats):

1. Generates the standard workload of shared/design/benchmarks.md with a fixed seed, times
   `--scale`: 2,000 accounts (the account bench's mix: half match QBO customers, vendor clashes,
   near matches, inactive matches, new), 20 services, 10,000 issued invoices of 1-5 lines,
   8,000 payments (paid in full, partial, paying two invoices, unapplied retainers), 200 refunds
   out of retainers' unapplied credit.
2. Starts `qbo-sandbox serve` in its own process (limits off for the comparison) and, for each
   variant, a fresh realm holding the workload's existing customers and vendors:
   - `engine`: a child process with a fresh database (SQLite file, or a new firm in
     `--database-url`) holding the firm's accounts, services, invoices and payments, connected
     and set up ("all accounts", create unmatched, no sync start date), runs
     `practice.quickbooks.sync.tasks.run_now` until the engine has nothing more to do;
   - `reference`: python-quickbooks the usual way, one request per record: Item by Name then
     create, Customer by DisplayName then create, Invoice by DocNumber then create, Payment
     create with lines linking the invoices it pays, RefundReceipt create per refund.
3. Counters from the sandbox's control plane (requests, metered operations, batch calls,
   429s), wall time, app CPU (`time.process_time()` of the process that runs the variant,
   around the sync only); then the realm is read back through the control plane (not metered):
   every invoice of an account that should sync is in QBO exactly once (by DocNumber), under
   its account's customer, with the app's total and open balance; every payment exactly once
   (by PaymentRefNum) with the app's amount; every refund exactly once (its reference in the
   RefundReceipt's PrivateNote) under its account's customer, for its amount.
4. Optionally a budget run: the engine alone, the sandbox's real limits on, time compressed by
   `--time-scale`, the client's pacing window compressed the same way; 429s and utilisation,
   per minute from the sandbox's request log; `--batches-per-window` tries pacer settings.

Writes bench/results/billing-sync-<UTC timestamp>.json and prints a table.
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
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Instruments, apply_pacing, bench_firm, child_setup, choose_billing_setup, machine
from account_sync_bench import (  # bench/ is not a package: reuse its helpers, don't copy them
    DB,
    MATCH,
    MINOR,
    NEW,
    RESULTS,
    ROOT,
    SEED,
    Sandbox,
    Workload,
    git_state,
    make_workload,
    normalize,
    qbo_quote,
)

BILLING_SEED = SEED + 10
STANDARD = {"accounts": 2000, "services": 20, "invoices": 10000, "payments": 8000, "refunds": 200}
REFUND_AMOUNT = Decimal("150.00")  # out of a 500.00 unapplied retainer: always within its credit
# Accounts whose customer the engine links or creates: their invoices and payments must reach QBO.
SYNCING = (MATCH, NEW)
CENT = Decimal("0.01")
_SERVICE_NAMES = [
    "Bookkeeping",
    "Tax preparation",
    "Payroll",
    "Advisory",
    "Audit support",
    "Sales tax filing",
    "Year-end close",
    "Budgeting",
    "Cash-flow forecast",
    "Entity formation",
    "Estate planning",
    "Grant reporting",
    "Inventory count",
    "Nonprofit filing",
    "Quarterly estimates",
    "Software setup",
    "Training session",
    "1099 filing",
    "Amended return",
    "Notice response",
]


# --------------------------------------------------------------------------------------------
# Workload


@dataclass
class Billing:
    accounts: Workload
    services: list[dict[str, Any]]  # {name, rate}
    invoices: list[
        dict[str, Any]
    ]  # {number, account, issue_date, due_date, lines: [[svc, qty, rate, amount]]}
    payments: list[dict[str, Any]]  # {ref, account, date, amount, allocations: [[invoice index, amount]]}
    refunds: list[dict[str, Any]]  # {ref, payment (index), date, amount}; ref goes in the reason

    def invoice_total(self, inv: dict[str, Any]) -> Decimal:
        return sum((Decimal(line[3]) for line in inv["lines"]), Decimal("0.00"))

    def balances(self) -> list[Decimal]:
        out = [self.invoice_total(inv) for inv in self.invoices]
        for p in self.payments:
            for index, amount in p["allocations"]:
                out[index] -= Decimal(amount)
        return out

    def counts(self) -> dict[str, Any]:
        return {
            "accounts": len(self.accounts.accounts),
            "account_mix": self.accounts.counts(),
            "services": len(self.services),
            "invoices": len(self.invoices),
            "invoice_lines": sum(len(i["lines"]) for i in self.invoices),
            "payments": len(self.payments),
            "allocations": sum(len(p["allocations"]) for p in self.payments),
            "refunds": len(self.refunds),
        }


def make_billing(
    scale: float,
    seed: int = BILLING_SEED,
    today: date | None = None,
    *,
    counts: dict[str, int] | None = None,
) -> Billing:
    """The standard workload × scale, deterministic for a seed (dates relative to `today`).

    `counts` ({"accounts", "invoices", "payments"}, any of them) overrides the scaled numbers:
    soak.py's own mix."""
    rng = random.Random(seed)
    today = today or date.today()
    counts = counts or {}
    n_accounts = counts.get("accounts", max(10, round(STANDARD["accounts"] * scale)))
    n_invoices = counts.get("invoices", max(20, round(STANDARD["invoices"] * scale)))
    n_payments = counts.get("payments", round(n_invoices * STANDARD["payments"] / STANDARD["invoices"]))
    wl = make_workload(n_accounts)
    services = [
        {"name": name, "rate": str(Decimal(rng.randrange(5000, 50000)) / 100)}
        for name in _SERVICE_NAMES[: STANDARD["services"]]
    ]
    invoices: list[dict[str, Any]] = []
    for i in range(n_invoices):
        account = rng.randrange(n_accounts)
        issued = today - timedelta(days=rng.randrange(1, 330))
        lines = []
        for _ in range(rng.randint(1, 5)):
            svc = rng.randrange(len(services))
            qty = Decimal(rng.randint(1, 8))
            rate = Decimal(services[svc]["rate"])
            lines.append([svc, str(qty), str(rate), str((qty * rate).quantize(CENT, ROUND_HALF_UP))])
        invoices.append(
            {
                "number": f"B-{i + 1:06d}",
                "account": account,
                "issue_date": issued.isoformat(),
                "due_date": (issued + timedelta(days=30)).isoformat(),
                "lines": lines,
            }
        )
    # Payments: 75 % pay one invoice in full, 12.5 % part of one, 6.25 % two invoices with an
    # overpayment (credit), 6.25 % unapplied retainers. Each invoice is paid by at most one payment.
    by_account: dict[int, list[int]] = {}
    for index, inv in enumerate(invoices):
        by_account.setdefault(inv["account"], []).append(index)
    unpaid = list(range(n_invoices))
    rng.shuffle(unpaid)
    taken: set[int] = set()
    payments: list[dict[str, Any]] = []
    billing = Billing(wl, services, invoices, [], [])

    def pay(account: int, on: str, amount: Decimal, allocations: list[list[Any]]) -> None:
        payments.append(
            {
                "ref": f"P-{len(payments) + 1:06d}",
                "account": account,
                "date": on,
                "amount": str(amount),
                "allocations": allocations,
            }
        )

    cursor = 0
    for k in range(n_payments):
        kind = k % 16
        if kind == 15:  # unapplied retainer
            account = rng.randrange(n_accounts)
            pay(account, (today - timedelta(days=rng.randrange(1, 60))).isoformat(), Decimal("500.00"), [])
            continue
        while cursor < len(unpaid) and unpaid[cursor] in taken:
            cursor += 1
        if cursor >= len(unpaid):
            break
        first = unpaid[cursor]
        taken.add(first)
        inv = invoices[first]
        total = billing.invoice_total(inv)
        on = (date.fromisoformat(inv["issue_date"]) + timedelta(days=rng.randrange(0, 40))).isoformat()
        on = min(on, today.isoformat())
        if kind == 14:  # two invoices of the account, plus credit
            other = next((j for j in by_account[inv["account"]] if j not in taken), None)
            if other is not None:
                taken.add(other)
                second = billing.invoice_total(invoices[other])
                on = max(on, invoices[other]["issue_date"])
                allocations = [[first, str(total)], [other, str(second)]]
                pay(inv["account"], on, total + second + Decimal("25.00"), allocations)
                continue
        if kind in (12, 13):  # partial
            part = (total / 2).quantize(CENT, ROUND_HALF_UP)
            pay(inv["account"], on, part, [[first, str(part)]])
        else:
            pay(inv["account"], on, total, [[first, str(total)]])
    billing.payments = payments
    # Refunds: part of an unapplied retainer returned (the app only refunds unapplied credit),
    # spread over the retainers in order, dated 0-10 days after the payment (never in the future).
    n_refunds = round(n_invoices * STANDARD["refunds"] / STANDARD["invoices"])
    retainers = [k for k, p in enumerate(payments) if not p["allocations"]]
    step = max(1, len(retainers) // max(1, n_refunds))
    for k in retainers[::step][:n_refunds]:
        on = date.fromisoformat(payments[k]["date"]) + timedelta(days=rng.randrange(0, 11))
        billing.refunds.append(
            {
                "ref": f"R-{len(billing.refunds) + 1:06d}",
                "payment": k,
                "date": min(on, today).isoformat(),
                "amount": str(REFUND_AMOUNT),
            }
        )
    return billing


def expected_sets(b: Billing) -> tuple[set[int], set[int], set[int]]:
    """Indexes of the invoices, payments and refunds that must reach QBO (their account syncs)."""
    ok = {i for i, a in enumerate(b.accounts.accounts) if a.category in SYNCING}
    pays = {i for i, p in enumerate(b.payments) if p["account"] in ok}
    return (
        {i for i, inv in enumerate(b.invoices) if inv["account"] in ok},
        pays,
        {i for i, r in enumerate(b.refunds) if r["payment"] in pays},
    )


# --------------------------------------------------------------------------------------------
# Realm helpers (control plane: not metered, not counted)


def peek_all(sb: Sandbox, realm: str, entity: str, where: str = "") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    position = 1
    while True:
        q = f"select * from {entity}{where} orderby Id startposition {position} maxresults 1000"
        page = sb.call("POST", f"/realms/{realm}/query", content=q).get("QueryResponse", {}).get(entity, [])
        out.extend(page)
        if len(page) < 1000:
            return out
        position += len(page)


def fresh_realm(sb: Sandbox, b: Billing) -> str:
    """A fresh sample-us realm with the workload's customers and vendors, numbering its sales
    forms the firm's way (custom transaction numbers on, as a firm that pushes its own invoice
    numbers has it; sample-us has it off). Counters reset afterwards."""
    realm = sb.fresh_realm(b.accounts)
    token = sb.token(realm)
    prefs = sb.call("POST", f"/realms/{realm}/query", content="select * from Preferences")
    current = prefs["QueryResponse"]["Preferences"][0]
    body = {"SyncToken": current["SyncToken"], "sparse": True, "SalesFormsPrefs": {"CustomTxnNumbers": True}}
    resp = httpx.post(
        f"{sb.url}/v3/company/{realm}/preferences",
        json=body,
        params={"minorversion": MINOR},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    resp.raise_for_status()
    sb.call("POST", f"/realms/{realm}/counters/reset")
    return realm


def pick_accounts(sb: Sandbox, realm: str) -> dict[str, str]:
    """The income and deposit accounts the owner would pick (the setup form's defaults)."""
    accounts = peek_all(sb, realm, "Account")
    income = [a for a in accounts if a.get("AccountType") == "Income"]
    chosen = next((a for a in income if a.get("Name") == "Services"), income[0] if income else None)
    deposit = next((a for a in accounts if a.get("AccountSubType") == "UndepositedFunds"), None)
    assert chosen and deposit, "sample-us has an income account and Undeposited Funds"
    return {
        "income_id": str(chosen["Id"]),
        "income_name": str(chosen.get("Name", "")),
        "deposit_id": str(deposit["Id"]),
        "deposit_name": str(deposit.get("Name", "")),
    }


# --------------------------------------------------------------------------------------------
# The reference integration: python-quickbooks, the way most integrations are written


def reference_sync(sb: Sandbox, realm: str, b: Billing, accts: dict[str, str]) -> dict[str, Any]:
    from quickbooks import QuickBooks
    from quickbooks.exceptions import QuickbooksException
    from quickbooks.objects.base import LinkedTxn, Ref
    from quickbooks.objects.customer import Customer
    from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
    from quickbooks.objects.invoice import Invoice
    from quickbooks.objects.item import Item
    from quickbooks.objects.payment import Payment, PaymentLine
    from quickbooks.objects.refundreceipt import RefundReceipt
    from requests_oauthlib import OAuth2Session

    token = sb.call("POST", "/tokens", json={"realm_id": realm})
    qb = QuickBooks(company_id=realm, minorversion=int(MINOR))
    # What QuickBooks(auth_client=...) sets up, minus intuit-oauth's discovery-document fetch
    # from Intuit (this machine is offline): a requests-oauthlib session with the access token.
    qb.session = OAuth2Session("bench", token={"access_token": token["access_token"]})
    qb.sandbox = True
    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"  # the local sandbox speaks plain HTTP on loopback
    qb.sandbox_api_url_v3 = f"{sb.url}/v3"  # the local sandbox instead of Intuit's

    def ref(value: str) -> Ref:
        r = Ref()
        r.value = value
        return r

    errors: dict[str, int] = {}

    def failed(what: str, exc: Exception) -> None:
        key = f"{what}: {getattr(exc, 'error_code', type(exc).__name__)}"
        errors[key] = errors.get(key, 0) + 1

    t0, c0 = time.perf_counter(), time.process_time()
    item_ids: dict[int, str] = {}
    for index, svc in enumerate(b.services):
        try:
            found = Item.filter(Name=svc["name"], qb=qb)
            if found:
                item_ids[index] = str(found[0].Id)
                continue
            item = Item()
            item.Name = svc["name"]
            item.Type = "Service"
            item.UnitPrice = float(svc["rate"])
            item.IncomeAccountRef = ref(accts["income_id"])
            item.save(qb=qb)
            item_ids[index] = str(item.Id)
        except QuickbooksException as exc:
            failed("item", exc)
    customer_ids: dict[int, str | None] = {}

    def customer_id(index: int) -> str | None:
        if index in customer_ids:  # stored locally after the first sync of the account
            return customer_ids[index]
        name = b.accounts.accounts[index].name.strip()
        cid: str | None = None
        try:
            found = Customer.where(f"DisplayName = {qbo_quote(name)}", qb=qb)
            if found:
                cid = str(found[0].Id)
            else:
                c = Customer()
                c.DisplayName = name
                c.CompanyName = name
                c.save(qb=qb)
                cid = str(c.Id)
        except QuickbooksException as exc:
            failed("customer", exc)
        customer_ids[index] = cid
        return cid

    for index in range(len(b.accounts.accounts)):
        customer_id(index)
    invoice_ids: dict[int, str] = {}
    for index, inv in enumerate(b.invoices):
        cid = customer_id(inv["account"])
        if cid is None:
            errors["invoice: customer missing"] = errors.get("invoice: customer missing", 0) + 1
            continue
        try:
            found = Invoice.filter(DocNumber=inv["number"], qb=qb)
            if found:
                invoice_ids[index] = str(found[0].Id)
                continue
            obj = Invoice()
            obj.DocNumber = inv["number"]
            obj.TxnDate = inv["issue_date"]
            obj.DueDate = inv["due_date"]
            obj.CustomerRef = ref(cid)
            for svc, qty, rate, amount in inv["lines"]:
                line = SalesItemLine()
                line.Amount = float(amount)
                line.Description = b.services[svc]["name"]
                line.SalesItemLineDetail = SalesItemLineDetail()
                line.SalesItemLineDetail.ItemRef = ref(item_ids[svc])
                line.SalesItemLineDetail.Qty = float(qty)
                line.SalesItemLineDetail.UnitPrice = float(rate)
                obj.Line.append(line)
            obj.save(qb=qb)
            invoice_ids[index] = str(obj.Id)
        except QuickbooksException as exc:
            failed("invoice", exc)
    paid = 0
    payment_ids: dict[int, str] = {}
    for k, p in enumerate(b.payments):
        cid = customer_id(p["account"])
        if cid is None or any(i not in invoice_ids for i, _ in p["allocations"]):
            errors["payment: customer or invoice missing"] = (
                errors.get("payment: customer or invoice missing", 0) + 1
            )
            continue
        try:
            pay = Payment()
            pay.CustomerRef = ref(cid)
            pay.TotalAmt = float(p["amount"])
            pay.TxnDate = p["date"]
            pay.PaymentRefNum = p["ref"]
            pay.DepositToAccountRef = ref(accts["deposit_id"])
            for i, amount in p["allocations"]:
                line = PaymentLine()
                line.Amount = float(amount)
                txn = LinkedTxn()
                txn.TxnId = invoice_ids[i]
                txn.TxnType = "Invoice"
                line.LinkedTxn.append(txn)
                pay.Line.append(line)
            pay.save(qb=qb)
            paid += 1
            payment_ids[k] = str(pay.Id)
        except QuickbooksException as exc:
            failed("payment", exc)
    # Refunds the usual way: a "Refunds" item found by name or created, then one RefundReceipt per
    # refund (nothing to query it by: QBO cannot filter on PrivateNote), paid from the account the
    # payment was deposited to, the refund's reference in its memo.
    refund_item = ""
    refunded = 0
    if b.refunds:
        try:
            found_item = Item.filter(Name="Refunds", qb=qb)
            if found_item:
                refund_item = str(found_item[0].Id)
            else:
                item = Item()
                item.Name = "Refunds"
                item.Type = "Service"
                item.IncomeAccountRef = ref(accts["income_id"])
                item.save(qb=qb)
                refund_item = str(item.Id)
        except QuickbooksException as exc:
            failed("refund item", exc)
    for rf in b.refunds:
        p = b.payments[rf["payment"]]
        if rf["payment"] not in payment_ids or not refund_item:
            errors["refund: payment missing"] = errors.get("refund: payment missing", 0) + 1
            continue
        try:
            rr = RefundReceipt()
            rr.CustomerRef = ref(str(customer_ids[p["account"]]))
            rr.TxnDate = rf["date"]
            rr.DepositToAccountRef = ref(accts["deposit_id"])
            rr.PrivateNote = f"{rf['ref']} retainer returned"
            line = SalesItemLine()
            line.Amount = float(rf["amount"])
            line.SalesItemLineDetail = SalesItemLineDetail()
            line.SalesItemLineDetail.ItemRef = ref(refund_item)
            line.SalesItemLineDetail.Qty = 1
            line.SalesItemLineDetail.UnitPrice = float(rf["amount"])
            rr.Line.append(line)
            rr.save(qb=qb)
            refunded += 1
        except QuickbooksException as exc:
            failed("refund", exc)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    synced = len(item_ids) + sum(1 for c in customer_ids.values() if c) + len(invoice_ids) + paid + refunded
    return {"wall_s": wall, "cpu_s": cpu, "errors": errors, "synced": synced}


# --------------------------------------------------------------------------------------------
# The engine, in a child process (fresh DB, clean CPU accounting)


def engine_sync(
    sb: Sandbox,
    realm: str,
    b: Billing,
    accts: dict[str, str],
    *,
    db: DB,
    paced: bool = False,
    window_seconds: float = 60.0,
    batches_per_window: float | None = None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bill-bench-") as tmp:
        spec = {
            "sandbox_url": sb.url,
            "realm": realm,
            "token": sb.call("POST", "/tokens", json={"realm_id": realm}),
            "accounts": [a.name for a in b.accounts.accounts],
            "services": b.services,
            "invoices": b.invoices,
            "payments": b.payments,
            "refunds": b.refunds,
            "qbo_accounts": accts,
            "paced": paced,
            "window_seconds": window_seconds,
            "batches_per_window": batches_per_window,
            "out": f"{tmp}/out.json",
        }
        Path(f"{tmp}/spec.json").write_text(json.dumps(spec))
        env = {**db.env(tmp), "LOG_LEVEL": "WARNING"}
        with open(f"{tmp}/worker.log", "w") as log:
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", f"{tmp}/spec.json"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=3600,
            )
        if proc.returncode != 0:
            tail = Path(f"{tmp}/worker.log").read_text()[-3000:]
            raise RuntimeError(f"engine worker failed ({proc.returncode}):\n{tail}")
        result: dict[str, Any] = json.loads(Path(f"{tmp}/out.json").read_text())
    return result


def load_billing(firm: Any, spec: dict[str, Any]) -> dict[str, list[int]]:
    """Bulk-insert the workload's accounts, services, invoices and payments into `firm` (Django
    set up by the caller); returns the new rows' ids in workload order, per kind. Also used by
    soak.py, which drives a real worker instead of `run_now`, and latency_bench.py's firms."""
    from django.utils import timezone

    from practice.billing.models import (
        Invoice,
        InvoiceLine,
        InvoiceState,
        Payment,
        PaymentAllocation,
        PaymentMethod,
        Refund,
        Service,
    )
    from practice.clients.models import ClientAccount

    # The firm's billing, bulk-inserted (the services' rules hold: issued invoices with numbers,
    # line amounts = quantity × rate, allocations within invoice totals).
    now = timezone.now()
    ClientAccount.objects.bulk_create(
        [ClientAccount(firm=firm, name=n) for n in spec["accounts"]], batch_size=1000
    )
    account_ids = list(ClientAccount.objects.filter(firm=firm).order_by("id").values_list("pk", flat=True))
    Service.objects.bulk_create(
        [Service(firm=firm, name=s["name"], rate=Decimal(s["rate"])) for s in spec["services"]]
    )
    service_ids = list(Service.objects.filter(firm=firm).order_by("id").values_list("pk", flat=True))
    # 5,000 invoice objects at a time: latency_bench's memory run loads about 100,000 records.
    for first in range(0, len(spec["invoices"]), 5000):
        Invoice.objects.bulk_create(
            [
                Invoice(
                    firm=firm,
                    account_id=account_ids[inv["account"]],
                    number=inv["number"],
                    issue_date=date.fromisoformat(inv["issue_date"]),
                    due_date=date.fromisoformat(inv["due_date"]),
                    state=InvoiceState.ISSUED,
                    issued_at=now,
                )
                for inv in spec["invoices"][first : first + 5000]
            ],
            batch_size=1000,
        )
    invoice_ids = list(Invoice.objects.filter(firm=firm).order_by("id").values_list("pk", flat=True))
    InvoiceLine.objects.bulk_create(
        [
            InvoiceLine(
                firm=firm,
                invoice_id=invoice_ids[i],
                position=pos,
                service_id=service_ids[svc],
                description=spec["services"][svc]["name"],
                quantity=Decimal(qty),
                rate=Decimal(rate),
                amount=Decimal(amount),
            )
            for i, inv in enumerate(spec["invoices"])
            for pos, (svc, qty, rate, amount) in enumerate(inv["lines"])
        ],
        batch_size=2000,
    )
    Payment.objects.bulk_create(
        [
            Payment(
                firm=firm,
                account_id=account_ids[p["account"]],
                date=date.fromisoformat(p["date"]),
                amount=Decimal(p["amount"]),
                method=PaymentMethod.CHECK,
                reference=p["ref"],
                created_manually=True,
            )
            for p in spec["payments"]
        ],
        batch_size=1000,
    )
    payment_ids = list(Payment.objects.filter(firm=firm).order_by("id").values_list("pk", flat=True))
    PaymentAllocation.objects.bulk_create(
        [
            PaymentAllocation(
                firm=firm, payment_id=payment_ids[k], invoice_id=invoice_ids[i], amount=Decimal(amount)
            )
            for k, p in enumerate(spec["payments"])
            for i, amount in p["allocations"]
        ],
        batch_size=2000,
    )
    Refund.objects.bulk_create(
        [
            Refund(
                firm=firm,
                payment_id=payment_ids[r["payment"]],
                date=date.fromisoformat(r["date"]),
                amount=Decimal(r["amount"]),
                reason=f"{r['ref']} retainer returned",
            )
            for r in spec.get("refunds", [])
        ],
        batch_size=1000,
    )
    return {
        "accounts": account_ids,
        "services": service_ids,
        "invoices": invoice_ids,
        "payments": payment_ids,
    }


def worker(spec_path: str) -> None:
    """Child process: a firm with the workload's billing, connected and set up; run to the end."""
    spec = child_setup(spec_path)
    from django.conf import settings
    from django.db.models import Count
    from django.utils import timezone

    from practice.quickbooks.connection import oauth, pacing
    from practice.quickbooks.models import SyncLink
    from practice.quickbooks.sync import tasks

    apply_pacing(
        settings,
        paced=spec["paced"],
        window_seconds=spec["window_seconds"],
        batches_per_window=spec.get("batches_per_window"),
    )

    firm, owner = bench_firm("Bench", "bench.test")
    load_billing(firm, spec)

    conn, _ = oauth.connection_connect(
        firm=firm,
        user=owner,
        realm_id=spec["realm"],
        company_name="Bench company",
        token_set=oauth.TokenSet.from_response(spec["token"]),
        env=oauth.environment(),
    )
    choose_billing_setup(conn, spec["qbo_accounts"])
    conn.setup_completed_at = timezone.now()
    conn.save()
    pacing._registry.clear()

    instruments = Instruments()

    runs: list[dict[str, Any]] = []
    with instruments.counting_sql():
        t0, c0 = time.perf_counter(), time.process_time()
        # The worker would pick the "more work" follow-up runs from its queue; here they run back
        # to back (a deferred run is retried after its wait, as the queue would).
        for _ in range(200):
            result = tasks.run_now(conn.pk)
            runs.append(result)
            if result["reason"] == "more work":
                continue
            pending = SyncLink.objects.filter(connection=conn, status="syncing").exists()
            if not pending:
                break
            time.sleep(max(0.05, float(spec["window_seconds"]) / 60.0))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    statuses: dict[str, dict[str, int]] = {}
    for row in (
        SyncLink.objects.filter(connection=conn)
        .values("kind", "status", "error_kind")
        .annotate(n=Count("id"))
        .order_by("kind")
    ):
        label = f"{row['status']}:{row['error_kind']}" if row["error_kind"] else row["status"]
        statuses.setdefault(row["kind"], {})[label] = row["n"]
    synced = SyncLink.objects.filter(connection=conn, status="synced").count()
    out = {
        "wall_s": wall,
        "cpu_s": cpu,
        "sql_queries": instruments.sql,
        "runs": len(runs),
        "run_reasons": [r["reason"] for r in runs],
        "summary": runs[-1]["summary"] if runs else {},
        "statuses": statuses,
        "synced_links": synced,
        "sends": [(t - t0, op) for t, op in instruments.sends],
    }
    Path(spec["out"]).write_text(json.dumps(out))


# --------------------------------------------------------------------------------------------
# Checks (read through the control plane: not metered)


def check(sb: Sandbox, realm: str, b: Billing) -> dict[str, Any]:
    want_inv, want_pay, want_ref = expected_sets(b)
    customers = peek_all(sb, realm, "Customer", " where Active in (true, false)")
    by_name: dict[str, list[str]] = {}
    for c in customers:
        by_name.setdefault(normalize(str(c.get("DisplayName", ""))), []).append(str(c["Id"]))
    invoices = peek_all(sb, realm, "Invoice")
    payments = peek_all(sb, realm, "Payment")
    inv_by_doc: dict[str, list[dict[str, Any]]] = {}
    for inv in invoices:
        inv_by_doc.setdefault(str(inv.get("DocNumber", "")), []).append(inv)
    pay_by_ref: dict[str, list[dict[str, Any]]] = {}
    for p in payments:
        pay_by_ref.setdefault(str(p.get("PaymentRefNum", "")), []).append(p)
    balances = b.balances()
    problems: dict[str, int] = {}
    examples: list[str] = []

    def problem(kind: str, text: str) -> None:
        problems[kind] = problems.get(kind, 0) + 1
        if len(examples) < 8:
            examples.append(text)

    correct_inv = 0
    for i, inv in enumerate(b.invoices):
        found = inv_by_doc.get(inv["number"], [])
        if i not in want_inv:
            if found:
                problem("invoice of a non-syncing account in QBO", inv["number"])
            continue
        if len(found) != 1:
            problem("invoice not exactly once", f"{inv['number']}: {len(found)}")
            continue
        q = found[0]
        owner = by_name.get(normalize(b.accounts.accounts[inv["account"]].name), [])
        ok = True
        if owner != [str(q.get("CustomerRef", {}).get("value"))]:
            problem("invoice under the wrong customer", inv["number"])
            ok = False
        if Decimal(str(q.get("TotalAmt"))).quantize(CENT) != b.invoice_total(inv):
            problem(
                "invoice total differs", f"{inv['number']}: {q.get('TotalAmt')} vs {b.invoice_total(inv)}"
            )
            ok = False
        if Decimal(str(q.get("Balance"))).quantize(CENT) != balances[i]:
            problem("invoice balance differs", f"{inv['number']}: {q.get('Balance')} vs {balances[i]}")
            ok = False
        correct_inv += ok
    correct_pay = 0
    for k, p in enumerate(b.payments):
        found = pay_by_ref.get(p["ref"], [])
        if k not in want_pay:
            if found:
                problem("payment of a non-syncing account in QBO", p["ref"])
            continue
        if len(found) != 1:
            problem("payment not exactly once", f"{p['ref']}: {len(found)}")
            continue
        if Decimal(str(found[0].get("TotalAmt"))).quantize(CENT) != Decimal(p["amount"]):
            problem("payment amount differs", p["ref"])
            continue
        correct_pay += 1
    # Refunds: by their reference, which both integrations carry in the RefundReceipt's PrivateNote
    # (the engine writes "Practice refund #<id>: <reason>", the reason starting with the reference).
    receipts = peek_all(sb, realm, "RefundReceipt")
    ref_by_key: dict[str, list[dict[str, Any]]] = {}
    for r in receipts:
        for key in re.findall(r"R-\d{6}", str(r.get("PrivateNote", ""))):
            ref_by_key.setdefault(key, []).append(r)
    correct_ref = 0
    for k, rf in enumerate(b.refunds):
        found = ref_by_key.get(rf["ref"], [])
        if k not in want_ref:
            if found:
                problem("refund of a non-syncing account in QBO", rf["ref"])
            continue
        if len(found) != 1:
            problem("refund not exactly once", f"{rf['ref']}: {len(found)}")
            continue
        owner = by_name.get(normalize(b.accounts.accounts[b.payments[rf["payment"]]["account"]].name), [])
        if owner != [str(found[0].get("CustomerRef", {}).get("value"))]:
            problem("refund under the wrong customer", rf["ref"])
            continue
        if Decimal(str(found[0].get("TotalAmt"))).quantize(CENT) != Decimal(rf["amount"]):
            problem("refund amount differs", rf["ref"])
            continue
        correct_ref += 1
    return {
        "invoices_expected": len(want_inv),
        "invoices_correct": correct_inv,
        "payments_expected": len(want_pay),
        "payments_correct": correct_pay,
        "refunds_expected": len(want_ref),
        "refunds_correct": correct_ref,
        "refunds_in_qbo": len(receipts),
        "invoices_in_qbo": len(invoices),
        "payments_in_qbo": len(payments),
        "problems": problems,
        "problem_examples": examples,
        "ok": not problems,
    }


# --------------------------------------------------------------------------------------------
# Runs


def records_of(b: Billing) -> int:
    return len(b.accounts.accounts) + len(b.services) + len(b.invoices) + len(b.payments) + len(b.refunds)


def measure(sb: Sandbox, b: Billing, variant: str, db: DB) -> dict[str, Any]:
    realm = fresh_realm(sb, b)
    accts = pick_accounts(sb, realm)
    cpu_sb0 = sb.cpu_seconds()
    if variant == "reference":
        res = reference_sync(sb, realm, b, accts)
    else:
        res = engine_sync(sb, realm, b, accts, db=db)
        res.pop("sends", None)
    counters = sb.counters(realm)
    cpu_sb = sb.cpu_seconds() - cpu_sb0
    verdict = check(sb, realm, b)
    sb.call("DELETE", f"/realms/{realm}")
    n = records_of(b)
    synced = int(res.get("synced_links", res.get("synced", 0)))
    return {
        "variant": variant,
        "records": n,
        "requests": counters["requests"],
        "operations": counters["operations"],
        "batch_calls": counters["batch_calls"],
        "queries": counters["queries"],
        "throttled": counters["throttled"],
        "errors": counters["errors"],
        "requests_per_record": counters["requests"] / n,
        "operations_per_record": counters["operations"] / n,
        "wall_s": res["wall_s"],
        "app_cpu_s": res["cpu_s"],
        "app_cpu_s_per_1000": res["cpu_s"] * 1000 / n,
        "sandbox_cpu_s": cpu_sb,
        "counters": counters,
        "check": verdict,
        "synced": synced,
        "requests_per_synced": counters["requests"] / max(synced, 1),
        "detail": {k: v for k, v in res.items() if k not in ("wall_s", "cpu_s")},
    }


def per_minute(entries: list[dict[str, Any]], minute: float, t0: datetime) -> list[dict[str, Any]]:
    """The sandbox's request log cut into (compressed) minutes from `t0`: requests, batch calls,
    batch items (the useful writes), 429s. Only whole minutes; the last, partial one is dropped."""
    rows: dict[int, dict[str, Any]] = {}
    last = 0.0
    for e in entries:
        at = (datetime.fromisoformat(e["at"]) - t0).total_seconds()
        last = max(last, at)
        row = rows.setdefault(
            int(at // minute), {"requests": 0, "batch_calls": 0, "batch_items": 0, "throttled_429": 0}
        )
        row["requests"] += 1
        if e.get("status") == 429:
            row["throttled_429"] += 1
        elif e.get("operation") == "batch":
            row["batch_calls"] += 1
            row["batch_items"] += int(e.get("batch_items") or 0)
    whole = int(last // minute)
    return [
        {
            "minute": m + 1,
            **rows.get(m, {"requests": 0, "batch_calls": 0, "batch_items": 0, "throttled_429": 0}),
        }
        for m in range(whole)
    ]


def budget_run(
    sb: Sandbox, scale: float, time_scale: float, db: DB, batches_per_window: float | None = None
) -> dict[str, Any]:
    """Real limits, compressed time: the engine's backfill must draw no 429.

    Per-minute figures come from the sandbox's own request log (its timestamps, its view of each
    batch's item count), counted from the moment the run started, so the planning before the
    first write counts against utilisation too ("from the first minute")."""
    b = make_billing(scale, seed=BILLING_SEED + 1)
    cfg = sb.config(
        throttling_enabled=True, time_scale=time_scale, latency_seconds=0.0, request_log_size=1_000_000
    )
    minute = 60 * time_scale
    realm = fresh_realm(sb, b)
    accts = pick_accounts(sb, realm)
    sb.call("DELETE", f"/realms/{realm}/requests")
    started = datetime.now(UTC)
    res = engine_sync(
        sb, realm, b, accts, db=db, paced=True, window_seconds=minute, batches_per_window=batches_per_window
    )
    counters = sb.counters(realm)
    entries = list(sb.call("GET", f"/realms/{realm}/requests")["requests"])
    verdict = check(sb, realm, b)
    sb.call("DELETE", f"/realms/{realm}")
    sb.config(throttling_enabled=False, time_scale=1.0, request_log_size=2000)
    sends = res.pop("sends")
    batches = [t for t, op in sends if op.startswith("batch")]
    span = (batches[-1] - batches[0]) if len(batches) > 1 else float("nan")
    minutes = span / minute
    calls = len(batches) - 1
    in_span = sum(1 for t, _ in sends if batches and batches[0] <= t < batches[-1])
    # t0 = the first request the engine sent (the child's start-up and the firm's bulk insert are
    # the bench's set-up, not the sync).
    t0 = datetime.fromisoformat(entries[0]["at"]) if entries else started
    series = per_minute(entries, minute, t0)
    allowance_items = cfg["batch_per_minute"] * cfg["batch_max_items"]
    whole = series[:-1] if len(series) > 1 else series  # the last whole minute may hold the tail
    items_whole = sum(r["batch_items"] for r in whole)
    calls_whole = sum(r["batch_calls"] for r in whole)
    return {
        "workload": b.counts(),
        "records": records_of(b),
        "time_scale": time_scale,
        "minute_s": minute,
        "batches_per_window_setting": batches_per_window or 36,
        "limits": {k: cfg[k] for k in ("requests_per_minute", "batch_per_minute", "batch_max_items")},
        "wall_s": res["wall_s"],
        "scaled_minutes": res["wall_s"] / minute,
        "requests": counters["requests"],
        "operations": counters["operations"],
        "batch_calls": len(batches),
        "steady_batch_calls_per_min": calls / minutes if minutes == minutes and minutes else None,
        "steady_requests_per_min": in_span / minutes if minutes == minutes and minutes else None,
        "batch_utilisation": (calls / minutes / cfg["batch_per_minute"])
        if minutes == minutes and minutes
        else None,
        "per_minute": series,
        "allowance_items_per_min": allowance_items,
        "first_minute_items_utilisation": (series[0]["batch_items"] / allowance_items) if series else None,
        "whole_minutes_counted": len(whole),
        "items_utilisation_from_first_minute": items_whole / len(whole) / allowance_items if whole else None,
        "batch_utilisation_from_first_minute": calls_whole / len(whole) / cfg["batch_per_minute"]
        if whole
        else None,
        "throttled_429": counters["throttled"],
        "statuses": res["statuses"],
        "runs": res["runs"],
        "check_ok": verdict["ok"],
        "check": verdict,
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the standard workload")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default: temp SQLite)")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds the sandbox adds to every API call"
    )
    parser.add_argument("--variants", default="engine,reference")
    parser.add_argument(
        "--budget-scale", type=float, default=0.25, help="budget run: fraction of the workload"
    )
    parser.add_argument("--time-scale", type=float, default=0.5, help="budget run: a minute lasts 60×this s")
    parser.add_argument("--no-budget", action="store_true")
    parser.add_argument(
        "--batches-per-window",
        default="36",
        help="budget run: the pacer's QBO_BATCHES_PER_WINDOW values to try, comma-separated (e.g. 36,38)",
    )
    parser.add_argument("--budget-runs", type=int, default=1, help="budget runs per pacer setting")
    args = parser.parse_args()
    if "reference" in args.variants:
        try:
            import quickbooks  # noqa: F401
        except ImportError:
            sys.exit(
                "the reference variant needs python-quickbooks: "
                ".venv/bin/pip install -r requirements-bench.txt"
            )

    b = make_billing(args.scale)
    variants = [v for v in args.variants.split(",") if v]
    started = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    budgets: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bill-bench-db-") as workdir:
        db = DB(args.database_url, workdir)
        sb = Sandbox()
        try:
            sb.config(throttling_enabled=False, latency_seconds=args.latency)
            for run in range(args.runs if variants else 0):
                order = variants[run % len(variants) :] + variants[: run % len(variants)]
                for variant in order:
                    row = measure(sb, b, variant, db)
                    row["run"] = run
                    rows.append(row)
                    c = row["check"]
                    print(
                        f"run {run} {variant:<9} wall {row['wall_s']:7.2f}s  req {row['requests']:6d}  "
                        f"ops {row['operations']:6d}  cpu {row['app_cpu_s']:6.2f}s  "
                        f"invoices {c['invoices_correct']}/{c['invoices_expected']}  "
                        f"payments {c['payments_correct']}/{c['payments_expected']}  "
                        f"refunds {c['refunds_correct']}/{c['refunds_expected']}  ok={c['ok']}",
                        flush=True,
                    )
            if not args.no_budget:
                settings_tried = [float(v) for v in str(args.batches_per_window).split(",") if v]
                for run in range(args.budget_runs):
                    # Alternate the settings within each round: side by side under the same load.
                    for bpw in settings_tried:
                        one = budget_run(sb, args.budget_scale, args.time_scale, db, bpw)
                        one["run"] = run
                        budgets.append(one)
                        print(
                            f"budget run {run} pacer {bpw:g}/min: {one['batch_calls']} batch calls, "
                            f"429s {one['throttled_429']}, items/min ÷ allowance from the first minute "
                            f"{one['items_utilisation_from_first_minute']}, correct {one['check_ok']}",
                            flush=True,
                        )
        finally:
            sb.close()

    print()
    print(f"Billing backfill, workload {b.counts()}, {args.runs} run(s)")
    print(f"DB: {db.label}; sandbox: separate process, limits off, added latency {args.latency} s")
    print(f"git: {git_state()}")
    head = (
        f"{'variant':<9} {'records':>7} {'requests':>8} {'req/rec':>8} {'ops':>6} {'ops/rec':>7} "
        f"{'batches':>7} {'wall s':>7} {'CPU s/1k':>8} {'invoices ok':>12} {'payments ok':>12}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        c = r["check"]
        print(
            f"{r['variant']:<9} {r['records']:7d} {r['requests']:8d} {r['requests_per_record']:8.4f} "
            f"{r['operations']:6d} {r['operations_per_record']:7.4f} {r['batch_calls']:7d} "
            f"{r['wall_s']:7.2f} "
            f"{r['app_cpu_s_per_1000']:8.2f} {c['invoices_correct']:>5}/{c['invoices_expected']:<6} "
            f"{c['payments_correct']:>5}/{c['payments_expected']:<6}"
        )
    for r in rows:
        if r["check"]["problems"]:
            print(f"{r['variant']}: {r['check']['problems']} e.g. {r['check']['problem_examples'][:3]}")
        if r["variant"] == "engine":
            print(f"engine link statuses: {r['detail'].get('statuses')}; runs {r['detail'].get('runs')}")
        else:
            print(f"reference errors: {r['detail'].get('errors')}")
    for budget in budgets:
        print()
        print(
            f"Budget run: {budget['records']} records, limits on, time_scale {budget['time_scale']} "
            f"(a minute = {budget['minute_s']:.1f} s): {budget['requests']} requests, "
            f"{budget['batch_calls']} batch calls, wall {budget['wall_s']:.1f} s = "
            f"{budget['scaled_minutes']:.2f} min, 429s: {budget['throttled_429']}, "
            f"correct: {budget['check_ok']}"
        )

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"billing-sync-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(
        json.dumps(
            {
                "benchmark": "billing_sync",
                "started": started.isoformat(),
                "args": vars(args),
                "machine": machine(),
                "git": git_state(),
                "database": db.label,
                "sandbox": "qbo-sandbox serve, separate process, loopback",
                "workload": b.counts(),
                "workload_seed": BILLING_SEED,
                "runs": rows,
                "budget": budgets[0] if budgets else None,
                "budgets": budgets,
            },
            indent=2,
            default=str,
        )
    )
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

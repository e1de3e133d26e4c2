"""The demo's billing story (issue 10 item 5), end to end against the sandbox over HTTP.

`make demo` seeds the demo firm (practice/billing/demo.py) and the sandbox company
(practice/quickbooks/demo/seed.py); the owner connects and confirms the setup form as it comes
(its defaults: accounts with billing activity, create unmatched customers, *no sync start date*,
so every issued invoice counts, the "Services" income account and Undeposited Funds); the worker
runs the engine. Here the runs are called directly until the engine has nothing more to do.

After that, every issued invoice of a Synced account is in the sandbox company exactly once,
under its account's customer, with the app's total and open balance — except the deliberate
problem: INV-0002 of "Bill's Windsurf Shop", whose number the company already uses for another
customer's invoice (Error "docnumber_clash"), and the partial payment on it, which waits. The fix
(change the number) and one more run bring both in.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from practice.billing import services as billing_services
from practice.billing.demo import DOCNUMBER_CLASH_ACCOUNT, demo_seed, docnumber_clash_invoice
from practice.billing.models import Invoice, Payment, PaymentAllocation, Service
from practice.quickbooks.connection.client import QBOClient, quote
from practice.quickbooks.demo.seed import CLASH_CUSTOMER, CLASH_NOTE, seed_demo_company
from practice.quickbooks.models import Connection, SyncLink
from practice.quickbooks.web.forms import default_deposit, default_income
from tests.quickbooks.conftest import connect_firm
from tests.quickbooks.sync_support import run, set_up


def _confirm_setup_defaults(conn: Connection) -> Connection:
    """The setup form's initial values, confirmed as they are (what the demo owner does)."""
    accounts = list(QBOClient(conn).query_all("Account", "Active IN (true, false)"))
    income, deposit = default_income(accounts), default_deposit(accounts)
    assert income and deposit
    conn.income_account_id, conn.income_account_name = str(income["Id"]), str(income["Name"])
    conn.deposit_account_id, conn.deposit_account_name = str(deposit["Id"]), str(deposit["Name"])
    assert conn.sync_start_date is None and conn.sync_manual_payments
    conn.save()
    return set_up(conn, scope="with_activity")


def _run_until_idle(conn: Connection) -> None:
    for _ in range(20):
        result = run(conn)
        if result.reason != "more work":
            return
    raise AssertionError("the engine still had work after 20 runs")


def _links(conn: Connection, kind: str) -> dict[int, SyncLink]:
    return {link.local_id: link for link in SyncLink.objects.filter(connection=conn, kind=kind)}


def _qbo_invoices(conn: Connection, doc_number: str) -> list[dict[str, Any]]:
    return list(QBOClient(conn).query_all("Invoice", f"DocNumber = {quote(doc_number)}"))


def _money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _assert_in_qbo(conn: Connection, invoice: Invoice, customers: dict[int, SyncLink]) -> dict[str, Any]:
    found = _qbo_invoices(conn, invoice.number)
    assert len(found) == 1, f"{invoice.number}: {len(found)} invoices in QBO"
    qbo = found[0]
    assert qbo["CustomerRef"]["value"] == customers[invoice.account_id].qbo_id, invoice.number
    assert _money(qbo["TotalAmt"]) == invoice.total, invoice.number
    assert _money(qbo["Balance"]) == invoice.balance, invoice.number
    return qbo


def test_demo_billing_reaches_the_sandbox_with_its_two_problems_and_their_fix(db, sandbox, realm_id):
    firm = demo_seed().firm
    seed_demo_company(realm_id, sandbox.url)
    seed_demo_company(realm_id, sandbox.url)  # idempotent (make demo seeds on every start)
    clash = docnumber_clash_invoice(firm)
    assert clash is not None and clash.number == "INV-0002"
    # The deliberate problem's other half: a payment of the account allocated to that invoice.
    waiting_payment = Payment.objects.get(allocations__invoice=clash)
    assert waiting_payment.account.name == DOCNUMBER_CLASH_ACCOUNT
    assert 0 < waiting_payment.amount < clash.total  # partly paid: the open balance shows

    conn = _confirm_setup_defaults(connect_firm(firm, realm_id, sandbox))
    # The sandbox company already has an invoice numbered INV-0002, another customer's.
    [theirs] = _qbo_invoices(conn, clash.number)
    assert theirs["PrivateNote"] == CLASH_NOTE
    _run_until_idle(conn)

    customers = _links(conn, "customer")
    synced_accounts = {pk for pk, link in customers.items() if link.status == "synced"}
    assert len(synced_accounts) >= 20

    # Every service is an item of the company.
    services = _links(conn, "service")
    assert {services[s.pk].status for s in Service.objects.filter(firm=firm)} == {"synced"}

    # Every issued invoice of a Synced account (no sync start date: all of them) is in QBO
    # exactly once, under its customer, with the app's total and open balance; but INV-0002.
    invoice_links = _links(conn, "invoice")
    issued = list(
        Invoice.objects.filter(firm=firm, state="issued", account_id__in=synced_accounts).order_by("id")
    )
    assert len(issued) >= 25
    for invoice in issued:
        if invoice.pk == clash.pk:
            continue
        assert invoice_links[invoice.pk].status == "synced", (invoice.number, invoice_links[invoice.pk])
        _assert_in_qbo(conn, invoice, customers)

    # Problem 1: the number is used in QBO by another customer: Error, a message saying so.
    link = invoice_links[clash.pk]
    assert (link.status, link.error_kind) == ("error", "docnumber_clash")
    assert clash.number in link.error_message and CLASH_CUSTOMER in link.error_message
    [still_theirs] = _qbo_invoices(conn, clash.number)  # untouched, and no second one
    assert still_theirs["Id"] == theirs["Id"] and still_theirs["CustomerRef"] == theirs["CustomerRef"]

    # Problem 2: the payment on it waits for it, and says so.
    payment_links = _links(conn, "payment")
    waiting = payment_links[waiting_payment.pk]
    assert waiting.status == "not_synced" and not waiting.qbo_id
    assert f"Waiting for invoice {clash.number}" in waiting.error_message
    # Every other payment of a Synced account is in QBO once, for its amount.
    for payment in Payment.objects.filter(firm=firm, state="recorded", account_id__in=synced_accounts):
        if payment.pk == waiting_payment.pk:
            continue
        plink = payment_links[payment.pk]
        assert plink.status == "synced", (payment.pk, plink.status, plink.error_message)
        qbo = QBOClient(conn).read("Payment", plink.qbo_id)
        assert _money(qbo["TotalAmt"]) == payment.amount

    # The fix: change the number (the invoice kind's Error offers it), then one more run.
    fixed = _renumber(clash)
    _run_until_idle(conn)
    clash.refresh_from_db()
    assert clash.number == fixed
    link = SyncLink.objects.get(connection=conn, kind="invoice", local_id=clash.pk)
    assert link.status == "synced" and not link.error_kind
    qbo = _assert_in_qbo(conn, clash, customers)
    assert _money(qbo["Balance"]) == clash.total - waiting_payment.amount
    waiting.refresh_from_db()
    assert waiting.status == "synced"
    qbo_payment = QBOClient(conn).read("Payment", waiting.qbo_id)
    assert [t["TxnId"] for line in qbo_payment["Line"] for t in line["LinkedTxn"]] == [link.qbo_id]
    assert _money(qbo_payment["TotalAmt"]) == waiting_payment.amount
    # The other customer's invoice still holds the old number, alone.
    assert [i["Id"] for i in _qbo_invoices(conn, "INV-0002")] == [theirs["Id"]]
    assert PaymentAllocation.objects.filter(invoice=clash).count() == 1


def _renumber(invoice: Invoice) -> str:
    """What the bookkeeper does from the Error: give the app's invoice a number QBO has not used."""
    renumbered = billing_services.invoice_renumber(invoice=invoice, number="INV-0002-A")
    return renumbered.number

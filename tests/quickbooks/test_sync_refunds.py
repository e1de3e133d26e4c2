"""The "refund" and "fee" record kinds (issue 11 item 1), end to end against qbo_sandbox over HTTP.

Refunds -> RefundReceipts, processing fees -> Purchases; a payment deleted in the app takes its
refunds and fee out of QuickBooks first, then itself. What QuickBooks holds is read back from the
sandbox.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from practice.billing import services as billing
from practice.clients.services import account_create
from practice.quickbooks import actions
from practice.quickbooks.models import SyncAttempt, SyncLink
from practice.quickbooks.statuses import SyncStatus
from tests.quickbooks.sync_support import link_of, make_due, run, set_up_for_billing
from tests.quickbooks.test_sync_payments import (
    DAY,
    UNDEPOSITED_FUNDS,
    dec,
    history,
    issue,
    pay,
    plink,
    qbo,
    writes,
)


@pytest.fixture
def conn(connection):
    return set_up_for_billing(connection)


@pytest.fixture
def service(firm):
    return billing.service_create(firm=firm, name="Bookkeeping", rate=Decimal("100.00"))


def account_of_type(sandbox, realm_id, account_type: str) -> str:
    """The first account of `account_type` in the sandbox's company."""
    found = sandbox.query(realm_id, f"SELECT * FROM Account WHERE AccountType = '{account_type}'")["Account"]
    return str(sorted(found, key=lambda a: int(a["Id"]))[0]["Id"])


@pytest.fixture
def bank(sandbox, realm_id) -> str:
    return account_of_type(sandbox, realm_id, "Bank")


@pytest.fixture
def expense(sandbox, realm_id) -> str:
    return account_of_type(sandbox, realm_id, "Expense")


def link(conn, kind: str, local_id: int) -> SyncLink:
    return SyncLink.objects.get(connection=conn, kind=kind, local_id=local_id)


def refund(payment, amount: str, reason: str = "Overpaid"):
    return billing.refund_record(payment=payment, date=DAY, amount=amount, reason=reason)


def refund_receipts(sandbox, realm_id, customer_id: str) -> list[dict]:
    statement = f"SELECT * FROM RefundReceipt WHERE CustomerRef = '{customer_id}'"
    return list(sandbox.query(realm_id, statement).get("RefundReceipt", []))


def purchases(sandbox, realm_id) -> list[dict]:
    found = sandbox.query(realm_id, "SELECT * FROM Purchase").get("Purchase", [])
    return [p for p in found if (p.get("PrivateNote") or "").startswith("Practice")]


def test_a_refund_reaches_quickbooks_and_the_books_agree(firm, conn, sandbox, realm_id, service):
    acct = account_create(firm=firm, name="Refund Co")
    inv = issue(firm, acct, service, "100.00")
    payment = pay(firm, acct, "150.00", [(inv, "100.00")], reference="CHK-9")
    back = refund(payment, "30.00")
    run(conn)

    rlink = link(conn, "refund", back.pk)
    assert rlink.status == SyncStatus.SYNCED and rlink.qbo_id and not rlink.error_message
    got = qbo(sandbox, realm_id, "RefundReceipt", rlink.qbo_id)
    customer_id = link_of(conn, acct).qbo_id
    assert got["CustomerRef"]["value"] == customer_id
    assert dec(got["TotalAmt"]) == Decimal("30.00")
    assert got["TxnDate"] == DAY.isoformat()
    assert got["DepositToAccountRef"]["value"] == UNDEPOSITED_FUNDS
    assert "PaymentRefNum" not in got  # not a bank account
    assert got["PrivateNote"] == f"Practice refund #{back.pk}: Overpaid"
    [line] = [ln for ln in got["Line"] if ln.get("DetailType") == "SalesItemLineDetail"]
    item = qbo(sandbox, realm_id, "Item", line["SalesItemLineDetail"]["ItemRef"]["value"])
    assert item["Name"] == "Refunds"
    assert history(rlink) == [("create_refund", "success")]

    # The payment's UnappliedAmt is amount − allocations (a refund does not change it) and the
    # payment is not in Error for it; the app's credit is that less the refunds, which QBO holds
    # as the RefundReceipts of the customer.
    qpay = qbo(sandbox, realm_id, "Payment", plink(conn, payment).qbo_id)
    assert plink(conn, payment).status == SyncStatus.SYNCED
    assert dec(qpay["UnappliedAmt"]) == Decimal("50.00")
    payment.refresh_from_db()
    refunded = sum(dec(r["TotalAmt"]) for r in refund_receipts(sandbox, realm_id, customer_id))
    assert dec(qpay["UnappliedAmt"]) - refunded == payment.unapplied == Decimal("20.00")
    customer = qbo(sandbox, realm_id, "Customer", customer_id)
    assert dec(customer["Balance"]) == -dec(qpay["UnappliedAmt"])  # RefundReceipts are not A/R

    # A second refund reuses the "Refunds" item; quiet runs afterwards send nothing.
    second = refund(payment, "20.00", reason="")
    run(conn)
    got2 = qbo(sandbox, realm_id, "RefundReceipt", link(conn, "refund", second.pk).qbo_id)
    assert got2["Line"][0]["SalesItemLineDetail"]["ItemRef"] == line["SalesItemLineDetail"]["ItemRef"]
    assert len(sandbox.query(realm_id, "SELECT * FROM Item WHERE Name = 'Refunds'")["Item"]) == 1
    before = writes(sandbox, realm_id)
    run(conn)
    run(conn)
    assert writes(sandbox, realm_id) == before
    assert history(link(conn, "refund", back.pk)) == [("create_refund", "success")]


def test_a_refund_from_a_bank_account_carries_a_reference(firm, conn, sandbox, realm_id, service, bank):
    conn.deposit_account_id = bank
    conn.save()
    acct = account_create(firm=firm, name="Bank Refund Co")
    payment = pay(firm, acct, "80.00", reference="CHK-77")
    back = refund(payment, "80.00")
    run(conn)
    got = qbo(sandbox, realm_id, "RefundReceipt", link(conn, "refund", back.pk).qbo_id)
    assert got["DepositToAccountRef"]["value"] == bank
    assert got["PaymentRefNum"] == "CHK-77"


def test_a_refund_waits_for_its_payment_and_goes_after_it(firm, conn, sandbox, realm_id, service):
    conn.sync_start_date = DAY
    conn.save()
    acct = account_create(firm=firm, name="Waiting Refund Co")
    old = issue(firm, acct, service, "50.00", day=DAY - datetime.timedelta(days=40))  # never sent
    payment = pay(firm, acct, "80.00", [(old, "50.00")])
    back = refund(payment, "30.00")
    run(conn)
    assert plink(conn, payment).status == SyncStatus.ERROR  # applied to an invoice QBO will not have
    rlink = link(conn, "refund", back.pk)
    assert rlink.status == SyncStatus.NOT_SYNCED and not rlink.qbo_id
    assert rlink.error_message == "Waiting for the payment of 2026-11-02 (80.00) to reach QuickBooks."
    assert history(rlink) == [("wait", "info")]
    before = writes(sandbox, realm_id)
    run(conn)  # still waiting: nothing sent, nothing recorded again
    assert writes(sandbox, realm_id) == before
    assert history(link(conn, "refund", back.pk)) == [("wait", "info")]

    # The person unapplies the old invoice: the payment goes, then its refund, in one run.
    billing.payment_unallocate(allocation=payment.allocations.get())
    run(conn)
    assert plink(conn, payment).status == SyncStatus.SYNCED
    rlink = link(conn, "refund", back.pk)
    assert rlink.status == SyncStatus.SYNCED and rlink.qbo_id and rlink.error_message == ""
    assert history(rlink) == [("wait", "info"), ("create_refund", "success")]


def test_processing_fee_is_an_expense_only_when_enabled(
    firm, conn, sandbox, realm_id, service, bank, expense
):
    conn.deposit_account_id = bank
    conn.fee_account_id = expense
    conn.save()
    acct = account_create(firm=firm, name="Fee Co")
    payment = pay(firm, acct, "100.00", processing_fee="2.95", method="card", reference="ch_1")
    run(conn)
    assert not SyncLink.objects.filter(connection=conn, kind="fee").exists()
    assert purchases(sandbox, realm_id) == []

    conn.fees_enabled = True
    conn.save()
    run(conn)
    flink = link(conn, "fee", payment.pk)
    assert flink.status == SyncStatus.SYNCED and flink.qbo_id
    [got] = purchases(sandbox, realm_id)
    assert got["Id"] == flink.qbo_id
    assert got["PaymentType"] == "Cash"
    assert got["AccountRef"]["value"] == bank
    assert got["TxnDate"] == DAY.isoformat()
    assert "EntityRef" not in got
    [line] = got["Line"]
    assert line["AccountBasedExpenseLineDetail"]["AccountRef"]["value"] == expense
    assert dec(line["Amount"]) == dec(got["TotalAmt"]) == Decimal("2.95")
    assert got["PrivateNote"].startswith(f"Practice processing fee of payment #{payment.pk}")
    assert history(flink) == [("create_fee", "success")]
    before = writes(sandbox, realm_id)
    run(conn)
    assert writes(sandbox, realm_id) == before


def test_a_fee_from_undeposited_funds_is_an_error_in_words(firm, conn, sandbox, realm_id, service, expense):
    conn.fees_enabled = True
    conn.fee_account_id = expense
    conn.save()
    acct = account_create(firm=firm, name="Fee Undeposited Co")
    payment = pay(firm, acct, "100.00", processing_fee="3.00")
    run(conn)
    flink = link(conn, "fee", payment.pk)
    assert flink.status == SyncStatus.ERROR
    assert "Choose a bank account" in flink.error_message
    assert purchases(sandbox, realm_id) == []
    before = SyncAttempt.objects.filter(link=flink).count()
    run(conn)
    assert SyncAttempt.objects.filter(link=flink).count() == before  # not decided again


def test_deleting_a_payment_deletes_its_refunds_and_fee_first(
    firm, conn, sandbox, realm_id, service, bank, expense
):
    conn.deposit_account_id = bank
    conn.fees_enabled = True
    conn.fee_account_id = expense
    conn.save()
    acct = account_create(firm=firm, name="Delete All Co")
    payment = pay(firm, acct, "90.00", processing_fee="1.50", reference="R-1")
    back = refund(payment, "10.00")
    run(conn)
    rid = link(conn, "refund", back.pk).qbo_id
    fid = link(conn, "fee", payment.pk).qbo_id
    pid = plink(conn, payment).qbo_id
    assert rid and fid and pid

    seen = len(sandbox.requests(realm_id))
    billing.payment_delete(payment=payment, reason="Bounced")
    run(conn)
    assert sandbox.read(realm_id, "RefundReceipt", rid) is None
    assert sandbox.read(realm_id, "Purchase", fid) is None
    assert sandbox.read(realm_id, "Payment", pid) is None
    # The payment's delete went after its refund's and fee's (each kind in batches of its own).
    sent = [r for r in sandbox.requests(realm_id)[seen:] if r["operation"] in ("batch", "delete")]
    assert len(sent) == 3
    for kind, local_id in (("refund", back.pk), ("fee", payment.pk), ("payment", payment.pk)):
        lk = link(conn, kind, local_id)
        assert lk.status == SyncStatus.SYNCED and lk.qbo_id == ""
        assert history(lk)[-1] == ("delete", "success")
        assert [op for op, _ in history(lk)].count("delete") == 1
    before = writes(sandbox, realm_id)
    run(conn)
    assert writes(sandbox, realm_id) == before


@pytest.mark.parametrize("fault", ["item_unanswered", "item_500"])
def test_an_unknown_outcome_leaves_exactly_one_refund_receipt(firm, conn, sandbox, realm_id, service, fault):
    acct = account_create(firm=firm, name="Unknown Refund Co")
    payment = pay(firm, acct, "60.00")
    run(conn)
    back = refund(payment, "60.00")
    sandbox.inject_batch_item_fault(realm_id, fault, bid="b0", entity="RefundReceipt", committed=True)
    run(conn)
    assert link(conn, "refund", back.pk).status == SyncStatus.SYNCING
    make_due(conn)
    run(conn)
    rlink = link(conn, "refund", back.pk)
    assert rlink.status == SyncStatus.SYNCED and rlink.qbo_id
    ours = [
        r
        for r in refund_receipts(sandbox, realm_id, link_of(conn, acct).qbo_id)
        if (r.get("PrivateNote") or "").startswith(f"Practice refund #{back.pk}")
    ]
    assert [r["Id"] for r in ours] == [rlink.qbo_id]


def test_unsync_payment_deletes_it_and_its_refunds_and_fee_and_sync_brings_them_back(
    firm, conn, sandbox, realm_id, service, bank, expense
):
    conn.deposit_account_id = bank
    conn.fees_enabled = True
    conn.fee_account_id = expense
    conn.save()
    acct = account_create(firm=firm, name="Unsync Payment Co")
    payment = pay(firm, acct, "70.00", processing_fee="2.00", reference="U-1")
    back = refund(payment, "20.00")
    run(conn)
    rid, fid, pid = (
        link(conn, "refund", back.pk).qbo_id,
        link(conn, "fee", payment.pk).qbo_id,
        plink(conn, payment).qbo_id,
    )
    assert rid and fid and pid

    actions.record_unsync(firm=firm, kind="payment", local_id=payment.pk)
    seen = len(sandbox.requests(realm_id))
    run(conn)
    assert sandbox.read(realm_id, "RefundReceipt", rid) is None
    assert sandbox.read(realm_id, "Purchase", fid) is None
    assert sandbox.read(realm_id, "Payment", pid) is None
    assert len([r for r in sandbox.requests(realm_id)[seen:] if r["operation"] in ("batch", "delete")]) == 3
    plk = plink(conn, payment)
    assert plk.status == SyncStatus.SKIPPED and plk.qbo_id == ""
    assert [op for op, _ in history(plk)] == ["create_payment", "unsync", "delete"]
    assert [op for op, _ in history(link(conn, "refund", back.pk))] == ["create_refund", "delete"]
    before = writes(sandbox, realm_id)
    run(conn)
    assert writes(sandbox, realm_id) == before

    # "Sync" again: the payment, its refund and its fee are made again, once.
    actions.record_sync(firm=firm, kind="payment", local_id=payment.pk)
    run(conn)
    plk = plink(conn, payment)
    assert plk.status == SyncStatus.SYNCED and plk.qbo_id and plk.qbo_id != pid
    for kind, local_id in (("refund", back.pk), ("fee", payment.pk)):
        lk = link(conn, kind, local_id)
        assert lk.status == SyncStatus.SYNCED and lk.qbo_id
    assert len(purchases(sandbox, realm_id)) == 1
    before = writes(sandbox, realm_id)
    run(conn)
    assert writes(sandbox, realm_id) == before


def test_the_payment_page_shows_its_refunds_and_fee_in_quickbooks(
    firm, conn, sandbox, realm_id, service, bank, expense, client_as
):
    conn.deposit_account_id = bank
    conn.fees_enabled = True
    conn.fee_account_id = expense
    conn.save()
    acct = account_create(firm=firm, name="Page Co")
    payment = pay(firm, acct, "50.00", processing_fee="1.25")
    back = refund(payment, "5.00")
    waiting = refund(pay(firm, acct, "9.00", sync_to_quickbooks=False), "1.00")
    run(conn)
    html = client_as("owner").get(reverse("billing:payment_detail", args=[payment.pk])).content.decode()
    rid = link(conn, "refund", back.pk).qbo_id
    fid = link(conn, "fee", payment.pk).qbo_id
    assert f"In QuickBooks as a refund receipt (QBO Id {rid})." in html
    assert f"/app/refundreceipt?txnId={rid}&amp;realmId={realm_id}" in html
    assert f"In QuickBooks as an expense for the processing fee (QBO Id {fid})." in html
    assert f"/app/expense?txnId={fid}&amp;realmId={realm_id}" in html
    assert waiting.pk != back.pk


def test_turning_fees_off_keeps_expenses_but_unsync_or_delete_still_removes_them(
    firm, conn, sandbox, realm_id, service, bank, expense
):
    conn.deposit_account_id = bank
    conn.fees_enabled = True
    conn.fee_account_id = expense
    conn.save()
    acct = account_create(firm=firm, name="Fees Off Co")
    kept = pay(firm, acct, "30.00", processing_fee="1.00")
    unsynced = pay(firm, acct, "40.00", processing_fee="1.10")
    run(conn)
    assert len(purchases(sandbox, realm_id)) == 2
    conn.fees_enabled = False
    conn.save()
    run(conn)
    assert len(purchases(sandbox, realm_id)) == 2  # the setting off does not delete what is there
    actions.record_unsync(firm=firm, kind="payment", local_id=unsynced.pk)
    run(conn)
    assert [p["Id"] for p in purchases(sandbox, realm_id)] == [link(conn, "fee", kept.pk).qbo_id]
    assert link(conn, "fee", unsynced.pk).qbo_id == ""


def test_a_failing_fee_is_on_the_problems_page_and_retry_decides_it_again(
    firm, conn, sandbox, realm_id, service, expense, bank, client_as
):
    """Expenses (fees) and refunds are categories of the problems page: the row names the
    payment, opens the payment's page (fees and refunds live there), and its Retry works."""
    from practice.quickbooks import problems

    conn.fees_enabled = True
    conn.fee_account_id = expense
    conn.save()
    acct = account_create(firm=firm, name="Fee Problem Co")
    payment = pay(firm, acct, "100.00", processing_fee="3.00")
    run(conn)
    assert link(conn, "fee", payment.pk).status == SyncStatus.ERROR
    counts = {c.kind: c.count for c in problems.error_counts(conn)}
    assert counts["fee"] == 1
    (row,) = problems.failing_records(firm=firm, connection=conn, kind="fee")
    assert row.name == f"Processing fee of 3.00 on {payment.date.isoformat()} · Fee Problem Co"
    assert row.url == reverse("billing:payment_detail", kwargs={"pk": payment.pk})
    page = client_as("owner").get(reverse("quickbooks:problems") + "?kind=fee")
    assert page.status_code == 200 and "Processing fee of 3.00" in page.content.decode()

    # The owner fixes the cause (a bank account to pay fees from) and presses Retry.
    conn.deposit_account_id = bank
    conn.save()
    response = client_as("owner").post(reverse("quickbooks:problem_retry", args=["fee", payment.pk]))
    assert response.status_code == 302  # back to the problems page
    assert link(conn, "fee", payment.pk).status == SyncStatus.NOT_SYNCED
    run(conn)
    fixed = link(conn, "fee", payment.pk)
    assert fixed.status == SyncStatus.SYNCED and fixed.qbo_id
    assert len(purchases(sandbox, realm_id)) == 1
    assert problems.failing_records(firm=firm, connection=conn, kind="fee") == []

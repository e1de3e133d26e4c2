"""The "payment" record kind (issue 10 item 3), end to end against qbo_sandbox over HTTP.

Invoices are pushed by the invoice kind in the same runs; payments are recorded, applied,
unapplied and deleted through the billing services, and what QuickBooks holds is read back from
the sandbox: the Payment's fields, every invoice's Balance, and each customer's open balance,
which must equal the app's (invoice balances minus unapplied credit).
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest

from practice.billing import services as billing
from practice.billing.models import Invoice, Payment, PaymentState
from practice.clients.services import account_create
from practice.quickbooks import actions
from practice.quickbooks.connection.client import QBOClient
from practice.quickbooks.models import SyncAttempt, SyncLink
from practice.quickbooks.statuses import SyncStatus
from practice.quickbooks.sync import engine, realm_facts
from tests.quickbooks.sync_support import link_of, make_due, run, set_up_for_billing

DAY = datetime.date(2026, 11, 2)
UNDEPOSITED_FUNDS = "4"  # the sandbox's sample company (qbo_sandbox/seed.py)
CHECK_METHOD = "2"


@pytest.fixture
def conn(connection, invoice_kind):
    return set_up_for_billing(connection)


@pytest.fixture
def invoice_kind():
    """The invoice kind the payments depend on, registered by practice.quickbooks.sync.kinds."""
    names = [k.name for k in engine.kinds()]
    assert names.index("customer") < names.index("invoice") < names.index("payment")


@pytest.fixture
def service(firm):
    return billing.service_create(firm=firm, name="Bookkeeping", rate=Decimal("100.00"))


def issue(firm, account, service, amount: str, *, day: datetime.date = DAY, number: str = "") -> Invoice:
    invoice = billing.invoice_create(
        firm=firm,
        account=account,
        issue_date=day,
        due_date=day + datetime.timedelta(days=30),
        number=number,
        lines=[{"service": service, "quantity": "1", "rate": amount, "description": "Work"}],
    )
    return billing.invoice_issue(invoice=invoice)


def pay(firm, account, amount: str, allocations=(), **fields: Any) -> Payment:
    fields.setdefault("date", DAY)
    fields.setdefault("method", "check")
    return billing.payment_record(
        firm=firm,
        account=account,
        amount=amount,
        allocations=[(inv, Decimal(a)) for inv, a in allocations],
        **fields,
    )


def plink(conn, payment) -> SyncLink:
    return SyncLink.objects.get(connection=conn, kind="payment", local_id=payment.pk)


def ilink(conn, invoice) -> SyncLink:
    return SyncLink.objects.get(connection=conn, kind="invoice", local_id=invoice.pk)


def qbo(sandbox, realm_id, entity: str, qbo_id: str) -> dict[str, Any]:
    found = sandbox.read(realm_id, entity, qbo_id)
    assert found is not None, f"{entity} {qbo_id} is not in QuickBooks"
    return found


def qbo_payments(sandbox, realm_id, conn, account) -> list[dict[str, Any]]:
    """The QBO payments of `account`'s customer (the sample company has payments of its own)."""
    customer = SyncLink.objects.get(connection=conn, kind="customer", local_id=account.pk).qbo_id
    statement = f"SELECT * FROM Payment WHERE CustomerRef = '{customer}'"
    return list(sandbox.query(realm_id, statement).get("Payment", []))


def set_prefs(conn, section: str, **values: Any) -> None:
    """Change the company's Preferences the way a person would in QuickBooks."""
    client = QBOClient(conn)
    prefs = client.preferences()
    body = {
        "Id": prefs["Id"],
        "SyncToken": prefs["SyncToken"],
        section: {**(prefs.get(section) or {}), **values},
    }
    client.update("Preferences", body, request_id=f"prefs-{section}-{prefs['SyncToken']}", sparse=True)
    # QBO tells of the change (webhook, CDC sweep: tests/quickbooks/test_realm_facts.py), which
    # makes the next run read the Preferences again.
    realm_facts.note_changes(conn.pk, [("Preferences", None)])


def writes(sandbox, realm_id) -> int:
    """Write requests QBO received so far (batches and single writes)."""
    return sum(
        1
        for r in sandbox.requests(realm_id)
        if r["operation"] in ("batch", "create", "update", "delete", "void")
    )


def dec(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def assert_books_match(conn, sandbox, realm_id, account) -> None:
    """Per customer: each synced invoice's Balance in QBO is the app's balance, and the customer's
    open balance in QBO is the app's (open invoices minus unapplied credit of synced payments)."""
    customer = qbo(sandbox, realm_id, "Customer", link_of(conn, account).qbo_id)
    expected = Decimal("0.00")
    for invoice in Invoice.objects.filter(account=account, state="issued"):
        link = SyncLink.objects.filter(connection=conn, kind="invoice", local_id=invoice.pk).first()
        if link is None or not link.qbo_id:
            continue
        assert dec(qbo(sandbox, realm_id, "Invoice", link.qbo_id)["Balance"]) == invoice.balance, (
            invoice.number
        )
        expected += invoice.balance
    for payment in Payment.objects.filter(account=account, state=PaymentState.RECORDED):
        link = SyncLink.objects.filter(connection=conn, kind="payment", local_id=payment.pk).first()
        if link is None or not link.qbo_id:
            continue
        qbo_payment = qbo(sandbox, realm_id, "Payment", link.qbo_id)
        assert dec(qbo_payment["UnappliedAmt"]) == payment.unapplied
        expected -= payment.unapplied
    assert dec(customer["Balance"]) == expected


def history(link) -> list[tuple[str, str]]:
    return list(SyncAttempt.objects.filter(link=link).order_by("id").values_list("operation", "outcome"))


# --------------------------------------------------------------------------------------------


def test_a_payment_across_several_invoices_partly_applied_with_credit_left(
    firm, conn, sandbox, realm_id, service
):
    acct = account_create(firm=firm, name="Several Invoices Co")
    a = issue(firm, acct, service, "100.00")
    b = issue(firm, acct, service, "200.00")
    c = issue(firm, acct, service, "300.00")
    payment = pay(firm, acct, "450.00", [(a, "100.00"), (b, "150.00")], reference="CHK-1001")
    run(conn)

    link = plink(conn, payment)
    assert link.status == SyncStatus.SYNCED and link.qbo_id and not link.error_message
    got = qbo(sandbox, realm_id, "Payment", link.qbo_id)
    assert got["CustomerRef"]["value"] == link_of(conn, acct).qbo_id
    assert dec(got["TotalAmt"]) == Decimal("450.00")
    assert got["TxnDate"] == DAY.isoformat()
    assert got["PaymentRefNum"] == "CHK-1001"
    assert got["DepositToAccountRef"]["value"] == UNDEPOSITED_FUNDS
    assert got["PaymentMethodRef"]["value"] == CHECK_METHOD
    assert got["PrivateNote"] == f"Practice payment #{payment.pk}"
    applied = sorted((ln["LinkedTxn"][0]["TxnId"], dec(ln["Amount"])) for ln in got["Line"])
    assert applied == sorted(
        [(ilink(conn, a).qbo_id, Decimal("100.00")), (ilink(conn, b).qbo_id, Decimal("150.00"))]
    )
    assert all(ln["LinkedTxn"][0]["TxnType"] == "Invoice" for ln in got["Line"])
    assert dec(got["UnappliedAmt"]) == Decimal("200.00") == payment.unapplied
    # QBO's invoices owe what the app's do: A paid, B partly, C untouched.
    balances = {
        inv.number: dec(qbo(sandbox, realm_id, "Invoice", ilink(conn, inv).qbo_id)["Balance"])
        for inv in (a, b, c)
    }
    assert balances == {a.number: Decimal("0.00"), b.number: Decimal("50.00"), c.number: Decimal("300.00")}
    assert_books_match(conn, sandbox, realm_id, acct)
    assert history(link) == [("create_payment", "success")]

    # Nothing changed: the next runs send nothing and record nothing.
    before = writes(sandbox, realm_id)
    run(conn)
    run(conn)
    assert writes(sandbox, realm_id) == before
    assert history(plink(conn, payment)) == [("create_payment", "success")]


def test_a_payment_waits_for_its_invoice_and_goes_when_the_invoice_does(
    firm, conn, sandbox, realm_id, service
):
    acct = account_create(firm=firm, name="Waiting Invoice Co")
    run(conn)  # the account's customer is linked; nothing else yet
    inv = issue(firm, acct, service, "120.00")
    payment = pay(firm, acct, "120.00", [(inv, "120.00")])
    # The invoice's write fails in flight (its batch item gets a SystemFault, nothing written).
    sandbox.inject_batch_item_fault(realm_id, "item_500", bid="b0", entity="Invoice")
    run(conn)
    assert ilink(conn, inv).status == SyncStatus.SYNCING
    link = plink(conn, payment)
    assert link.status == SyncStatus.NOT_SYNCED and not link.qbo_id and not link.batch_request_id
    assert link.error_message == f"Waiting for invoice {inv.number} to reach QuickBooks."
    assert history(link) == [("wait", "info")]
    assert qbo_payments(sandbox, realm_id, conn, acct) == []
    # Waiting is not work: another run before the retry is due records nothing more.
    run(conn)
    assert history(plink(conn, payment)) == [("wait", "info")]
    # The invoice's retry is due: it reaches QBO, and the payment follows in the same run.
    make_due(conn)
    run(conn)
    link = plink(conn, payment)
    assert ilink(conn, inv).status == SyncStatus.SYNCED
    assert link.status == SyncStatus.SYNCED and not link.error_message
    assert len(qbo_payments(sandbox, realm_id, conn, acct)) == 1
    assert dec(qbo(sandbox, realm_id, "Invoice", ilink(conn, inv).qbo_id)["Balance"]) == Decimal("0.00")
    assert_books_match(conn, sandbox, realm_id, acct)


def test_a_payment_for_an_invoice_in_error_says_so_and_goes_once_it_is_fixed(
    firm, conn, sandbox, realm_id, service
):
    set_prefs(conn, "SalesFormsPrefs", CustomTxnNumbers=True)
    acct, other = account_create(firm=firm, name="Clash Payer Co"), account_create(firm=firm, name="Other Co")
    run(conn)
    # QBO already has an INV-0042, of another customer: the app's INV-0042 cannot go.
    QBOClient(conn).create(
        "Invoice",
        {
            "CustomerRef": {"value": link_of(conn, other).qbo_id},
            "DocNumber": "INV-0042",
            "Line": [
                {
                    "Amount": 5,
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
                }
            ],
        },
        request_id="someone-else-made-inv-0042",
    )
    inv = issue(firm, acct, service, "80.00", number="INV-0042")
    payment = pay(firm, acct, "80.00", [(inv, "50.00")])
    run(conn)
    assert ilink(conn, inv).status == SyncStatus.ERROR
    link = plink(conn, payment)
    assert link.status == SyncStatus.NOT_SYNCED
    assert link.error_message == (
        "Waiting for invoice INV-0042 to reach QuickBooks: it is in Error in QuickBooks sync; fix it first."
    )
    assert qbo_payments(sandbox, realm_id, conn, acct) == []
    # The fix for the invoice (a number QuickBooks does not use); the payment follows it.
    actions.invoice_renumber(firm=firm, invoice=inv, number="INV-0043")
    run(conn)
    assert ilink(conn, inv).status == SyncStatus.SYNCED
    link = plink(conn, payment)
    assert link.status == SyncStatus.SYNCED and not link.error_message
    assert len(qbo_payments(sandbox, realm_id, conn, acct)) == 1
    assert history(link) == [("wait", "info"), ("create_payment", "success")]
    assert_books_match(conn, sandbox, realm_id, acct)


def test_an_allocation_change_is_a_sparse_update_of_the_payment(firm, conn, sandbox, realm_id, service):
    acct = account_create(firm=firm, name="Reallocate Co")
    a = issue(firm, acct, service, "100.00")
    b = issue(firm, acct, service, "100.00")
    payment = pay(firm, acct, "150.00", [(a, "100.00"), (b, "30.00")])
    run(conn)
    first = plink(conn, payment)
    assert first.status == SyncStatus.SYNCED
    # Take it off A, put more on B.
    billing.payment_unallocate(allocation=payment.allocations.get(invoice=a))
    billing.payment_allocate(payment=payment, invoice=b, amount="70.00")
    before = writes(sandbox, realm_id)
    run(conn)
    assert writes(sandbox, realm_id) == before + 1  # one batch with the update
    link = plink(conn, payment)
    assert link.status == SyncStatus.SYNCED and link.qbo_id == first.qbo_id
    assert int(link.qbo_sync_token) == int(first.qbo_sync_token) + 1
    got = qbo(sandbox, realm_id, "Payment", link.qbo_id)
    assert [(ln["LinkedTxn"][0]["TxnId"], dec(ln["Amount"])) for ln in got["Line"]] == [
        (ilink(conn, b).qbo_id, Decimal("100.00"))
    ]
    assert dec(got["UnappliedAmt"]) == Decimal("50.00")
    assert dec(qbo(sandbox, realm_id, "Invoice", ilink(conn, a).qbo_id)["Balance"]) == Decimal("100.00")
    assert_books_match(conn, sandbox, realm_id, acct)
    assert history(link) == [("create_payment", "success"), ("update", "success")]
    run(conn)
    assert writes(sandbox, realm_id) == before + 1


def test_a_payment_deleted_in_the_app_is_deleted_in_quickbooks(firm, conn, sandbox, realm_id, service):
    acct = account_create(firm=firm, name="Delete Payment Co")
    inv = issue(firm, acct, service, "100.00")
    payment = pay(firm, acct, "60.00", [(inv, "60.00")])
    never_sent = pay(firm, acct, "10.00", sync_to_quickbooks=False)
    run(conn)
    qbo_id = plink(conn, payment).qbo_id
    assert qbo_id
    billing.payment_delete(payment=payment, reason="Bounced")
    billing.payment_delete(payment=never_sent)
    run(conn)
    assert sandbox.read(realm_id, "Payment", qbo_id) is None
    link = plink(conn, payment)
    assert link.status == SyncStatus.SYNCED and link.qbo_id == "" and not link.batch_request_id
    assert history(link) == [("create_payment", "success"), ("delete", "success")]
    assert not SyncLink.objects.filter(connection=conn, kind="payment", local_id=never_sent.pk).exists()
    assert dec(qbo(sandbox, realm_id, "Invoice", ilink(conn, inv).qbo_id)["Balance"]) == Decimal("100.00")
    assert_books_match(conn, sandbox, realm_id, acct)
    before = writes(sandbox, realm_id)
    run(conn)
    assert writes(sandbox, realm_id) == before
    assert len(history(plink(conn, payment))) == 2


@pytest.mark.parametrize("connection_default", [True, False])
def test_manual_payments_follow_their_switch_or_the_connection_default(
    firm, conn, sandbox, realm_id, service, connection_default
):
    conn.sync_manual_payments = connection_default
    conn.save()
    acct = account_create(firm=firm, name="Manual Payments Co")
    on = pay(firm, acct, "10.00", sync_to_quickbooks=True)
    off = pay(firm, acct, "20.00", sync_to_quickbooks=False)
    default = pay(firm, acct, "30.00")  # sync_to_quickbooks None: the connection decides
    from_processor = pay(firm, acct, "40.00", created_manually=False, sync_to_quickbooks=False)
    run(conn)
    sent = {dec(p["TotalAmt"]) for p in qbo_payments(sandbox, realm_id, conn, acct)}
    expected = {Decimal("10.00"), Decimal("40.00")} | ({Decimal("30.00")} if connection_default else set())
    assert sent == expected
    linked = set(SyncLink.objects.filter(connection=conn, kind="payment").values_list("local_id", flat=True))
    assert linked == {on.pk, from_processor.pk} | ({default.pk} if connection_default else set())
    assert off.pk not in linked
    assert_books_match(conn, sandbox, realm_id, acct)


def test_payments_of_an_unsynced_account_wait_and_go_once_when_it_is_synced_again(
    firm, conn, sandbox, realm_id, service
):
    acct = account_create(firm=firm, name="Unsync Resync Co")
    first = pay(firm, acct, "25.00")
    run(conn)
    customer = link_of(conn, acct)
    assert customer.status == SyncStatus.SYNCED and plink(conn, first).status == SyncStatus.SYNCED
    # A person unsyncs the account; billing goes on meanwhile.
    SyncLink.objects.filter(pk=customer.pk).update(status=SyncStatus.SKIPPED)
    inv = issue(firm, acct, service, "90.00")
    second = pay(firm, acct, "100.00", [(inv, "90.00")])
    run(conn)
    run(conn)
    link = plink(conn, second)
    assert link.status == SyncStatus.NOT_SYNCED
    assert link.error_message == "Waiting for the account “Unsync Resync Co” to be synced to QuickBooks."
    assert history(link) == [("wait", "info")]
    assert len(qbo_payments(sandbox, realm_id, conn, acct)) == 1
    # Synced again: everything pending goes, once.
    SyncLink.objects.filter(pk=customer.pk).update(status=SyncStatus.SYNCED)
    run(conn)
    run(conn)
    assert plink(conn, second).status == SyncStatus.SYNCED
    assert ilink(conn, inv).status == SyncStatus.SYNCED
    assert sorted(dec(p["TotalAmt"]) for p in qbo_payments(sandbox, realm_id, conn, acct)) == [
        Decimal("25.00"),
        Decimal("100.00"),
    ]
    assert history(plink(conn, second)) == [("wait", "info"), ("create_payment", "success")]
    assert_books_match(conn, sandbox, realm_id, acct)


@pytest.mark.parametrize("fault", ["item_unanswered", "item_500"])
def test_an_unknown_outcome_in_a_batch_leaves_exactly_one_payment(
    firm, conn, sandbox, realm_id, service, fault
):
    """The payment's item is written but its answer is lost: it goes out alone, is first looked
    for (by customer, date, total and our marker) and linked, never written twice."""
    acct = account_create(firm=firm, name="Unknown Outcome Co")
    inv = issue(firm, acct, service, "70.00")
    run(conn)
    # Another payment of the same customer, day and amount, made in QBO by a person: not ours.
    QBOClient(conn).create(
        "Payment",
        {"CustomerRef": {"value": link_of(conn, acct).qbo_id}, "TotalAmt": 70, "TxnDate": DAY.isoformat()},
        request_id="person-made-payment",
    )
    payment = pay(firm, acct, "70.00", [(inv, "70.00")])
    sandbox.inject_batch_item_fault(realm_id, fault, bid="b0", entity="Payment", committed=True)
    run(conn)
    link = plink(conn, payment)
    assert link.status == SyncStatus.SYNCING and link.pending_body["alone"]
    make_due(conn)
    run(conn)
    link = plink(conn, payment)
    assert link.status == SyncStatus.SYNCED and link.qbo_id
    found = SyncAttempt.objects.filter(link=link, outcome="success").get()
    assert found.message.startswith("Found in QuickBooks")
    ours = [
        p
        for p in qbo_payments(sandbox, realm_id, conn, acct)
        if (p.get("PrivateNote") or "").startswith("Practice")
    ]
    assert [p["Id"] for p in ours] == [link.qbo_id]
    assert len(qbo_payments(sandbox, realm_id, conn, acct)) == 2
    # The person's own payment stays unapplied credit; ours paid the invoice.
    assert dec(qbo(sandbox, realm_id, "Invoice", ilink(conn, inv).qbo_id)["Balance"]) == Decimal("0.00")
    before = writes(sandbox, realm_id)
    run(conn)
    assert writes(sandbox, realm_id) == before


def test_a_dropped_batch_is_replayed_and_leaves_exactly_one_payment(
    firm, conn, sandbox, realm_id, service, settings
):
    settings.QBO_TRANSIENT_RETRIES = 0
    acct = account_create(firm=firm, name="Dropped Batch Co")
    run(conn)
    payment = pay(firm, acct, "33.00")
    sandbox.inject_fault(realm_id, "drop", count=1, operation="batch")
    run(conn)
    assert plink(conn, payment).status == SyncStatus.SYNCING
    make_due(conn)
    run(conn)
    assert plink(conn, payment).status == SyncStatus.SYNCED
    assert len(qbo_payments(sandbox, realm_id, conn, acct)) == 1
    assert_books_match(conn, sandbox, realm_id, acct)


def test_an_invoice_that_will_never_sync_makes_the_payment_an_error_that_says_what_to_do(
    firm, conn, sandbox, realm_id, service
):
    conn.sync_start_date = DAY
    conn.save()
    acct = account_create(firm=firm, name="Before Start Co")
    old = issue(firm, acct, service, "40.00", day=DAY - datetime.timedelta(days=10))
    new = issue(firm, acct, service, "60.00")
    payment = pay(firm, acct, "100.00", [(old, "40.00"), (new, "60.00")])
    run(conn)
    link = plink(conn, payment)
    assert link.status == SyncStatus.ERROR and link.error_kind == "invoice_not_synced"
    assert link.error_message.startswith(
        f"This payment is applied to invoice {old.number}, which is dated before the QuickBooks sync "
        f"start date ({DAY.isoformat()}) and so is not sent to QuickBooks."
    )
    assert "unapply it from this payment" in link.error_message
    assert qbo_payments(sandbox, realm_id, conn, acct) == []
    # Decided once: more runs record nothing.
    run(conn)
    assert history(plink(conn, payment)) == [("check", "error")]
    # The fix: unapply the old invoice; the payment goes with the rest as credit.
    billing.payment_unallocate(allocation=payment.allocations.get(invoice=old))
    run(conn)
    link = plink(conn, payment)
    assert link.status == SyncStatus.SYNCED and not link.error_message
    got = qbo(sandbox, realm_id, "Payment", link.qbo_id)
    assert dec(got["UnappliedAmt"]) == Decimal("40.00")
    assert_books_match(conn, sandbox, realm_id, acct)


def test_a_payment_of_a_skipped_invoice_is_an_error_until_the_invoice_syncs_again(
    firm, conn, sandbox, realm_id, service
):
    acct = account_create(firm=firm, name="Skipped Invoice Co")
    run(conn)
    inv = issue(firm, acct, service, "40.00")
    SyncLink.objects.create(
        firm=firm, connection=conn, kind="invoice", local_id=inv.pk, status=SyncStatus.SKIPPED
    )
    payment = pay(firm, acct, "40.00", [(inv, "40.00")])
    run(conn)
    link = plink(conn, payment)
    assert link.status == SyncStatus.ERROR
    assert f"invoice {inv.number}, which is set not to sync with QuickBooks (Skipped)" in link.error_message
    # The invoice is synced again: the payment is decided again without a Retry.
    SyncLink.objects.filter(connection=conn, kind="invoice", local_id=inv.pk).update(
        status=SyncStatus.NOT_SYNCED
    )
    run(conn)
    assert plink(conn, payment).status == SyncStatus.SYNCED
    assert_books_match(conn, sandbox, realm_id, acct)


def test_a_long_reference_is_cut_for_quickbooks_and_kept_whole_in_the_memo(firm, conn, sandbox, realm_id):
    acct = account_create(firm=firm, name="Long Reference Co")
    reference = "stripe_ch_3PqXYZabcdefghijklmnop"
    payment = pay(firm, acct, "15.00", reference=reference, method="card")
    run(conn)
    link = plink(conn, payment)
    got = qbo(sandbox, realm_id, "Payment", link.qbo_id)
    assert got["PaymentRefNum"] == reference[:21]
    assert got["PrivateNote"] == f"Practice payment #{payment.pk} (reference: {reference})"
    assert "PaymentMethodRef" not in got  # the sample company has no plain "card" method
    ((outcome, message),) = SyncAttempt.objects.filter(link=link).values_list("outcome", "message")
    assert outcome == "success" and f"“{reference}”" in message and f"“{reference[:21]}”" in message


def test_quickbooks_refusing_the_amounts_is_an_error_in_words(firm, conn, sandbox, realm_id, service):
    acct = account_create(firm=firm, name="Refused Amount Co")
    inv = issue(firm, acct, service, "100.00")
    run(conn)
    # Someone applied 30.00 to the invoice inside QuickBooks.
    QBOClient(conn).create(
        "Payment",
        {
            "CustomerRef": {"value": link_of(conn, acct).qbo_id},
            "TotalAmt": 30,
            "Line": [{"Amount": 30, "LinkedTxn": [{"TxnId": ilink(conn, inv).qbo_id, "TxnType": "Invoice"}]}],
        },
        request_id="person-applies-in-qbo",
    )
    payment = pay(firm, acct, "100.00", [(inv, "100.00")])
    run(conn)
    link = plink(conn, payment)
    assert link.status == SyncStatus.ERROR and link.error_code == "6000"
    assert "no longer has that balance in QuickBooks" in link.error_message
    assert len(qbo_payments(sandbox, realm_id, conn, acct)) == 1


def test_quickbooks_applying_less_than_the_app_is_an_error_naming_both_amounts(
    firm, conn, sandbox, realm_id, service
):
    sandbox.set_config(reject_overapplied_payments=False)
    acct = account_create(firm=firm, name="Applied Less Co")
    inv = issue(firm, acct, service, "100.00")
    run(conn)
    QBOClient(conn).create(
        "Payment",
        {
            "CustomerRef": {"value": link_of(conn, acct).qbo_id},
            "TotalAmt": 30,
            "Line": [{"Amount": 30, "LinkedTxn": [{"TxnId": ilink(conn, inv).qbo_id, "TxnType": "Invoice"}]}],
        },
        request_id="person-applies-in-qbo-2",
    )
    payment = pay(firm, acct, "100.00", [(inv, "100.00")])
    run(conn)
    link = plink(conn, payment)
    assert link.status == SyncStatus.ERROR and link.error_kind == "amount_mismatch" and link.qbo_id
    assert "it leaves 30.00 unapplied where the app leaves 0.00" in link.error_message
    before = writes(sandbox, realm_id)
    run(conn)
    assert writes(sandbox, realm_id) == before  # an Error waits for a person


def test_unapplying_and_deleting_payments_lets_their_invoices_be_voided_in_the_same_run(
    firm, conn, sandbox, realm_id, service
):
    """QBO refuses to void an invoice with a payment applied: the payment's update goes with the
    round's writes and its delete before the invoices' voids (reverse dependency order)."""
    acct = account_create(firm=firm, name="Void After Unapply Co")
    one = issue(firm, acct, service, "50.00")
    two = issue(firm, acct, service, "60.00")
    kept = pay(firm, acct, "50.00", [(one, "50.00")])
    gone = pay(firm, acct, "60.00", [(two, "60.00")])
    run(conn)
    billing.payment_unallocate(allocation=kept.allocations.get())
    billing.invoice_void(invoice=one)
    billing.payment_delete(payment=gone)
    billing.invoice_void(invoice=two)
    run(conn)
    for inv in (one, two):
        link = ilink(conn, inv)
        assert link.status == SyncStatus.SYNCED and not link.error_message, link.error_message
        assert dec(qbo(sandbox, realm_id, "Invoice", link.qbo_id)["TotalAmt"]) == Decimal("0.00")
    got = qbo(sandbox, realm_id, "Payment", plink(conn, kept).qbo_id)
    assert got["Line"] == [] and dec(got["UnappliedAmt"]) == Decimal("50.00")
    assert plink(conn, gone).qbo_id == "" and len(qbo_payments(sandbox, realm_id, conn, acct)) == 1
    assert_books_match(conn, sandbox, realm_id, acct)


def test_a_run_with_nothing_to_do_reads_no_allocations(firm, conn, sandbox, realm_id, service):
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    acct = account_create(firm=firm, name="Quiet Run Co")
    invoices = [issue(firm, acct, service, "10.00") for _ in range(3)]
    for inv in invoices:
        pay(firm, acct, "10.00", [(inv, "10.00")])
    run(conn)
    assert set(SyncLink.objects.filter(connection=conn, kind="payment").values_list("status", flat=True)) == {
        SyncStatus.SYNCED
    }
    with CaptureQueriesContext(db) as queries:
        run(conn)
    assert not [q["sql"] for q in queries.captured_queries if "billing_paymentallocation" in q["sql"]]


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("2050", "A value is longer than QuickBooks allows"),
        ("6540", "part of a bank deposit in QuickBooks"),
        ("6210", "closed in QuickBooks"),
        ("6000", "no longer has that balance in QuickBooks"),
    ],
)
def test_quickbooks_faults_are_errors_in_words(firm, conn, sandbox, realm_id, code, words):
    acct = account_create(firm=firm, name=f"Fault {code} Co")
    run(conn)
    payment = pay(firm, acct, "12.00")
    sandbox.inject_batch_item_fault(realm_id, "item_fault", bid="b0", entity="Payment", code=code)
    run(conn)
    link = plink(conn, payment)
    assert (link.status, link.error_code) == (SyncStatus.ERROR, code)
    assert words in link.error_message and link.error_message.endswith("Retry.")
    assert history(link) == [("create_payment", "rejected")]
    # An Error waits for a person: nothing is re-sent until the payment changes or Retry.
    before = writes(sandbox, realm_id)
    run(conn)
    assert writes(sandbox, realm_id) == before
    SyncLink.objects.filter(pk=link.pk).update(
        status=SyncStatus.NOT_SYNCED, error_kind="", error_message="", error_code="", input_hash=""
    )
    run(conn)
    assert plink(conn, payment).status == SyncStatus.SYNCED
    assert len(qbo_payments(sandbox, realm_id, conn, acct)) == 1


def test_an_invoice_deleted_inside_quickbooks_is_named_in_the_error(firm, conn, sandbox, realm_id, service):
    acct = account_create(firm=firm, name="Deleted In QBO Co")
    inv = issue(firm, acct, service, "45.00")
    run(conn)
    QBOClient(conn).delete(
        "Invoice", ilink(conn, inv).qbo_id, ilink(conn, inv).qbo_sync_token, request_id="x-del"
    )
    payment = pay(firm, acct, "45.00", [(inv, "45.00")])
    run(conn)
    link = plink(conn, payment)
    assert (link.status, link.error_code) == (SyncStatus.ERROR, "610")
    assert link.error_message.startswith(
        "The customer or an invoice this payment refers to was deleted or made inactive in QuickBooks."
    )

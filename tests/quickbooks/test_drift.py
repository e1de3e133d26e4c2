"""Drift on linked records (issue 16 items 2, 3, 6): a change made through the sandbox's QBO API
by "someone else", picked up by the CDC sweep alone (the test app has no webhook), shown on the
record as Error with the fix, and each fix end to end. Everything over real HTTP."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal
from typing import Any

import pytest

from practice.billing import services as billing
from practice.billing.models import Invoice, Payment
from practice.clients.services import account_create
from practice.quickbooks.connection.client import QBOClient
from practice.quickbooks.models import ChangeNotice, Connection, SyncAttempt, SyncLink
from practice.quickbooks.statuses import SyncStatus
from practice.quickbooks.sync import cdc, drift
from tests.quickbooks.sync_support import run, set_up_for_billing

DAY = datetime.date(2026, 11, 2)


@pytest.fixture
def conn(connection):
    return set_up_for_billing(connection)


@pytest.fixture
def service(firm):
    return billing.service_create(firm=firm, name="Bookkeeping", rate=Decimal("100.00"))


def issue(firm, account, service, amount: str) -> Invoice:
    invoice = billing.invoice_create(
        firm=firm,
        account=account,
        issue_date=DAY,
        due_date=DAY + datetime.timedelta(days=30),
        lines=[{"service": service, "quantity": "1", "rate": amount, "description": "Work"}],
    )
    return billing.invoice_issue(invoice=invoice)


def pay(firm, account, amount: str, allocations=()) -> Payment:
    return billing.payment_record(
        firm=firm,
        account=account,
        amount=amount,
        allocations=[(inv, Decimal(a)) for inv, a in allocations],
        date=DAY,
        method="check",
    )


def link(conn, kind: str, record) -> SyncLink:
    return SyncLink.objects.get(connection=conn, kind=kind, local_id=record.pk)


def someone(conn) -> QBOClient:
    """Another QuickBooks user: the same company's API, not the app's engine."""
    return QBOClient(Connection.objects.get(pk=conn.pk))


def rid() -> str:
    return uuid.uuid4().hex


def edit(conn, entity: str, qbo_id: str, **fields: Any) -> dict[str, Any]:
    client = someone(conn)
    current = client.read(entity, qbo_id)
    body = {"Id": qbo_id, "SyncToken": current["SyncToken"], **fields}
    return client.update(entity, body, request_id=rid(), sparse=True)


def start_cdc(conn) -> None:
    assert cdc.sweep_connection(conn.pk).reason == "started"


def sweep(conn) -> cdc.SweepResult:
    result = cdc.sweep_connection(conn.pk)
    assert result.reason == "swept", result
    return result


def drift_rows(record_link: SyncLink) -> list[SyncAttempt]:
    return list(SyncAttempt.objects.filter(link=record_link, operation="drift"))


# --------------------------------------------------------------------------------------------
# Customers


def test_customer_made_inactive_in_qbo_is_an_error_with_reactivate(firm, conn, sandbox, realm_id):
    (account,) = [account_create(firm=firm, name="Harbor Bakery")]
    run(conn)
    customer = link(conn, "customer", account)
    assert customer.status == SyncStatus.SYNCED
    start_cdc(conn)
    edit(conn, "Customer", customer.qbo_id, Active=False)

    result = sweep(conn)

    assert result.notices == 1 and result.applied == 1
    customer.refresh_from_db()
    assert customer.status == SyncStatus.ERROR
    assert customer.error_kind == "customer_inactive"
    assert customer.error_message == (
        "The QuickBooks customer “Harbor Bakery” was made inactive in QuickBooks. Reactivate and "
        "link it, link the account to another customer, or create a new one."
    )
    assert customer.candidates == [
        {"id": customer.qbo_id, "name": "Harbor Bakery", "active": False, "entity": "Customer"}
    ]
    assert [a.outcome for a in drift_rows(customer)] == ["error"]
    # A second sweep, or the same notice again, changes nothing.
    sweep(conn)
    assert drift.apply_change_notices(conn.pk) == 0
    assert len(drift_rows(customer)) == 1


def test_fix_reactivate_and_link_turns_the_customer_back_on(firm, conn, sandbox, realm_id):
    from practice.quickbooks import actions

    account = account_create(firm=firm, name="Harbor Bakery")
    run(conn)
    customer = link(conn, "customer", account)
    qbo_id = customer.qbo_id
    start_cdc(conn)
    edit(conn, "Customer", qbo_id, Active=False)
    sweep(conn)

    actions.account_sync_reactivate(firm=firm, account=account, actor="owner@acme.test")
    run(conn)

    customer.refresh_from_db()
    assert (customer.status, customer.qbo_id, customer.error_kind) == (SyncStatus.SYNCED, qbo_id, "")
    stored = sandbox.read(realm_id, "Customer", qbo_id)
    assert stored["Active"] is True
    named = sandbox.query(realm_id, "SELECT * FROM Customer WHERE DisplayName = 'Harbor Bakery'")
    assert [c["Id"] for c in named["Customer"]] == [qbo_id]  # nothing duplicated
    # Our own reactivation is not drift.
    sweep(conn)
    customer.refresh_from_db()
    assert customer.status == SyncStatus.SYNCED


def test_customer_deleted_in_qbo_says_deleted(firm, conn):
    account = account_create(firm=firm, name="Pier Nine Cafe")
    run(conn)
    customer = link(conn, "customer", account)
    start_cdc(conn)
    # QBO's "delete" of a customer: inactive, and the name marked (deleted).
    edit(conn, "Customer", customer.qbo_id, Active=False, DisplayName="Pier Nine Cafe (deleted)")
    sweep(conn)
    customer.refresh_from_db()
    assert (customer.status, customer.error_kind) == (SyncStatus.ERROR, "customer_deleted")
    assert customer.error_message.startswith(
        "The QuickBooks customer “Pier Nine Cafe (deleted)” was deleted in QuickBooks."
    )
    assert customer.candidates[0]["active"] is False


def test_merged_customer_offers_the_survivor_and_relinks(firm, conn, sandbox, realm_id):
    from practice.quickbooks import actions

    account = account_create(firm=firm, name="Harbor Bakery")
    run(conn)
    customer = link(conn, "customer", account)
    loser = customer.qbo_id
    survivor = someone(conn).create("Customer", {"DisplayName": "Harbor Bakery LLC"}, request_id=rid())["Id"]
    # How QBO shows a merge: the record merged away is no longer active, the Merge notice names
    # both (qbo-api.md §9.4; merges happen only in QBO's own UI).
    edit(conn, "Customer", loser, Active=False)
    ChangeNotice.objects.create(
        connection=conn,
        entity="Customer",
        entity_id=survivor,
        deleted_id=loser,
        operation="Merge",
        source="webhook",
        dedupe_key=f"merge-{loser}-{survivor}",
    )

    assert drift.apply_change_notices(conn.pk) == 1

    customer.refresh_from_db()
    assert (customer.status, customer.error_kind) == (SyncStatus.ERROR, "customer_merged")
    assert customer.error_message == (
        "In QuickBooks, the customer “Harbor Bakery” was merged into “Harbor Bakery LLC”. Link this "
        "account to the customer it was merged into, link it to another customer, or create a new one."
    )
    assert customer.candidates == [
        {"id": survivor, "name": "Harbor Bakery LLC", "active": True, "entity": "Customer"}
    ]
    actions.account_sync_link(firm=firm, account=account, customer_id=survivor, actor="owner@acme.test")
    customer.refresh_from_db()
    assert (customer.status, customer.qbo_id, customer.qbo_name) == (
        SyncStatus.SYNCED,
        survivor,
        "Harbor Bakery LLC",
    )


def test_customer_that_no_longer_exists(firm, conn):
    account = account_create(firm=firm, name="Gone Fishing")
    run(conn)
    customer = link(conn, "customer", account)
    SyncLink.objects.filter(pk=customer.pk).update(qbo_id="999999", qbo_name="Gone Fishing")
    ChangeNotice.objects.create(
        connection=conn,
        entity="Customer",
        entity_id="999999",
        operation="Delete",
        source="webhook",
        dedupe_key="x",
    )
    assert drift.apply_change_notices(conn.pk) == 1
    customer.refresh_from_db()
    assert (customer.status, customer.error_kind, customer.candidates) == (
        SyncStatus.ERROR,
        "customer_gone",
        [],
    )


# --------------------------------------------------------------------------------------------
# Invoices and payments


@pytest.fixture
def billed(firm, conn, service):
    """An account with one invoice of $150 in QuickBooks (Synced), the CDC cursor started."""
    # The company keeps the app's invoice numbers (custom transaction numbers on).
    client = someone(conn)
    prefs = client.preferences()
    sales = {**(prefs.get("SalesFormsPrefs") or {}), "CustomTxnNumbers": True}
    body = {"Id": prefs["Id"], "SyncToken": prefs["SyncToken"], "SalesFormsPrefs": sales}
    client.update("Preferences", body, request_id=rid(), sparse=True)
    account = account_create(firm=firm, name="Harbor Bakery")
    invoice = issue(firm, account, service, "150.00")
    run(conn)
    assert link(conn, "invoice", invoice).status == SyncStatus.SYNCED
    start_cdc(conn)
    return account, invoice


def change_first_line(conn, qbo_id: str, amount: int) -> dict[str, Any]:
    current = someone(conn).read("Invoice", qbo_id)
    lines = [ln for ln in current["Line"] if ln.get("DetailType") == "SalesItemLineDetail"]
    lines[0]["Amount"] = amount
    lines[0]["SalesItemLineDetail"]["UnitPrice"] = amount
    lines[0]["SalesItemLineDetail"]["Qty"] = 1
    return edit(conn, "Invoice", qbo_id, Line=lines)


def writes(sandbox, realm_id) -> int:
    return sum(
        1
        for r in sandbox.requests(realm_id)
        if r["operation"] in ("batch", "create", "update", "delete", "void")
    )


def numbered_invoices(sandbox, realm_id, number: str) -> list[dict[str, Any]]:
    return list(sandbox.query(realm_id, f"SELECT * FROM Invoice WHERE DocNumber = '{number}'")["Invoice"])


CHANGED_120 = (
    "Changed in QuickBooks: the total is $120.00 there and $150.00 in the app. Push ours again to put "
    "the app's version back in QuickBooks, or accept QuickBooks' version (nothing is sent)."
)


def test_invoice_edited_in_qbo_is_changed_in_quickbooks(firm, conn, billed, sandbox, realm_id):
    _account, invoice = billed
    inv = link(conn, "invoice", invoice)
    change_first_line(conn, inv.qbo_id, 120)

    sweep(conn)

    inv.refresh_from_db()
    assert (inv.status, inv.error_kind, inv.error_message) == (
        SyncStatus.ERROR,
        "changed_in_qbo",
        CHANGED_120,
    )
    # Nothing is pushed over it, not even after a change in the app (a void would be sent).
    before = writes(sandbox, realm_id)
    billing.invoice_void(invoice=invoice, reason="Billed twice")
    run(conn)
    inv.refresh_from_db()
    assert (inv.status, inv.error_kind) == (SyncStatus.ERROR, "changed_in_qbo")
    assert writes(sandbox, realm_id) == before
    assert sandbox.read(realm_id, "Invoice", inv.qbo_id)["TotalAmt"] == 120


def test_push_ours_again_puts_the_apps_version_back(firm, conn, billed, sandbox, realm_id):
    from practice.quickbooks import actions

    _account, invoice = billed
    inv = link(conn, "invoice", invoice)
    change_first_line(conn, inv.qbo_id, 120)
    sweep(conn)

    actions.record_push_ours(firm=firm, kind="invoice", local_id=invoice.pk, actor="owner@acme.test")
    run(conn)

    inv.refresh_from_db()
    stored = sandbox.read(realm_id, "Invoice", inv.qbo_id)
    assert (inv.status, stored["TotalAmt"], stored["SyncToken"]) == (
        SyncStatus.SYNCED,
        150,
        inv.qbo_sync_token,
    )
    assert [i["Id"] for i in numbered_invoices(sandbox, realm_id, invoice.number)] == [inv.qbo_id]
    assert [a.operation for a in SyncAttempt.objects.filter(link=inv).order_by("id")][-3:] == [
        "drift",
        "push_ours",
        "update",
    ]
    sweep(conn)  # our own update read back: not drift
    inv.refresh_from_db()
    assert inv.status == SyncStatus.SYNCED


def test_accept_quickbooks_version_marks_synced_without_pushing(firm, conn, billed, sandbox, realm_id):
    from practice.quickbooks import actions

    _account, invoice = billed
    inv = link(conn, "invoice", invoice)
    changed = change_first_line(conn, inv.qbo_id, 120)
    sweep(conn)
    before = writes(sandbox, realm_id)

    actions.record_accept_qbo(firm=firm, kind="invoice", local_id=invoice.pk, actor="owner@acme.test")
    run(conn)
    sweep(conn)

    inv.refresh_from_db()
    assert (inv.status, inv.error_kind, inv.qbo_sync_token) == (SyncStatus.SYNCED, "", changed["SyncToken"])
    assert writes(sandbox, realm_id) == before
    assert sandbox.read(realm_id, "Invoice", inv.qbo_id)["TotalAmt"] == 120


def test_invoice_voided_in_qbo_push_again_creates_a_new_one(firm, conn, billed, sandbox, realm_id):
    from practice.quickbooks import actions

    _account, invoice = billed
    inv = link(conn, "invoice", invoice)
    voided_id = inv.qbo_id
    current = someone(conn).read("Invoice", voided_id)
    someone(conn).void("Invoice", voided_id, current["SyncToken"], request_id=rid())

    sweep(conn)
    inv.refresh_from_db()
    assert (inv.status, inv.error_kind) == (SyncStatus.ERROR, "voided_in_qbo")
    assert inv.error_message == (
        "Voided in QuickBooks. QuickBooks cannot un-void it: Push again creates a new one there (the "
        "voided one stays), or Unsync it to leave QuickBooks as it is."
    )

    actions.record_push_again(firm=firm, kind="invoice", local_id=invoice.pk, actor="owner@acme.test")
    run(conn)

    inv.refresh_from_db()
    assert inv.status == SyncStatus.SYNCED and inv.qbo_id not in ("", voided_id)
    numbered = numbered_invoices(sandbox, realm_id, invoice.number)
    assert sorted((i["Id"], i["TotalAmt"]) for i in numbered) == sorted([(voided_id, 0), (inv.qbo_id, 150)])
    sweep(conn)
    inv.refresh_from_db()
    assert inv.status == SyncStatus.SYNCED


def test_invoice_deleted_in_qbo_then_unsync_leaves_quickbooks_alone(firm, conn, billed, sandbox, realm_id):
    from practice.quickbooks import actions

    _account, invoice = billed
    inv = link(conn, "invoice", invoice)
    current = someone(conn).read("Invoice", inv.qbo_id)
    someone(conn).delete("Invoice", inv.qbo_id, current["SyncToken"], request_id=rid())

    sweep(conn)
    inv.refresh_from_db()
    assert (inv.status, inv.error_kind) == (SyncStatus.ERROR, "deleted_in_qbo")

    before = writes(sandbox, realm_id)
    actions.record_unsync(firm=firm, kind="invoice", local_id=invoice.pk, actor="owner@acme.test")
    run(conn)
    inv.refresh_from_db()
    assert (inv.status, inv.qbo_id) == (SyncStatus.SKIPPED, "")
    assert writes(sandbox, realm_id) == before


def test_invoice_deleted_in_qbo_push_again_recreates_it(firm, conn, billed, sandbox, realm_id):
    from practice.quickbooks import actions

    _account, invoice = billed
    inv = link(conn, "invoice", invoice)
    gone = inv.qbo_id
    current = someone(conn).read("Invoice", gone)
    someone(conn).delete("Invoice", gone, current["SyncToken"], request_id=rid())
    sweep(conn)

    actions.record_push_again(firm=firm, kind="invoice", local_id=invoice.pk, actor="owner@acme.test")
    run(conn)

    inv.refresh_from_db()
    assert inv.status == SyncStatus.SYNCED and inv.qbo_id != gone
    numbered = numbered_invoices(sandbox, realm_id, invoice.number)
    assert [(i["Id"], i["TotalAmt"]) for i in numbered] == [(inv.qbo_id, 150)]


def test_our_payment_applied_to_the_invoice_is_not_drift(firm, conn, billed, sandbox, realm_id):
    account, invoice = billed
    inv = link(conn, "invoice", invoice)
    token_before = inv.qbo_sync_token
    payment = pay(firm, account, "150.00", [(invoice, "150.00")])
    run(conn)
    assert link(conn, "payment", payment).status == SyncStatus.SYNCED
    # QBO moved the invoice's SyncToken when the payment was applied to it.
    assert sandbox.read(realm_id, "Invoice", inv.qbo_id)["SyncToken"] != token_before

    result = sweep(conn)

    inv.refresh_from_db()
    assert result.notices >= 1
    assert (inv.status, inv.error_kind) == (SyncStatus.SYNCED, "")
    assert inv.qbo_sync_token == sandbox.read(realm_id, "Invoice", inv.qbo_id)["SyncToken"]
    assert not SyncAttempt.objects.filter(operation="drift").exists()


def test_payment_edited_and_voided_in_qbo(firm, conn, billed, sandbox, realm_id):
    from practice.quickbooks import actions

    account, invoice = billed
    payment = pay(firm, account, "150.00", [(invoice, "150.00")])
    run(conn)
    pl = link(conn, "payment", payment)
    edit(conn, "Payment", pl.qbo_id, TxnDate="2026-11-05")
    sweep(conn)
    pl.refresh_from_db()
    assert (pl.status, pl.error_kind) == (SyncStatus.ERROR, "changed_in_qbo")
    assert "the date is 2026-11-05 there and 2026-11-02 here" in pl.error_message

    actions.record_push_ours(firm=firm, kind="payment", local_id=payment.pk, actor="owner@acme.test")
    run(conn)
    pl.refresh_from_db()
    assert pl.status == SyncStatus.SYNCED
    assert sandbox.read(realm_id, "Payment", pl.qbo_id)["TxnDate"] == "2026-11-02"

    current = someone(conn).read("Payment", pl.qbo_id)
    someone(conn).void("Payment", pl.qbo_id, current["SyncToken"], request_id=rid())
    sweep(conn)
    pl.refresh_from_db()
    assert (pl.status, pl.error_kind) == (SyncStatus.ERROR, "voided_in_qbo")


# --------------------------------------------------------------------------------------------
# Notices: duplicates, order, webhooks and CDC together


def test_duplicate_and_out_of_order_notices_are_harmless(firm, conn, billed):
    _account, invoice = billed
    inv = link(conn, "invoice", invoice)
    change_first_line(conn, inv.qbo_id, 120)
    key = f"Invoice|{inv.qbo_id}|0"  # a late notice of the version we created
    for dedupe in (key, key, "cloud-1", "cloud-1"):
        ChangeNotice.objects.get_or_create(
            connection=conn,
            dedupe_key=dedupe,
            defaults={
                "entity": "Invoice",
                "entity_id": inv.qbo_id,
                "operation": "Update",
                "source": "webhook",
            },
        )
    assert ChangeNotice.objects.filter(connection=conn).count() == 2
    assert drift.apply_change_notices(conn.pk) == 2
    sweep(conn)  # CDC reports the same change again
    assert drift.apply_change_notices(conn.pk) == 0
    inv.refresh_from_db()
    assert inv.error_kind == "changed_in_qbo"
    assert len(drift_rows(inv)) == 1
    assert not ChangeNotice.objects.filter(connection=conn, applied_at__isnull=True).exists()


def test_notices_of_unlinked_entities_are_applied_without_a_read(firm, conn, sandbox, realm_id):
    ChangeNotice.objects.create(
        connection=conn, entity="Invoice", entity_id="1", operation="Update", source="webhook", dedupe_key="a"
    )
    ChangeNotice.objects.create(
        connection=conn, entity="Vendor", entity_id="1", operation="Update", source="webhook", dedupe_key="b"
    )
    sandbox.reset_counters(realm_id)
    assert drift.apply_change_notices(conn.pk) == 2
    assert [r for r in sandbox.requests(realm_id) if r["operation"] == "query"] == []


def test_a_held_realm_leaves_the_notices_for_later(firm, conn, django_capture_on_commit_callbacks):
    from practice.quickbooks.sync import engine

    ChangeNotice.objects.create(
        connection=conn, entity="Invoice", entity_id="1", operation="Update", source="webhook", dedupe_key="a"
    )
    from practice.quickbooks.sync import tasks

    assert engine.claim_lease(conn.pk, "a-running-sync")
    expires = Connection.objects.get(pk=conn.pk).lease_expires_at
    with django_capture_on_commit_callbacks() as callbacks:
        assert tasks.apply_qbo_changes.call(conn.pk) == 0
    assert len(callbacks) == 1  # apply_qbo_changes again when the lease runs out
    assert drift.held_until(conn.pk) == expires + datetime.timedelta(seconds=1)
    assert ChangeNotice.objects.filter(applied_at__isnull=True).count() == 1
    engine.release_lease(conn.pk, "a-running-sync")
    assert drift.held_until(conn.pk) is None


# --------------------------------------------------------------------------------------------
# The CDC sweep itself


def test_cursor_starts_now_and_moves_with_qbos_clock(firm, conn, sandbox, realm_id):
    from django.utils import timezone

    before = timezone.now()
    start_cdc(conn)
    conn.refresh_from_db()
    assert before - cdc.OVERLAP <= conn.cdc_cursor <= timezone.now() - cdc.OVERLAP
    sandbox.reset_counters(realm_id)
    sweep(conn)
    conn.refresh_from_db()
    answered = [r for r in sandbox.requests(realm_id) if r["operation"] == "cdc"]
    assert len(answered) == 1
    assert timezone.now() - cdc.OVERLAP - datetime.timedelta(seconds=5) < conn.cdc_cursor
    assert conn.cdc_cursor <= timezone.now() - cdc.OVERLAP + datetime.timedelta(seconds=1)


def test_cursor_older_than_29_days_reads_the_linked_records_instead(firm, conn, sandbox, realm_id):
    from django.utils import timezone

    account = account_create(firm=firm, name="Harbor Bakery")
    run(conn)
    customer = link(conn, "customer", account)
    edit(conn, "Customer", customer.qbo_id, Active=False)
    Connection.objects.filter(pk=conn.pk).update(cdc_cursor=timezone.now() - datetime.timedelta(days=31))
    sandbox.reset_counters(realm_id)

    result = sweep(conn)

    assert result.full_read and result.requests == 0
    assert [r for r in sandbox.requests(realm_id) if r["operation"] == "cdc"] == []
    customer.refresh_from_db()
    assert customer.error_kind == "customer_inactive"


def test_a_full_cdc_answer_is_split_in_halves(firm, conn, sandbox, realm_id):
    import time

    account = account_create(firm=firm, name="Harbor Bakery")
    run(conn)
    customer = link(conn, "customer", account)
    start_cdc(conn)
    sandbox.bulk_insert(realm_id, "Customer", [{"DisplayName": f"Bulk A {i}"} for i in range(700)])
    time.sleep(1.1)  # QBO's stamps have whole seconds: two seconds apart can be told apart
    edit(conn, "Customer", customer.qbo_id, Active=False)
    sandbox.bulk_insert(realm_id, "Customer", [{"DisplayName": f"Bulk B {i}"} for i in range(700)])
    sandbox.reset_counters(realm_id)

    result = sweep(conn)

    assert result.requests >= 2 and not result.full_read
    assert result.objects >= 1401
    customer.refresh_from_db()
    assert customer.error_kind == "customer_inactive"


def test_paused_or_disconnected_connection_is_not_swept(firm, conn, sandbox, realm_id):
    start_cdc(conn)
    sandbox.reset_counters(realm_id)
    Connection.objects.filter(pk=conn.pk).update(paused_code="throttled")
    assert cdc.sweep_connection(conn.pk).reason == "paused"
    Connection.objects.filter(pk=conn.pk).update(paused_code="", status="needs_reconnect")
    assert cdc.sweep_connection(conn.pk).reason == "connection needs_reconnect"
    assert sandbox.requests(realm_id) == []
    from django.utils import timezone

    assert cdc.due_connections(timezone.now() + datetime.timedelta(days=1)) == []


def test_sweep_enqueues_one_cdc_sweep_per_interval(firm, conn, settings, django_capture_on_commit_callbacks):
    from django.utils import timezone

    from practice.quickbooks.sync import tasks

    settings.QBO_CDC_INTERVAL_SECONDS = 300
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert tasks.enqueue_cdc_sweeps(now) == 1
        assert tasks.enqueue_cdc_sweeps(now + datetime.timedelta(seconds=60)) == 0
        assert tasks.enqueue_cdc_sweeps(now + datetime.timedelta(seconds=301)) == 1
    assert len(callbacks) == 2
    settings.QBO_CDC_INTERVAL_SECONDS = 0
    assert tasks.enqueue_cdc_sweeps(now + datetime.timedelta(days=1)) == 0


def test_cdc_notices_mark_the_customers_balance_stale(firm, conn, billed, django_capture_on_commit_callbacks):
    from practice.quickbooks.models import CustomerBalance

    account, invoice = billed
    customer = link(conn, "customer", account)
    mine = CustomerBalance.objects.create(connection=conn, qbo_customer_id=customer.qbo_id, stale=False)
    other = CustomerBalance.objects.create(connection=conn, qbo_customer_id="1", stale=False)
    change_first_line(conn, link(conn, "invoice", invoice).qbo_id, 120)
    with django_capture_on_commit_callbacks(execute=True):
        sweep(conn)
    mine.refresh_from_db()
    other.refresh_from_db()
    assert (mine.stale, other.stale) == (True, False)
    # ... and the sweep has the reconciliation figures re-read in the background (once).
    from django_tasks_db.models import DBTaskResult

    refresh = DBTaskResult.objects.filter(
        task_path="practice.quickbooks.sync.balances.refresh_customer_balances"
    )
    assert [r.args_kwargs["args"] for r in refresh] == [[conn.pk]]


# --------------------------------------------------------------------------------------------
# Pages: the record's panel, the problems page, roles and CSRF


def drift_url(kind: str, pk: int, action: str) -> str:
    from django.urls import reverse

    return reverse("quickbooks:drift_action", args=[kind, pk, action])


def test_invoice_panel_offers_the_fixes_and_they_work(firm, conn, billed, client_as, sandbox, realm_id):
    from django.urls import reverse

    _account, invoice = billed
    inv = link(conn, "invoice", invoice)
    change_first_line(conn, inv.qbo_id, 120)
    sweep(conn)

    page = client_as("owner").get(reverse("billing:invoice_detail", args=[invoice.pk])).content.decode()
    assert drift_url("invoice", invoice.pk, "push_ours") in page
    assert drift_url("invoice", invoice.pk, "accept_qbo") in page
    assert "Push ours again" in page and "Accept QuickBooks&#x27; version" in page
    assert reverse("quickbooks:record_action", args=["invoice", invoice.pk, "retry"]) not in page
    assert "Changed in QuickBooks: the total is $120.00 there and $150.00 in the app." in page
    staff = client_as("employee").get(reverse("billing:invoice_detail", args=[invoice.pk])).content.decode()
    assert drift_url("invoice", invoice.pk, "push_ours") not in staff

    assert client_as("employee").post(drift_url("invoice", invoice.pk, "accept_qbo")).status_code == 403
    assert client_as("other").post(drift_url("invoice", invoice.pk, "accept_qbo")).status_code == 404
    assert client_as("owner").get(drift_url("invoice", invoice.pk, "accept_qbo")).status_code == 405
    assert client_as("owner").post(drift_url("invoice", invoice.pk, "delete")).status_code == 404
    inv.refresh_from_db()
    assert inv.status == SyncStatus.ERROR

    response = client_as("admin").post(drift_url("invoice", invoice.pk, "accept_qbo"))
    assert response.status_code == 302
    assert response["Location"] == reverse("billing:invoice_detail", args=[invoice.pk])
    inv.refresh_from_db()
    assert (inv.status, inv.error_kind) == (SyncStatus.SYNCED, "")
    history = SyncAttempt.objects.filter(link=inv, operation="accept_qbo").get()
    assert (history.actor, history.operation_label) == ("admin@acme.test", "Accept QuickBooks' version")
    # Done already: a second press says so, and changes nothing.
    again = client_as("admin").post(drift_url("invoice", invoice.pk, "accept_qbo"), HTTP_HX_REQUEST="true")
    assert "This record has no change made in QuickBooks to resolve any more." in again.content.decode()


def test_drift_action_needs_csrf(firm, conn, billed):
    from django.test import Client

    from practice.firms.models import User

    _account, invoice = billed
    inv = link(conn, "invoice", invoice)
    change_first_line(conn, inv.qbo_id, 120)
    sweep(conn)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(User.objects.get(email="owner@acme.test"))
    assert strict.post(drift_url("invoice", invoice.pk, "push_ours")).status_code == 403
    inv.refresh_from_db()
    assert inv.error_kind == "changed_in_qbo"


def test_problems_page_offers_fixes_and_retry_all_leaves_drift_alone(firm, conn, billed, client_as):
    from django.urls import reverse

    from practice.quickbooks import actions

    _account, invoice = billed
    inv = link(conn, "invoice", invoice)
    current = someone(conn).read("Invoice", inv.qbo_id)
    someone(conn).void("Invoice", inv.qbo_id, current["SyncToken"], request_id=rid())
    sweep(conn)

    page = client_as("owner").get(reverse("quickbooks:problems") + "?kind=invoice").content.decode()
    assert drift_url("invoice", invoice.pk, "push_again") in page
    assert reverse("quickbooks:problem_retry", args=["invoice", invoice.pk]) not in page
    assert actions.retry_errors(firm=firm, kind="invoice", actor="owner@acme.test") == 0
    with pytest.raises(actions.SyncActionError, match="changed, voided or deleted in QuickBooks"):
        actions.record_retry(firm=firm, kind="invoice", local_id=invoice.pk)
    inv.refresh_from_db()
    assert inv.error_kind == "voided_in_qbo"


def test_account_panel_offers_link_to_the_survivor_and_reactivate(firm, conn, client_as):
    from django.urls import reverse

    account = account_create(firm=firm, name="Harbor Bakery")
    run(conn)
    customer = link(conn, "customer", account)
    start_cdc(conn)
    edit(conn, "Customer", customer.qbo_id, Active=False)
    sweep(conn)
    page = client_as("owner").get(reverse("clients:account_detail", args=[account.pk])).content.decode()
    assert reverse("quickbooks:account_reactivate", args=[account.pk]) in page
    assert "was made inactive in QuickBooks. Reactivate and link it" in page


def test_drift_words_in_spanish():
    from django.utils import translation

    from practice.quickbooks import actions
    from practice.quickbooks.history_text import translate
    from practice.quickbooks.sync.messages import error_text

    with translation.override("es"):
        assert error_text("customer_inactive", name="A", candidates=[{"name": "Harbor"}], stored="") == (
            "El cliente de QuickBooks «Harbor» se desactivó en QuickBooks. Reactívelo y vincúlelo, "
            "vincule la cuenta a otro cliente o cree uno nuevo."
        )
        assert translate(drift.VOIDED_MESSAGE).startswith("Anulado en QuickBooks.")
        assert translate(actions.ACCEPT_MESSAGE) == "Se conservó la versión de QuickBooks; no se envió nada."
        assert str(SyncAttempt(operation="push_ours").operation_label) == "Enviar la nuestra de nuevo"


def test_cdc_alone_follows_a_merge_through_the_moved_invoices(firm, conn, billed):
    """Without a Merge notice (CDC shows the record merged away only as deleted), the survivor is
    the customer QBO moved the account's invoices to; the moved invoice itself is not drift."""
    account, invoice = billed
    inv = link(conn, "invoice", invoice)
    customer = link(conn, "customer", account)
    survivor = someone(conn).create("Customer", {"DisplayName": "Harbor Bakery Group"}, request_id=rid())[
        "Id"
    ]
    moved = edit(conn, "Invoice", inv.qbo_id, CustomerRef={"value": survivor})
    # The account's customer is the one merged away: QBO no longer has it.
    SyncLink.objects.filter(pk=customer.pk).update(qbo_id="999999")
    ChangeNotice.objects.create(
        connection=conn,
        entity="Customer",
        entity_id="999999",
        operation="Delete",
        source="cdc",
        dedupe_key="Customer|999999|Deleted",
    )

    sweep(conn)

    customer.refresh_from_db()
    inv.refresh_from_db()
    assert (customer.status, customer.error_kind) == (SyncStatus.ERROR, "customer_merged")
    assert customer.candidates == [
        {"id": survivor, "name": "Harbor Bakery Group", "active": True, "entity": "Customer"}
    ]
    assert (inv.status, inv.qbo_sync_token) == (SyncStatus.SYNCED, moved["SyncToken"])
    assert drift_rows(inv) == []

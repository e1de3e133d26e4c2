"""QuickBooks statuses on invoices in a real browser: the invoices list (column, tooltip, filter)
and an invoice page whose three-dots menu is used by keyboard only; axe-core finds no WCAG 2 A/AA
problem on either, and "Open in QuickBooks" opens the invoice in the sandbox's pages.

The invoice kind is built on another branch, so the sandbox invoice is created through the API
here and the links are made directly, as the kind would leave them.
"""

from __future__ import annotations

import datetime
import re
from decimal import Decimal

import pytest
from django.utils import timezone

from practice.billing import services
from practice.clients.models import ClientAccount
from practice.quickbooks.connection.client import QBOClient
from practice.quickbooks.models import SyncAttempt, SyncLink
from practice.quickbooks.statuses import SyncStatus
from tests.browser.axe import axe_violations
from tests.browser.conftest import CLIENT_ID, expect
from tests.quickbooks.conftest import connect_firm

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _invoice(firm, account, service, day=datetime.date(2026, 11, 2)):
    inv = services.invoice_create(
        firm=firm,
        account=account,
        issue_date=day,
        due_date=day + datetime.timedelta(days=30),
        lines=[{"service": service, "quantity": "2", "rate": "150.00", "description": "November books"}],
    )
    return services.invoice_issue(invoice=inv)


@pytest.fixture
def billing(firm, qbo_live):
    realm = qbo_live.create_realm(seed="empty")
    conn = connect_firm(firm, realm, qbo_live, client_id=CLIENT_ID)
    conn.setup_completed_at = timezone.now()
    conn.save()
    client = QBOClient(conn)
    customer = client.create("Customer", {"DisplayName": "Cool Cars"}, request_id="bt-cust")
    item = client.create(
        "Item",
        {"Name": "Bookkeeping", "Type": "Service", "IncomeAccountRef": {"value": "1"}},
        request_id="bt-item",
    )
    cars = ClientAccount.objects.create(firm=firm, name="Cool Cars")
    diner = ClientAccount.objects.create(firm=firm, name="Red Rock Diner")
    service = services.service_create(firm=firm, name="Bookkeeping", rate=Decimal("150.00"))

    def link(kind, local_id, status, **fields):
        return SyncLink.objects.create(
            firm=firm, connection=conn, kind=kind, local_id=local_id, status=status, **fields
        )

    link("customer", cars.pk, SyncStatus.SYNCED, qbo_id=customer["Id"], qbo_name="Cool Cars")
    link("service", service.pk, SyncStatus.SYNCED, qbo_id=item["Id"], qbo_name="Bookkeeping")
    synced = _invoice(firm, cars, service)
    qbo_invoice = client.create(
        "Invoice",
        {
            "CustomerRef": {"value": customer["Id"]},
            "DocNumber": synced.number,
            "TxnDate": "2026-11-02",
            "DueDate": "2026-12-02",
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": 300.0,
                    "Description": "November books",
                    "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": 2, "UnitPrice": 150.0},
                }
            ],
        },
        request_id="bt-inv",
    )
    link("invoice", synced.pk, SyncStatus.SYNCED, qbo_id=qbo_invoice["Id"])
    failed = _invoice(firm, cars, service)
    error_link = link(
        "invoice",
        failed.pk,
        SyncStatus.ERROR,
        error_kind="rejected",
        error_code="6000",
        error_message="QuickBooks refused the invoice: the class “Retail” does not exist. Add it; retry.",
    )
    SyncAttempt.objects.create(
        link=error_link, operation="create", outcome="rejected", request_id="rid-1", fault_code="6000"
    )
    waiting = _invoice(firm, diner, service)
    return {"synced": synced, "failed": failed, "waiting": waiting, "qbo_invoice": qbo_invoice}


def test_invoices_list_statuses_and_accessibility(live_server, login, billing):
    page = login("owner@acme.test")
    page.goto(f"{live_server.url}/billing/invoices/")
    table = page.locator("table.list")
    expect()(table.locator("th.qbo-col")).to_have_text("QuickBooks")
    expect()(table.locator(".qbo-status .badge")).to_have_count(3)
    waiting = table.locator("tr", has_text=billing["waiting"].number).locator(".qbo-status")
    tip = waiting.locator(".tip-body")
    expect()(tip).to_be_hidden()
    waiting.focus()  # keyboard users get the tooltip too
    expect()(tip).to_be_visible()
    expect()(tip).to_contain_text("Waiting for the account “Red Rock Diner” to be synced to QuickBooks.")
    assert axe_violations(page) == []
    page.locator(".qbo-filters a[data-status=error]").click()
    expect()(table.locator("tbody tr")).to_have_count(1)
    expect()(table.locator("tbody")).to_contain_text(billing["failed"].number)
    assert axe_violations(page) == []


def test_invoice_menu_by_keyboard_and_open_in_quickbooks(live_server, login, billing):
    page = login("admin@acme.test")
    failed = billing["failed"]
    page.goto(f"{live_server.url}/billing/invoices/{failed.pk}/")
    panel = page.locator("#qbo-panel")
    expect()(panel.locator(".badge")).to_have_text("Error")
    expect()(panel).to_contain_text("the class “Retail” does not exist")
    expect()(panel).to_contain_text("rid-1")  # history
    assert axe_violations(page) == []
    summary = panel.locator(".qbo-menu summary")
    summary.focus()
    page.keyboard.press("Enter")
    expect()(panel.locator(".qbo-menu")).to_have_attribute("open", "")
    assert axe_violations(page) == []  # with the menu open
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent.trim()")
    assert focused == "Retry"
    page.keyboard.press("Enter")
    expect()(page.locator("#qbo-panel .badge")).to_have_text("Not synced")
    expect()(page.locator("#qbo-panel [role=status]")).to_contain_text(f"Retrying invoice {failed.number}")
    row = SyncLink.objects.get(kind="invoice", local_id=failed.pk)
    assert row.status == SyncStatus.NOT_SYNCED and row.error_message == ""
    assert list(SyncAttempt.objects.filter(link=row, operation="retry").values_list("actor", flat=True)) == [
        "admin@acme.test"
    ]
    assert axe_violations(page) == []

    # A waiting invoice: Sync is disabled and the menu says why.
    page.goto(f"{live_server.url}/billing/invoices/{billing['waiting'].pk}/")
    page.locator(".qbo-menu summary").focus()
    page.keyboard.press("Enter")
    button = page.locator(".qbo-menu button.qbo-sync")
    expect()(button).to_be_disabled()
    expect()(page.locator("#qbo-sync-blocked")).to_have_text(
        "The account “Red Rock Diner” is not synced to QuickBooks. Sync the account first."
    )
    assert axe_violations(page) == []

    # A synced invoice opens in the sandbox's QuickBooks pages.
    page.goto(f"{live_server.url}/billing/invoices/{billing['synced'].pk}/")
    open_link = page.get_by_role("link", name="Open in QuickBooks")
    href = open_link.get_attribute("href")
    assert href is not None and f"/app/invoice?txnId={billing['qbo_invoice']['Id']}" in href
    page.goto(href)
    expect()(page.locator("h1")).to_have_text(f"Invoice {billing['synced'].number}")
    expect()(page.locator("main")).to_contain_text("Cool Cars")
    expect()(page.locator("main")).to_contain_text("November books")
    expect()(page.locator("main")).to_contain_text("$300.00")
    assert axe_violations(page) == []


def test_payment_and_service_pages_pass_axe(live_server, login, billing, firm):
    conn = SyncLink.objects.filter(kind="invoice").first().connection
    client = QBOClient(conn)
    synced = billing["synced"]
    pay = services.payment_record(
        firm=firm,
        account=synced.account,
        date=datetime.date(2026, 11, 5),
        amount="300.00",
        method="check",
        reference="CHK-981",
        allocations=[(synced, "300.00")],
    )
    qbo_payment = client.create(
        "Payment",
        {
            "CustomerRef": {"value": billing["qbo_invoice"]["CustomerRef"]["value"]},
            "TotalAmt": 300.0,
            "TxnDate": "2026-11-05",
            "PaymentRefNum": "CHK-981",
            "Line": [
                {
                    "Amount": 300.0,
                    "LinkedTxn": [{"TxnId": billing["qbo_invoice"]["Id"], "TxnType": "Invoice"}],
                }
            ],
        },
        request_id="bt-pay",
    )
    SyncLink.objects.create(
        firm=firm,
        connection=conn,
        kind="payment",
        local_id=pay.pk,
        status=SyncStatus.SYNCED,
        qbo_id=qbo_payment["Id"],
    )
    manual_off = services.payment_record(
        firm=firm,
        account=synced.account,
        date=datetime.date(2026, 11, 6),
        amount="10.00",
        method="cash",
        sync_to_quickbooks=False,
    )
    page = login("owner@acme.test")
    for path in (
        "/billing/payments/",
        f"/billing/payments/{pay.pk}/",
        f"/billing/payments/{manual_off.pk}/",
        "/billing/services/",
        f"/billing/services/{SyncLink.objects.get(kind='service').local_id}/edit/",
    ):
        page.goto(f"{live_server.url}{path}")
        expect()(page.locator(".qbo-status").first).to_be_visible()
        assert axe_violations(page) == [], path
    page.goto(f"{live_server.url}/billing/payments/{manual_off.pk}/")
    expect()(page.locator("#qbo-panel")).to_contain_text("Sync to QuickBooks is turned off for this payment.")
    page.goto(f"{live_server.url}/billing/payments/{pay.pk}/")
    with page.context.expect_page() as new_tab:  # target=_blank
        page.get_by_role("link", name="Open in QuickBooks").click()
    sandbox_page = new_tab.value
    expect()(sandbox_page.locator("h1")).to_have_text("Payment received")
    expect()(sandbox_page.locator("main")).to_contain_text(f"Invoice {synced.number}")
    assert axe_violations(sandbox_page) == []
    sandbox_page.goto(sandbox_page.url.split("/app/")[0] + f"/app/items?realmId={conn.realm_id}")
    expect()(sandbox_page.locator("main")).to_contain_text("Bookkeeping")
    assert axe_violations(sandbox_page) == []


def test_an_invoice_issued_in_the_ui_reaches_quickbooks_and_opens_there(live_server, login, firm, qbo_live):
    """End to end with the real kinds: a draft issued by pressing "Issue" is pushed by the run the
    worker would execute, shows Synced, and its link opens that invoice in the sandbox."""
    from practice.quickbooks.sync import engine
    from tests.quickbooks.sync_support import set_up

    realm = qbo_live.create_realm(seed="sample-us")
    conn = set_up(connect_firm(firm, realm, qbo_live, client_id=CLIENT_ID))
    accounts = list(QBOClient(conn).query_all("Account", "Name = 'Services'"))
    conn.income_account_id, conn.income_account_name = str(accounts[0]["Id"]), "Services"
    conn.save()
    account = ClientAccount.objects.create(firm=firm, name="Amy's Bird Sanctuary")
    service = services.service_create(firm=firm, name="Monthly books", rate=Decimal("120.00"))
    draft = services.invoice_create(
        firm=firm,
        account=account,
        issue_date=datetime.date(2026, 11, 2),
        due_date=datetime.date(2026, 12, 2),
        lines=[{"service": service, "quantity": "3", "rate": "120.00", "description": "Sep-Nov books"}],
    )
    engine.run_realm(conn.pk)  # the account links by name; the draft stays here
    assert not SyncLink.objects.filter(kind="invoice", local_id=draft.pk, status=SyncStatus.SYNCED).exists()

    page = login("owner@acme.test")
    page.goto(f"{live_server.url}/billing/invoices/{draft.pk}/")
    page.get_by_role("button", name="Issue", exact=True).click()
    page.wait_for_url(f"**/billing/invoices/{draft.pk}/")
    engine.run_realm(conn.pk)  # what the worker runs for the enqueued sync_realm task
    page.reload()
    panel = page.locator("#qbo-panel")
    expect()(panel.locator(".badge")).to_have_text("Synced")
    link = SyncLink.objects.get(connection=conn, kind="invoice", local_id=draft.pk)
    qbo = QBOClient(conn).read("Invoice", link.qbo_id)
    qbo = qbo.get("Invoice", qbo)
    # sample-us numbers its own sales forms (CustomTxnNumbers off): ours is in the private note.
    assert Decimal(str(qbo["TotalAmt"])) == Decimal("360.00") and draft.number in qbo["PrivateNote"]
    open_link = page.get_by_role("link", name="Open in QuickBooks")
    with page.context.expect_page() as opened:  # it opens in a new tab, like QBO's own links
        open_link.click()
    page = opened.value
    page.wait_for_load_state()
    assert re.search(r"/app/invoice\?txnId=" + link.qbo_id + r"\b", page.url)
    expect()(page.locator("h1")).to_have_text(f"Invoice {qbo['DocNumber']}")
    expect()(page.locator("main")).to_contain_text("Amy's Bird Sanctuary")
    expect()(page.locator("main")).to_contain_text("$360.00")

"""The reconciliation page in a real browser (issue 16 item 5): the demo's one difference to look
at, its explanation and the history filter, through the real sandbox; keyboard alone reaches the
filters, "Refresh from QuickBooks" and the CSV link; axe-core finds no WCAG 2 A/AA problem
(English and Spanish).

Set SCREENSHOTS_DIR (e.g. docs/screenshots) to also write reconciliation.png.
"""

from __future__ import annotations

import datetime
import os
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from practice.billing import services as billing
from practice.clients.services import account_create
from practice.quickbooks.models import CustomerBalance, SyncLink
from practice.quickbooks.sync import balances
from tests.browser.axe import axe_violations
from tests.browser.conftest import CLIENT_ID, expect
from tests.quickbooks.conftest import connect_firm

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
URL = "/settings/integrations/quickbooks/reconciliation/"


@pytest.fixture
def cached(firm, offline_connection):
    """A connection whose QBO figures are cached (nothing is read from QBO while the page shows)."""
    conn = offline_connection
    svc = billing.service_create(firm=firm, name="Bookkeeping", rate="100.00")
    today = timezone.localdate()
    for i, name in enumerate(("Harbor Bakery", "Quay Books")):
        account = account_create(firm=firm, name=name, kind="company")
        inv = billing.invoice_create(
            firm=firm,
            account=account,
            issue_date=today,
            due_date=today + datetime.timedelta(days=30),
            lines=[{"service": svc, "description": "Work", "quantity": Decimal(1), "rate": svc.rate}],
        )
        billing.invoice_issue(invoice=inv)
        SyncLink.objects.create(
            firm=firm,
            connection=conn,
            kind="customer",
            local_id=account.pk,
            status="synced",
            qbo_id=str(70 + i),
            qbo_name=name,
        )
        SyncLink.objects.create(
            firm=firm,
            connection=conn,
            kind="invoice",
            local_id=inv.pk,
            status="synced",
            qbo_id=str(170 + i),
            qbo_sync_token="0",
        )
        hand = (
            [
                {
                    "id": "900",
                    "doc": "1099",
                    "date": today.isoformat(),
                    "total": "45.00",
                    "balance": "45.00",
                    "token": "0",
                    "created": timezone.now().isoformat(),
                }
            ]
            if i == 0
            else []
        )
        CustomerBalance.objects.create(
            connection=conn,
            qbo_customer_id=str(70 + i),
            stale=False,
            read_at=timezone.now(),
            invoiced=Decimal("100.00") + (45 if i == 0 else 0),
            paid=Decimal("0.00"),
            open=Decimal("100.00") + (45 if i == 0 else 0),
            invoice_count=1 + len(hand),
            detail={
                "invoices": [
                    {
                        "id": str(170 + i),
                        "doc": inv.number,
                        "date": today.isoformat(),
                        "total": "100.00",
                        "balance": "100.00",
                        "token": "0",
                        "created": "",
                    },
                    *hand,
                ],
                "payments": [],
                "refunds": [],
            },
        )
    return conn


def test_page_by_keyboard_and_axe(live_server, login, cached):
    page = login("admin@acme.test")
    page.goto(f"{live_server.url}/settings/integrations/quickbooks/")
    assert axe_violations(page) == []  # the link to the page, among the settings
    page.locator("#qbo-reconciliation-link a").focus()
    page.keyboard.press("Enter")
    expect()(page.locator("h1")).to_contain_text("Reconciliation")
    rows = page.locator(".qbo-reconciliation-list tbody tr")
    expect()(rows).to_have_count(1)
    expect()(rows.first).to_contain_text("Harbor Bakery")
    expect()(rows.first).to_contain_text("Created in QuickBooks by hand: invoice 1099 $45.00 (open $45.00).")
    assert axe_violations(page) == []
    # The filters, the button and the CSV link are reached with Tab alone.
    reached = set()
    for _ in range(60):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.id"))
        if {"qbo-show-all", "qbo-reconciliation-refresh", "qbo-reconciliation-csv"} <= reached:
            break
    assert {"qbo-show-all", "qbo-reconciliation-refresh", "qbo-reconciliation-csv"} <= reached
    page.locator("#qbo-show-all").focus()
    page.keyboard.press("Enter")
    expect()(rows).to_have_count(2)
    expect()(rows.nth(1)).to_contain_text("Matches")
    assert axe_violations(page) == []
    page.locator("#qbo-reconciliation-refresh").focus()
    page.keyboard.press("Enter")
    expect()(page.locator("[role=status]").first).to_contain_text("Reading the figures from QuickBooks")


def test_page_in_spanish_passes_axe(live_server, login, cached):
    page = login("owner@acme.test", language="es")
    page.goto(f"{live_server.url}{URL}?show=all")
    expect()(page.locator("h1")).to_contain_text("Conciliación")
    expect()(page.locator("#qbo-reconciliation-refresh")).to_have_text("Actualizar desde QuickBooks")
    expect()(page.locator(".qbo-explanations").first).to_contain_text("Creada a mano en QuickBooks")
    assert axe_violations(page) == []


def test_demo_page_shows_the_planted_difference(live_server, login, qbo_live, db):
    """The demo, connected and synced through the sandbox: the page lists Bill's Windsurf Shop
    alone, with INV-0002's Error; the sample company's history is under its own filter."""
    from practice.billing.demo import DEMO_OWNER_EMAIL, DEMO_PASSWORD, demo_seed
    from practice.quickbooks.demo.seed import seed_demo_company
    from tests.quickbooks.test_billing_demo import _confirm_setup_defaults, _run_until_idle

    firm = demo_seed().firm
    realm = qbo_live.create_realm(seed="sample-us", name="Demo Company (sandbox)")
    seed_demo_company(realm, qbo_live.url)
    conn = _confirm_setup_defaults(connect_firm(firm, realm, qbo_live, client_id=CLIENT_ID))
    _run_until_idle(conn)
    balances.refresh_balances(conn.pk)
    page = login(DEMO_OWNER_EMAIL, password=DEMO_PASSWORD)
    page.goto(f"{live_server.url}{URL}")
    rows = page.locator(".qbo-reconciliation-list tbody tr")
    expect()(rows).to_have_count(1)
    expect()(rows.first).to_contain_text("Bill's Windsurf Shop")
    expect()(rows.first).to_contain_text("Invoice INV-0002 ($900.00): in Error")
    assert axe_violations(page) == []
    out = os.environ.get("SCREENSHOTS_DIR")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(out) / "reconciliation.png"), full_page=True)
    page.locator("#qbo-show-history").click()
    expect()(rows).to_have_count(13)
    assert axe_violations(page) == []

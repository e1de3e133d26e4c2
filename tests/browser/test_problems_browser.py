"""The QuickBooks problems page and the banner in a real browser (issue 11 item 2): the banner
links there from any page, the page lists the failing records, "Retry" works by keyboard alone,
the banner goes away once nothing needs attention, and axe-core finds no WCAG 2 A/AA problem
(English and Spanish).
"""

from __future__ import annotations

import pytest

from practice.clients.models import ClientAccount
from practice.quickbooks.models import SyncAttempt, SyncLink
from practice.quickbooks.statuses import SyncStatus
from tests.browser.axe import axe_violations
from tests.browser.conftest import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def broken(firm, offline_connection):
    conn = offline_connection
    diner = ClientAccount.objects.create(firm=firm, name="Red Rock Diner")
    link = SyncLink.objects.create(
        firm=firm,
        connection=conn,
        kind="customer",
        local_id=diner.pk,
        status=SyncStatus.ERROR,
        error_kind="rejected",
        error_code="6240",
        error_message="QuickBooks refused the name “Red Rock Diner”: another record already uses it.",
        error_detail="Duplicate Name Exists Error",
    )
    SyncAttempt.objects.create(link=link, operation="create", outcome="rejected", fault_code="6240")
    return {"conn": conn, "diner": diner, "link": link}


def test_banner_leads_to_the_problems_page_and_retry_by_keyboard(live_server, login, broken):
    page = login("admin@acme.test")
    page.goto(f"{live_server.url}/clients/accounts/")
    banner = page.locator("#qbo-problems-banner")
    expect()(banner).to_contain_text("need your attention")
    assert axe_violations(page) == []
    banner.get_by_role("link", name="See the problems").click()
    expect()(page.locator("h1")).to_contain_text("Problems")
    expect()(page.locator("#qbo-problems-banner")).to_have_count(0)  # not on the page it links to
    row = page.locator(".qbo-problem-list tbody tr")
    expect()(row).to_have_count(1)
    expect()(row).to_contain_text("Red Rock Diner")
    expect()(row).to_contain_text("another record already uses it")
    expect()(row.locator(".qbo-fault-code")).to_have_text("6240")
    expect()(page.locator(".qbo-problem-counts a[data-kind=customer] .badge")).to_have_text("1")
    assert axe_violations(page) == []
    retry = row.get_by_role("button", name="Retry Red Rock Diner")
    retry.focus()
    page.keyboard.press("Enter")
    expect()(page.locator("[role=status]").first).to_contain_text("Retrying with the next sync.")
    expect()(page.locator(".qbo-problem-list")).to_have_count(0)
    expect()(page.locator(".qbo-no-problems")).to_be_visible()
    assert axe_violations(page) == []
    broken["link"].refresh_from_db()
    assert broken["link"].status == SyncStatus.SYNCING
    page.goto(f"{live_server.url}/clients/accounts/")
    expect()(page.locator("#qbo-problems-banner")).to_have_count(0)


def test_problems_page_in_spanish_passes_axe(live_server, login, broken):
    page = login("owner@acme.test", language="es")
    page.goto(f"{live_server.url}/settings/integrations/quickbooks/problems/")
    expect()(page.locator("h1")).to_contain_text("Problemas")
    expect()(page.locator("#qbo-retry-all")).to_contain_text("Reintentar")
    assert axe_violations(page) == []
    page.goto(f"{live_server.url}/billing/invoices/")
    expect()(page.locator("#qbo-problems-banner")).to_contain_text("Ver los problemas")
    assert axe_violations(page) == []

"""Account sync in a real browser: the dialog, tooltips, Spanish labels, roles, screenshots.

Set SCREENSHOTS_DIR (e.g. docs/screenshots) to also write accounts-list.png and
account-info-error.png there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.utils import timezone, translation

from practice.clients.services import account_create
from practice.quickbooks.models import SyncLink
from practice.quickbooks.sync import engine
from tests.browser.conftest import CLIENT_ID, expect
from tests.quickbooks.conftest import connect_firm

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def synced_firm(firm, qbo_live):
    realm = qbo_live.create_realm(seed="sample-us")
    conn = connect_firm(firm, realm, qbo_live, client_id=CLIENT_ID)
    conn.account_scope = "all"
    conn.setup_completed_at = timezone.now()
    conn.save()
    names = ["Amy's Bird Sanctuary", "Pyes Cakes", "Books by Bessie", "Smith: Tax Client", "Brand New Client"]
    accts = {n: account_create(firm=firm, name=n, email="hello@example.com") for n in names}
    engine.run_realm(conn.pk)
    return conn, accts


def test_owner_links_error_account_through_the_dialog(live_server, login, synced_firm):
    conn, accts = synced_firm
    acct = accts["Pyes Cakes"]
    page = login("owner@acme.test")
    page.goto(f"{live_server.url}/clients/accounts/{acct.pk}/")
    panel = page.locator("#qbo-panel")
    expect()(panel.locator(".badge")).to_have_text("Error")
    page.locator(".qbo-menu summary").click()
    page.get_by_role("button", name="Sync account with QuickBooks").click()
    dialog = page.locator("#qbo-sync-dialog")
    expect()(dialog).to_be_visible()
    expect()(dialog.locator(".qbo-picker tbody tr").first).to_be_visible()  # live list from QBO
    dialog.locator("#qbo-picker-q").fill("Pye")
    row = dialog.locator("tr", has_text="Pye's Cakes")
    expect()(row).to_be_visible()
    expect()(dialog.locator(".qbo-picker tbody tr")).to_have_count(1)
    row.get_by_role("button", name="Link").click()
    expect()(page.locator("#qbo-panel .badge")).to_have_text("Synced")
    expect()(page.locator("#qbo-sync-dialog")).to_have_count(0)
    link = SyncLink.objects.get(connection=conn, local_id=acct.pk)
    assert link.status == "synced" and link.qbo_name == "Pye's Cakes"


def test_hovering_a_status_shows_its_tooltip(live_server, login, synced_firm):
    _conn, accts = synced_firm
    page = login("owner@acme.test")
    page.goto(f"{live_server.url}/clients/accounts/")
    cell = page.locator(f"#qbo-status-{accts['Books by Bessie'].pk} .qbo-status")
    tip = cell.locator(".tip-body")
    expect()(tip).to_be_hidden()
    cell.hover()
    expect()(tip).to_be_visible()
    expect()(tip).to_contain_text("vendor")
    synced = page.locator(f"#qbo-status-{accts['Amy' + chr(39) + 's Bird Sanctuary'].pk} .qbo-status")
    synced.hover()
    expect()(synced.locator(".tip-body")).to_contain_text("Amy's Bird Sanctuary")
    expect()(synced.locator(".tip-body a")).to_have_attribute(
        "href", __import__("re").compile("customerdetail")
    )


def test_account_info_error_and_menu(live_server, login, synced_firm):
    _conn, accts = synced_firm
    page = login("owner@acme.test")
    page.goto(f"{live_server.url}/clients/accounts/{accts['Pyes Cakes'].pk}/")
    expect()(page.locator(".qbo-error")).to_contain_text("Pye's Cakes")
    page.locator(".qbo-menu summary").click()
    expect()(page.get_by_role("button", name="Do not sync this account")).to_be_visible()
    expect()(page.get_by_role("button", name="Retry")).to_be_visible()


def test_a_refused_action_shows_why_in_the_panel(live_server, login, synced_firm):
    """The server answers 409 with the panel that says why; htmx must swap it in (htmx 2 drops
    4xx bodies unless told otherwise, and the person saw nothing happen)."""
    _conn, accts = synced_firm
    acct = accts["Pyes Cakes"]
    page = login("owner@acme.test")
    page.goto(f"{live_server.url}/clients/accounts/{acct.pk}/")
    # Archived in another tab after this page was loaded: Retry is refused.
    type(acct).objects.filter(pk=acct.pk).update(archived=True)
    page.locator(".qbo-menu summary").click()
    page.get_by_role("button", name="Retry").click()
    expect()(page.locator("#qbo-panel")).to_contain_text("Archived accounts are not synced")


def test_spanish_ui_shows_spanish_labels(live_server, login, synced_firm, firm):
    with translation.override("es"):
        assert translation.gettext("Synced") == "Sincronizada"  # the compiled catalogue is there
    owner = firm.memberships.get(role="owner").user
    owner.language = "es"
    owner.save(update_fields=["language"])
    page = login("owner@acme.test", language="es")
    page.goto(f"{live_server.url}/clients/accounts/")
    badges = page.locator("#account-table .qbo-status .badge")
    texts = set(badges.all_inner_texts())
    assert {"Sincronizada", "Error"} <= texts
    filters = page.locator(".qbo-filters").inner_text()
    for label in ("Sincronizada", "No sincronizada", "Omitida", "Error", "Sincronización"):
        assert label in filters


def test_employee_sees_statuses_but_no_menu(live_server, login, synced_firm):
    _conn, accts = synced_firm
    page = login("employee@acme.test")
    page.goto(f"{live_server.url}/clients/accounts/{accts['Pyes Cakes'].pk}/")
    expect()(page.locator("#qbo-panel .badge")).to_have_text("Error")
    expect()(page.locator(".qbo-menu")).to_have_count(0)
    expect()(page.locator("#qbo-sync-dialog")).to_have_count(0)
    page.goto(f"{live_server.url}/clients/accounts/")
    expect()(page.locator("#qbo-bulk")).to_have_count(0)


def test_list_updates_live_while_syncing(live_server, login, synced_firm):
    conn, accts = synced_firm
    acct = accts["Brand New Client"]
    SyncLink.objects.filter(connection=conn, local_id=acct.pk).update(status="syncing")
    page = login("owner@acme.test")
    page.goto(f"{live_server.url}/clients/accounts/")
    badge = page.locator(f"#qbo-status-{acct.pk} .badge")
    expect()(badge).to_have_text("Syncing")
    expect()(page.locator("#qbo-poller[hx-get]")).to_have_count(1)
    SyncLink.objects.filter(connection=conn, local_id=acct.pk).update(status="synced")
    expect()(badge).to_have_text("Synced", timeout=8000)  # the 2 s poll brought it
    expect()(page.locator("#qbo-poller[hx-get]")).to_have_count(0)  # and polling stopped


def test_demo_screenshots(live_server, login, qbo_live, db):
    """The two README screenshots from the demo data (runs only when SCREENSHOTS_DIR is set)."""
    out = os.environ.get("SCREENSHOTS_DIR")
    if not out:
        pytest.skip("set SCREENSHOTS_DIR to write the demo screenshots")
    from practice.billing.demo import DEMO_OWNER_EMAIL, DEMO_PASSWORD, demo_seed
    from practice.quickbooks.demo.seed import seed_demo_company

    firm = demo_seed().firm
    realm = qbo_live.create_realm(seed="sample-us", name="Demo Company (sandbox)")
    seed_demo_company(realm, qbo_live.url)
    from tests.quickbooks.test_billing_demo import _confirm_setup_defaults, _run_until_idle

    conn = _confirm_setup_defaults(connect_firm(firm, realm, qbo_live, client_id=CLIENT_ID))
    _run_until_idle(conn)
    page = login(DEMO_OWNER_EMAIL, password=DEMO_PASSWORD)
    Path(out).mkdir(parents=True, exist_ok=True)
    page.goto(f"{live_server.url}/clients/accounts/")
    error = page.locator(".qbo-status[data-status=error]").first
    error.hover()
    expect()(error.locator(".tip-body")).to_be_visible()
    page.screenshot(path=str(Path(out) / "accounts-list.png"), full_page=True)
    pyes = firm.accounts.get(name="Pyes Cakes")
    page.goto(f"{live_server.url}/clients/accounts/{pyes.pk}/")
    expect()(page.locator(".qbo-error")).to_be_visible()
    page.screenshot(path=str(Path(out) / "account-info-error.png"), full_page=True)
    # Billing: the invoices list with its QuickBooks column, a Synced invoice, and the demo's
    # deliberate invoice-number clash with its fix (the renumber form).
    from practice.billing.demo import docnumber_clash_invoice
    from practice.billing.models import Invoice

    page.goto(f"{live_server.url}/billing/invoices/")
    page.screenshot(path=str(Path(out) / "invoices-list.png"), full_page=True)
    synced_id = SyncLink.objects.filter(connection=conn, kind="invoice", status="synced").values_list(
        "local_id", flat=True
    )[0]
    page.goto(f"{live_server.url}/billing/invoices/{Invoice.objects.get(pk=synced_id).pk}/")
    expect()(page.locator(".badge", has_text="Synced").first).to_be_visible()
    page.screenshot(path=str(Path(out) / "invoice-synced.png"), full_page=True)
    clash = docnumber_clash_invoice(firm)
    assert clash is not None
    page.goto(f"{live_server.url}/billing/invoices/{clash.pk}/")
    expect()(page.locator(".badge", has_text="Error").first).to_be_visible()
    page.screenshot(path=str(Path(out) / "invoice-number-clash.png"), full_page=True)

"""The accounts pages in a real browser (Debian's Chromium via Playwright): htmx search and
paging, the archived toggle, the language menu, and a hostile name that must not run."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from practice.clients.models import ClientAccount
from practice.clients.services import account_archive, account_create
from tests.common.csp_watch import watch
from tests.conftest import PASSWORD, ROLE_EMAILS

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop shares the thread

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def chromium():
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"No Chromium at {CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)")
    from playwright.sync_api import sync_playwright

    # Chromium writes crash reports and caches under HOME even with a temporary profile (G7).
    scratch = Path(tempfile.mkdtemp(prefix="accounts-browser-"))
    saved = {k: os.environ.get(k) for k in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    os.environ.update(
        HOME=str(scratch), XDG_CONFIG_HOME=str(scratch / "config"), XDG_CACHE_HOME=str(scratch / "cache")
    )
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            yield browser
            browser.close()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture
def signed_in(chromium, live_server, firm, transactional_db):
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    pg = context.new_page()
    violations = watch(pg)
    pg.csp_violations = violations  # type: ignore[attr-defined]
    alerts: list[str] = []
    pg.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
    pg.alerts = alerts  # type: ignore[attr-defined]
    pg.goto(live_server.url + "/login/")
    pg.fill("#id_username", ROLE_EMAILS["owner"])
    pg.fill("#id_password", PASSWORD)
    pg.click("form.login-card button[type=submit], .login-card button[type=submit]")
    pg.wait_for_url("**/clients/accounts/")
    yield pg
    context.close()
    assert violations == []


def rows(pg) -> list[str]:
    return pg.locator("table.list tbody td.name a").all_inner_texts()


def test_search_paging_and_archived_toggle(signed_in, firm, live_server):
    page = signed_in
    ClientAccount.objects.bulk_create([ClientAccount(firm=firm, name=f"Client {i:02d}") for i in range(30)])
    old = account_create(firm=firm, name="Dental Old Office")
    account_archive(account=old)
    account_create(firm=firm, name="Dental Group")
    page.reload()
    assert len(rows(page)) == 25

    page.fill("#account-search", "dental")
    page.wait_for_url("**/clients/accounts/?q=dental*")
    expect(page.locator("table.list tbody tr")).to_have_count(1)
    assert rows(page) == ["Dental Group"]
    assert page.evaluate("document.activeElement.id") == "account-search"  # only the table swapped

    page.check("input[name=archived]")
    expect(page.locator("table.list tbody tr")).to_have_count(2)
    assert rows(page) == ["Dental Group", "Dental Old Office"]

    page.fill("#account-search", "client")
    expect(page.locator("table.list tbody tr")).to_have_count(25)
    page.click("nav.pager >> text=Next")
    page.wait_for_url("**page=2*")
    expect(page.locator("table.list tbody tr")).to_have_count(5)
    assert rows(page)[0] == "Client 25"


def test_language_menu_switches_and_keeps_the_page(signed_in, live_server):
    page = signed_in
    page.goto(live_server.url + "/clients/accounts/?q=zzz")
    page.select_option("#lang-select", "es")
    expect(page.locator("html")).to_have_attribute("lang", "es")
    assert page.url.endswith("/clients/accounts/?q=zzz")
    assert page.locator("h1").inner_text() == "Cuentas"
    assert "Nueva cuenta" in page.content()


def test_a_hostile_name_is_shown_not_run(signed_in, firm, live_server):
    page = signed_in
    account = account_create(firm=firm, name='<img src=x onerror="alert(1)"><script>alert(2)</script>')
    page.goto(live_server.url + "/clients/accounts/")
    page.goto(f"{live_server.url}/clients/accounts/{account.pk}/")
    assert page.locator("h1").inner_text().startswith("<img src=x")
    page.wait_for_timeout(300)
    assert page.alerts == []  # type: ignore[attr-defined]


def test_the_csp_refuses_script_that_got_into_the_page(signed_in, live_server):
    """Were escaping ever to fail, an injected handler or <script> still would not run."""
    page = signed_in
    page.evaluate(
        """() => {
            const img = document.createElement("img");
            img.setAttribute("onerror", "window.__injected = 1");
            img.src = "data:,not-an-image";
            document.body.append(img);
            const script = document.createElement("script");
            script.textContent = "window.__injected = 2";
            document.body.append(script);
        }"""
    )
    expect(page.locator("body")).to_be_visible()
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__injected") is None
    assert len(page.csp_violations) >= 2, page.csp_violations
    assert all("script-src 'self'" in v for v in page.csp_violations)
    page.csp_violations.clear()  # expected here; any other test's violation still fails it


def test_invoice_lines_are_added_and_removed_without_inline_script(signed_in, firm, live_server):
    """Add line (a unique row index from app.js, no hx-vals js:) and the row's ✕ (no hx-on)."""
    from practice.billing.services import service_create

    account_create(firm=firm, name="Line Co")
    service_create(firm=firm, name="Bookkeeping", rate="100.00")
    page = signed_in
    page.goto(live_server.url + "/billing/invoices/new/")
    lines = page.locator("#line-rows tr.line-row")
    before = lines.count()
    page.click("button.add-line")
    expect(lines).to_have_count(before + 1)
    page.click("button.add-line")
    expect(lines).to_have_count(before + 2)
    names = page.locator("#line-rows select[name$='-service']").evaluate_all("els => els.map(e => e.name)")
    assert len(set(names)) == len(names), names  # every row its own index
    lines.last.locator("[data-action=remove-line]").click()
    expect(lines).to_have_count(before + 1)

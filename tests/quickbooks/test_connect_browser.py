"""The issue's "done when", in a real browser: the owner connects the sandbox company and sees
its name and accounts in the setup form; an employee cannot reach the settings (403).

Playwright drives Debian's Chromium against `live_server`; the authorize page is the sandbox's.
Skipped only when there is no Chromium binary.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

import pytest
from django.urls import reverse

from practice.quickbooks.models import Connection, ConnectionStatus
from tests.common.csp_watch import watch
from tests.quickbooks.conftest import REDIRECT_URI, TEST_CLIENT_ID, TEST_CLIENT_SECRET

# Playwright's sync API runs an event loop in this thread; the ORM calls here stay synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def chromium():
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"No Chromium at {CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)")
    from playwright.sync_api import sync_playwright

    scratch = tempfile.mkdtemp(prefix="qbo-browser-")
    saved = {k: os.environ.get(k) for k in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    os.environ.update({"HOME": scratch, "XDG_CONFIG_HOME": scratch, "XDG_CACHE_HOME": scratch})
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--no-first-run"],
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
def signed_in(chromium, live_server):
    from django.conf import settings as dj_settings
    from django.test import Client

    contexts = []

    def make(email: str):
        from practice.firms.models import User

        c = Client()
        c.force_login(User.objects.get(email=email))  # Client.login() lacks the request axes needs
        context = chromium.new_context(viewport={"width": 1200, "height": 900})
        context.add_cookies(
            [
                {
                    "name": dj_settings.SESSION_COOKIE_NAME,
                    "value": c.cookies[dj_settings.SESSION_COOKIE_NAME].value,
                    "url": live_server.url,
                }
            ]
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)  # generous: the CI box is shared by parallel jobs
        violations.append(watch(page))
        return page

    violations: list[list[str]] = []
    yield make
    for context in contexts:
        context.close()
    assert [v for page_violations in violations for v in page_violations] == []


def test_owner_connects_in_the_browser_and_employee_gets_403(signed_in, live_server, sandbox, firm, settings):
    realm_id = sandbox.create_realm(seed="sample-us", name="Browser Books & Co")
    callback = live_server.url + reverse("quickbooks:callback")
    # The redirect URI is the live server's; keep the Django-test-client one registered too.
    sandbox.register_app(
        redirect_uris=[REDIRECT_URI, callback], client_id=TEST_CLIENT_ID, client_secret=TEST_CLIENT_SECRET
    )
    settings.QBO_REDIRECT_URI = callback

    employee = signed_in("employee@acme.test")
    response = employee.goto(live_server.url + reverse("quickbooks:settings"))
    assert response.status == 403

    page = signed_in("owner@acme.test")
    page.goto(live_server.url + reverse("quickbooks:settings"))
    page.get_by_role("button", name="Connect to QuickBooks").click()
    page.wait_for_url(re.compile(re.escape(sandbox.url) + r"/connect/oauth2.*"))
    page.check(f"input[name=realm_id][value='{realm_id}']")
    page.get_by_role("button", name="Connect", exact=True).click()
    page.wait_for_url(re.compile(r".*/setup/$"))

    assert page.locator(".company-name").inner_text() == "Browser Books & Co"
    income = page.locator("select[name=income_account] option:checked").inner_text()
    deposit = page.locator("select[name=deposit_account] option:checked").inner_text()
    assert (income, deposit) == ("Services", "Undeposited Funds")
    assert page.locator("select[name=income_account] option").count() > 1

    page.get_by_role("button", name="Save and preview the first sync").click()
    page.wait_for_url(re.compile(r".*/setup/confirm/$"))
    # The sync side's preview partial arrives through htmx, read live from the company.
    page.locator("#qbo-preview").wait_for()
    assert not Connection.objects.get(firm=firm).is_set_up
    # "Start syncing" waits for the preview (issue 11): disabled until a worker has read it.
    start = page.get_by_role("button", name="Start syncing")
    assert start.is_disabled()
    from tests.quickbooks.test_sync_preview import run_worker

    run_worker()
    page.locator(".qbo-preview-counts").wait_for()
    assert start.is_enabled()
    start.click()
    page.wait_for_url(re.compile(r".*/settings/integrations/quickbooks/$"))
    assert "QuickBooks syncing has started." in page.content()
    assert page.locator("[data-status=connected]").is_visible()
    connection = Connection.objects.get(firm=firm)
    assert connection.status == ConnectionStatus.CONNECTED and connection.realm_id == realm_id
    assert connection.is_set_up

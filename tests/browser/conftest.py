"""Browser tests: Playwright's sync API driving Debian's Chromium against `live_server`, with the
QBO side served by qbo_sandbox over HTTP (stack-notes §3, G7).

Skipped, with a clear message, only when no Chromium binary exists (CHROMIUM_PATH or
/usr/bin/chromium). Chromium's profile, crash reports and caches go to a scratch directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.common.csp_watch import watch

# Playwright's sync API runs an event loop in this thread; Django's ORM calls from the test body
# are still synchronous and safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CLIENT_ID = "practice-browser-tests"
CLIENT_SECRET = "practice-browser-tests-secret"


def expect():
    """Playwright's `expect`, imported when a test runs (after the Chromium check), not when the
    test modules are collected."""
    from playwright.sync_api import expect as pw_expect

    return pw_expect


@pytest.fixture(scope="session")
def _scratch():
    path = Path(tempfile.mkdtemp(prefix="browser-tests-"))
    saved = {k: os.environ.get(k) for k in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    os.environ.update(
        {"HOME": str(path), "XDG_CONFIG_HOME": str(path / "config"), "XDG_CACHE_HOME": str(path / "cache")}
    )
    yield path
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    shutil.rmtree(path, ignore_errors=True)


# Module scope: Playwright's sync API allows one running instance per thread, and other test
# modules (tests/clients/test_browser.py) start their own after this one is closed.
@pytest.fixture(scope="module")
def pw_browser(_scratch):
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"No Chromium at {CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def browser_sandbox():
    from qbo_sandbox.config import SandboxConfig
    from qbo_sandbox.testing import SandboxServer

    with SandboxServer(SandboxConfig()) as server:
        server.register_app(
            redirect_uris=["http://testserver/cb/"], client_id=CLIENT_ID, client_secret=CLIENT_SECRET
        )
        yield server


@pytest.fixture
def qbo_live(settings, browser_sandbox):
    settings.QBO_ENVIRONMENT = "sandbox-local"
    settings.QBO_CLIENT_ID = CLIENT_ID
    settings.QBO_CLIENT_SECRET = CLIENT_SECRET
    settings.QBO_SANDBOX_URL = browser_sandbox.url
    settings.QBO_HTTP_TIMEOUT_SECONDS = 5.0
    return browser_sandbox


@pytest.fixture
def offline_connection(firm, settings):
    """`firm`'s connection, connected and set up, whose QBO is unreachable: a page that shows it
    can only show what is stored (a test that needs the live sandbox uses `qbo_live`)."""
    from django.utils import timezone

    from practice.quickbooks.models import Connection

    settings.QBO_SANDBOX_URL = "http://sandbox.test"
    return Connection.objects.create(
        firm=firm,
        realm_id="4620816365",
        status="connected",
        environment="sandbox-local",
        setup_completed_at=timezone.now(),
    )


@pytest.fixture
def login(pw_browser, live_server):
    """login(email) -> a Playwright page signed in as that user (session cookie from Django)."""
    from django.conf import settings as dj_settings
    from django.test import Client

    from tests.conftest import PASSWORD

    contexts = []

    def make(email: str, *, language: str = "en", password: str = PASSWORD):
        from practice.firms.models import User

        user = User.objects.get(email=email)
        assert user.check_password(password)
        c = Client()
        c.force_login(user)  # Client.login() bypasses the request django-axes needs
        cookie = c.cookies[dj_settings.SESSION_COOKIE_NAME].value
        context = pw_browser.new_context(viewport={"width": 1280, "height": 900}, locale=language)
        context.add_cookies(
            [{"name": dj_settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        violations.append(watch(page))
        return page

    violations: list[list[str]] = []
    yield make
    for context in contexts:
        context.close()
    assert [v for page_violations in violations for v in page_violations] == []

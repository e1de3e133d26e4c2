"""Prepare the bundled QBO sandbox for `make demo` (QBO_ENVIRONMENT=sandbox-local).

`prepare()` is called by the demo supervisor right after the sandbox process answers. It talks
to the sandbox's control plane (`/_sandbox/...`, localhost only) over HTTP, and is idempotent:

1. registers this app's OAuth client (the development credentials of `oauth.environment()`)
   with redirect URI settings.QBO_REDIRECT_URI, as one would in Intuit's developer portal, and
   its webhook: the app's `/webhooks/quickbooks/` (same origin as the redirect URI, which
   `run_stack` points at the port it serves), the verifier token the receiver checks
   (`sync.webhooks.verifier_token()`), CloudEvents format (Intuit's only format after May 2026);
   a registration kept in the sandbox's snapshot is updated in place;
2. creates the demo company "Demo Company (sandbox)" seeded "sample-us" unless it exists,
   then (also for an existing one) lets `seed_demo_company(realm_id)` add what the demo story
   needs: customers/vendors, and the billing set-up and deliberate problems.

Nothing here runs for Intuit's environments; the app itself never calls the control plane.
"""

from __future__ import annotations

import importlib
import logging
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings
from django.urls import reverse

from practice.quickbooks.connection import oauth
from practice.quickbooks.sync import webhooks

log = logging.getLogger("practice.quickbooks.local_sandbox")

DEMO_COMPANY_NAME = "Demo Company (sandbox)"
DEMO_SEED = "sample-us"
APP_NAME = "Practice (local development)"


def _control(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=f"{base_url.rstrip('/')}/_sandbox", timeout=httpx.Timeout(15.0, connect=5.0))


def wait_until_up(base_url: str | None = None, *, timeout: float = 30.0) -> None:
    """Block until the sandbox's health endpoint answers (the supervisor starts it just before)."""
    base_url = base_url or settings.QBO_SANDBOX_URL
    deadline = time.monotonic() + timeout
    with _control(base_url) as http:
        while True:
            try:
                if http.get("/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"The QBO sandbox at {base_url} did not start within {timeout:.0f} s")
            time.sleep(0.2)


def webhook_url() -> str:
    """Where the sandbox sends notifications: the webhook receiver on the app's own origin."""
    parts = urlsplit(str(settings.QBO_REDIRECT_URI))
    return urlunsplit((parts.scheme or "http", parts.netloc, reverse("quickbooks_webhook"), "", ""))


def register_app(base_url: str | None = None) -> str:
    """Register (or update) this app's OAuth client and webhook with the sandbox; returns the client id."""
    base_url = base_url or settings.QBO_SANDBOX_URL
    env = oauth.environment("sandbox-local")
    redirect_uris = [env.redirect_uri]
    hook = webhook_url()
    with _control(base_url) as http:
        resp = http.post(
            "/apps",
            json={
                "client_id": env.client_id,
                "client_secret": env.client_secret,
                "redirect_uris": redirect_uris,
                "name": APP_NAME,
                "webhook_url": hook,
                "verifier_token": webhooks.verifier_token(),
                "webhook_format": "cloudevents",
            },
        )
        resp.raise_for_status()
    log.info(
        "qbo.sandbox.app_registered client_id=%s redirect_uri=%s webhook_url=%s",
        env.client_id,
        env.redirect_uri,
        hook,
    )
    return env.client_id


def ensure_demo_company(base_url: str | None = None, *, name: str = DEMO_COMPANY_NAME) -> str:
    """The realm id of the demo company, creating and seeding it the first time."""
    base_url = base_url or settings.QBO_SANDBOX_URL
    with _control(base_url) as http:
        resp = http.get("/realms")
        resp.raise_for_status()
        realms: list[dict[str, Any]] = resp.json().get("realms", [])
        existing = next((r for r in realms if r.get("company_name") == name), None)
        if existing is not None:
            # The seed is idempotent: a company kept from an earlier `make demo` (the sandbox's
            # snapshot) gets what a newer demo story adds, e.g. the billing problems of issue 10.
            realm_id = str(existing["realm_id"])
            seed_demo_company(realm_id)
            return realm_id
        resp = http.post("/realms", json={"seed": DEMO_SEED, "name": name})
        resp.raise_for_status()
        realm_id = str(resp.json()["realm_id"])
    log.info("qbo.sandbox.demo_company_created realm=%s", realm_id)
    seed_demo_company(realm_id)
    return realm_id


def seed_demo_company(realm_id: str) -> None:
    """Hook: add the customers/vendors the demo's matching story needs to a fresh demo realm.

    The sync side owns the story: `practice.quickbooks.demo.seed.seed_demo_company(realm_id)` is
    used when that module exists; otherwise the "sample-us" seed alone is the demo company.
    """
    try:
        demo = importlib.import_module("practice.quickbooks.demo.seed")
    except ModuleNotFoundError as exc:
        if exc.name != "practice.quickbooks.demo.seed":
            raise
        return
    hook = getattr(demo, "seed_demo_company", None)
    if callable(hook):
        hook(realm_id)


def prepare(base_url: str | None = None) -> str:
    """Register the OAuth app and make sure the demo company exists; returns its realm id."""
    base_url = base_url or settings.QBO_SANDBOX_URL
    wait_until_up(base_url)
    register_app(base_url)
    return ensure_demo_company(base_url)

"""What Intuit's security review checks (security.md), shown by tests where a test can show it."""

from __future__ import annotations

import os
import re
import secrets
import subprocess

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from practice.clients.models import ClientAccount
from practice.clients.services import account_create
from practice.firms.models import User
from tests.common.csp_watch import assert_locked_down, policy_of
from tests.common.shared_db import MANAGE
from tests.conftest import PASSWORD, ROLE_EMAILS

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def account(firm):
    return account_create(firm=firm, name="Alvarez & Sons")


def page_urls(account) -> list[str]:
    return [
        reverse("clients:account_list"),
        reverse("clients:account_detail", args=[account.pk]),
        reverse("clients:account_create"),
        reverse("clients:account_edit", args=[account.pk]),
        reverse("profile"),
    ]


# --- headers -----------------------------------------------------------------------------------


def test_pages_are_not_cached(client_as, account):
    c = client_as("owner")
    for url in [*page_urls(account), reverse("login")]:
        response = (c if url != reverse("login") else Client()).get(url)
        assert response.status_code == 200, url
        cache_control = response["Cache-Control"]
        assert "no-cache" in cache_control and "no-store" in cache_control, url
        assert "private" not in cache_control
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"


def test_redirects_and_errors_are_not_cached_either(client_as, account, other_firm):
    assert "no-store" in Client().get(reverse("clients:account_list"))["Cache-Control"]  # 302 to login
    response = client_as("other").get(reverse("clients:account_detail", args=[account.pk]))
    assert response.status_code == 404
    assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize("method", ["TRACE", "TRACK", "CONNECT", "PROPFIND"])
def test_unused_http_methods_are_refused(client_as, account, method):
    for c in (Client(), client_as("owner")):
        for url in [reverse("login"), *page_urls(account)]:
            assert c.generic(method, url).status_code == 405, (method, url)


# --- cookies -----------------------------------------------------------------------------------


def login(c: Client, email: str = ROLE_EMAILS["owner"], **extra):
    return c.post(reverse("login"), {"username": email, "password": PASSWORD}, **extra)


def test_session_and_csrf_cookies_are_httponly_and_samesite(firm):
    c = Client()
    c.get(reverse("login"))
    csrf = c.cookies[settings.CSRF_COOKIE_NAME]
    assert csrf["samesite"] == "Lax"
    response = login(c)
    session = response.cookies[settings.SESSION_COOKIE_NAME]
    assert session["httponly"] is True
    assert session["samesite"] == "Lax"
    assert not session["secure"]  # development over http


def test_cookies_are_secure_with_production_settings(firm, settings):
    # The values config/settings.py sets under PRODUCTION=1 (checked in a subprocess below).
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    c = Client()
    c.get(reverse("login"), secure=True)
    assert c.cookies[settings.CSRF_COOKIE_NAME]["secure"] is True
    session = login(c, secure=True).cookies[settings.SESSION_COOKIE_NAME]
    assert session["secure"] is True and session["httponly"] is True


def production_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "QBO_"))}
    env.update(
        PRODUCTION="1",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        QBO_TOKEN_KEYS=f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}",
        DJANGO_ALLOWED_HOSTS="practice.example.com",
    )
    env.update(extra)
    return env


def test_production_settings_values():
    code = (
        "from config import settings as s;"
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY,"
        " s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS >= 31536000, s.DEBUG)"
    )
    out = subprocess.run(
        [MANAGE[0], "-c", code],
        env=production_env(),
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["True", "True", "True", "True", "True", "False"]


def test_check_deploy_is_clean_with_production_env():
    result = subprocess.run(
        [*MANAGE, "check", "--deploy", "--fail-level", "WARNING"],
        env=production_env(),
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_refuses_the_dev_secret_and_missing_token_keys():
    env = production_env()
    del env["DJANGO_SECRET_KEY"]
    env["QBO_TOKEN_KEYS"] = ""
    result = subprocess.run(
        [*MANAGE, "check", "--deploy"], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "practice.E001" in result.stderr and "practice.E003" in result.stderr


# --- CSRF --------------------------------------------------------------------------------------


def csrf_client(email: str = ROLE_EMAILS["owner"]) -> Client:
    c = Client(enforce_csrf_checks=True)
    c.force_login(User.objects.get(email=email))
    return c


def test_every_state_changing_view_of_mine_requires_the_csrf_token(account):
    c = csrf_client()
    before = list(ClientAccount.objects.values())
    posts = {
        reverse("clients:account_create"): {"name": "Sneaky", "kind": "individual"},
        reverse("clients:account_edit", args=[account.pk]): {"name": "Hijacked", "kind": "individual"},
        reverse("clients:account_archive", args=[account.pk]): {},
        reverse("clients:account_unarchive", args=[account.pk]): {},
        reverse("profile"): {"language": "es"},
        reverse("language_switch"): {"language": "es"},
        reverse("logout"): {},
    }
    for url, data in posts.items():
        response = c.post(url, data)
        assert response.status_code == 403 and b"CSRF verification failed" in response.content, url
    assert list(ClientAccount.objects.values()) == before
    assert User.objects.get(email=ROLE_EMAILS["owner"]).language == ""
    assert c.get(reverse("clients:account_list")).status_code == 200  # still signed in


def test_login_requires_the_csrf_token(firm):
    c = Client(enforce_csrf_checks=True)
    assert login(c).status_code == 403
    assert "_auth_user_id" not in c.session


def test_the_same_posts_work_with_the_token(account):
    c = csrf_client()
    c.get(reverse("clients:account_create"))
    token = c.cookies[settings.CSRF_COOKIE_NAME].value
    response = c.post(
        reverse("clients:account_create"),
        {"name": "Legit", "kind": "individual", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    # The header is how htmx sends it (base.html sets hx-headers).
    response = c.post(reverse("clients:account_archive", args=[account.pk]), HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 302


def _walk(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p


EXAMPLE_VALUES = {
    "int": "1",
    "str": "x",
    "slug": "x",
    "uuid": "00000000-0000-4000-8000-000000000001",
    "path": "x",
}


def _example_path(route: str) -> str | None:
    """`accounts/<int:pk>/edit/` -> `/accounts/1/edit/`; None for regex routes."""
    if "(?P" in route or "^" in route:
        return None

    def example(match: re.Match[str]) -> str:
        return EXAMPLE_VALUES.get(match.group(1) or "str", "x")

    return "/" + re.sub(r"<(?:(\w+):)?\w+>", example, route)


def test_every_url_refuses_a_post_without_the_csrf_token(account):
    """Whatever a view does with POST, a cross-site form can't reach it (webhooks and API aside)."""
    c = csrf_client()
    checked = []
    for route, p in _walk(get_resolver().url_patterns):
        if route.startswith(("admin/", "api/")) or "webhook" in route:
            continue
        if getattr(p.callback, "csrf_exempt", False):
            continue  # reported by the test below
        path = _example_path(route)
        if path is None:
            continue
        response = c.post(path)
        # Django's CSRF failure page, not a role check's 403.
        assert response.status_code == 403 and b"CSRF verification failed" in response.content, path
        checked.append(path)
    assert len(checked) >= 10


def test_no_view_is_csrf_exempt_except_webhooks_and_the_token_api():
    """Django's middleware checks CSRF on every POST unless a view opts out; list who opts out."""
    exempt = [
        path
        for path, p in _walk(get_resolver().url_patterns)
        if getattr(p.callback, "csrf_exempt", False)
        and not path.startswith(("admin/", "api/"))  # admin: Django's own; api: token auth only
        and "webhook" not in path
    ]
    assert exempt == []


# --- XSS ---------------------------------------------------------------------------------------


def test_hostile_account_names_are_escaped(client_as, firm):
    hostile = account_create(firm=firm, name=HOSTILE, city=HOSTILE)
    c = client_as("owner")
    pages = [
        c.get(reverse("clients:account_list")),
        c.get(reverse("clients:account_list"), {"q": "<script>"}),
        c.get(reverse("clients:account_detail", args=[hostile.pk])),
        c.get(reverse("clients:account_edit", args=[hostile.pk])),
        c.post(reverse("clients:account_archive", args=[hostile.pk]), follow=True),
    ]
    for response in pages:
        body = response.content.decode()
        assert "<script>alert" not in body
        assert "<img src=x" not in body
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body


def test_reflected_search_is_escaped(client_as, firm):
    body = client_as("owner").get(reverse("clients:account_list"), {"q": '"><script>x()</script>'}).content
    assert b"<script>x()" not in body
    assert b"&quot;&gt;&lt;script&gt;x()" in body


# --- redirects ---------------------------------------------------------------------------------

EVIL = [
    "https://evil.example/",
    "//evil.example/",
    "/\\evil.example/",
    "\\\\evil.example",
    "https:evil.example",
    "javascript:alert(1)",
    "http://testserver.evil.example/",
]


@pytest.mark.parametrize("target", EVIL)
def test_login_next_never_leaves_the_site(firm, target):
    response = Client().post(
        reverse("login"), {"username": ROLE_EMAILS["owner"], "password": PASSWORD, "next": target}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse(settings.LOGIN_REDIRECT_URL)


def test_login_next_on_the_site_is_followed(firm, account):
    target = reverse("clients:account_detail", args=[account.pk])
    response = Client().post(
        reverse("login"), {"username": ROLE_EMAILS["owner"], "password": PASSWORD, "next": target}
    )
    assert response["Location"] == target


@pytest.mark.parametrize("target", EVIL)
def test_language_switch_next_never_leaves_the_site(client_as, target):
    response = client_as("employee").post(reverse("language_switch"), {"language": "es", "next": target})
    assert response.status_code == 302
    assert response["Location"] == reverse("home")


# --- authentication ----------------------------------------------------------------------------


def test_wrong_password_is_400_with_the_same_answer_for_unknown_users(firm):
    bodies = []
    for email in (ROLE_EMAILS["owner"], "nobody@acme.test"):
        response = Client().post(reverse("login"), {"username": email, "password": "wrong"})
        assert response.status_code == 400
        assert "_auth_user_id" not in response.wsgi_request.session
        bodies.append(response.content.decode().replace(email, "EMAIL"))
    # No account enumeration: a wrong password and an unknown user read the same.
    assert _without_tokens(bodies[0]) == _without_tokens(bodies[1])


def _without_tokens(html: str) -> str:
    return re.sub(r'value="[A-Za-z0-9]{32,}"|"X-CSRFToken": "[A-Za-z0-9]+"', "", html)


def test_logout_is_post_only_and_ends_the_session(client_as):
    c = client_as("owner")
    assert c.get(reverse("logout")).status_code == 405
    assert c.post(reverse("logout")).status_code == 302
    assert c.get(reverse("clients:account_list")).status_code == 302


def test_session_is_rotated_on_login(firm):
    c = Client()
    c.get(reverse("login"))
    session = c.session
    session["probe"] = 1
    session.save()
    before = session.session_key
    login(c)
    assert c.session.session_key != before


# --- Content-Security-Policy and Permissions-Policy (issue 12) ---------------------------------


def test_every_page_type_sends_the_csp_and_permissions_policy(client_as, firm, account, settings):
    from practice.billing import services as billing

    service = billing.service_create(firm=firm, name="Bookkeeping", rate="100.00")
    invoice = billing.invoice_create(
        firm=firm,
        account=account,
        issue_date="2026-11-01",
        due_date="2026-12-01",
        lines=[{"service": service, "quantity": "1", "rate": "100", "description": "Work"}],
    )
    payment = billing.payment_record(
        firm=firm, account=account, date="2026-11-02", amount="10", method="cash"
    )
    owner = client_as("owner")
    User.objects.create_superuser("root@acme.test", "root-password-123")
    root = Client()
    root.force_login(User.objects.get(email="root@acme.test"))
    pages = {
        "login": Client().get(reverse("login")),
        "redirect to login": Client().get(reverse("clients:account_list")),
        "account list": owner.get(reverse("clients:account_list")),
        "account list partial (htmx)": owner.get(
            reverse("clients:account_list"), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="account-table"
        ),
        "account detail": owner.get(reverse("clients:account_detail", args=[account.pk])),
        "account form": owner.get(reverse("clients:account_create")),
        "form with errors (400)": owner.post(reverse("clients:account_create"), {"name": ""}),
        "profile": owner.get(reverse("profile")),
        "invoice list": owner.get(reverse("billing:invoice_list")),
        "invoice form": owner.get(reverse("billing:invoice_create")),
        "invoice detail": owner.get(reverse("billing:invoice_detail", args=[invoice.pk])),
        "payment list": owner.get(reverse("billing:payment_list")),
        "payment form": owner.get(reverse("billing:payment_create")),
        "payment detail": owner.get(reverse("billing:payment_detail", args=[payment.pk])),
        "service list": owner.get(reverse("billing:service_list")),
        "quickbooks settings": owner.get(reverse("quickbooks:settings")),
        "404": owner.get("/clients/accounts/999999/"),
        "403": client_as("employee").get(reverse("quickbooks:settings")),
        "405": owner.generic("TRACE", reverse("login")),
        "admin login": Client().get("/admin/login/"),
        "admin index": root.get("/admin/"),
        "static file": Client().get("/static/css/app.css"),
    }
    for label, response in pages.items():
        assert response.status_code in (200, 302, 400, 403, 404, 405), (label, response.status_code)
        assert_locked_down(response, label)
    assert pages["404"].status_code == 404 and pages["403"].status_code == 403


def test_the_lockout_page_sends_the_csp_too(firm):
    for _ in range(5):
        response = Client(REMOTE_ADDR="10.7.0.1").post(
            reverse("login"), {"username": ROLE_EMAILS["owner"], "password": "wrong"}
        )
    assert response.status_code == 429
    assert_locked_down(response, "lockout")


def test_form_action_allows_only_this_site_and_quickbooks_sign_in(client_as, settings):
    settings.QBO_ENVIRONMENT = "sandbox-local"
    settings.QBO_SANDBOX_URL = "http://127.0.0.1:8765"
    page = client_as("owner").get(reverse("quickbooks:settings"))
    assert policy_of(page)["form-action"] == "'self' http://127.0.0.1:8765"
    settings.QBO_ENVIRONMENT = "production"
    page = client_as("owner").get(reverse("quickbooks:settings"))
    assert policy_of(page)["form-action"] == "'self' https://appcenter.intuit.com"

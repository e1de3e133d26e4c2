"""Login throttling (issue 12, item 1): django-axes locks an account or an address for a while
after repeated failed sign-ins, on our sign-in page and on /admin/login/, with a clear message."""

from __future__ import annotations

import datetime

from axes.models import AccessAttempt
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from practice.firms.models import User
from tests.conftest import PASSWORD, ROLE_EMAILS

OWNER = ROLE_EMAILS["owner"]
LOCKED_MESSAGE = b"Too many failed sign-in attempts for this account or from this network"


def sign_in(email: str, password: str, *, ip: str = "10.0.0.1", path: str | None = None, **extra):
    return Client(REMOTE_ADDR=ip).post(
        path or reverse("login"), {"username": email, "password": password}, **extra
    )


def fail(times: int, email: str = OWNER, *, ip: str = "10.0.0.1", path: str | None = None) -> None:
    for _ in range(times):
        assert sign_in(email, "wrong-password", ip=ip, path=path).status_code in (200, 400, 429)


def signed_in(response) -> bool:
    return "_auth_user_id" in response.wsgi_request.session


def test_four_failures_still_let_the_right_password_in(firm, settings):
    fail(settings.AXES_FAILURE_LIMIT - 1)
    response = sign_in(OWNER, PASSWORD)
    assert response.status_code == 302 and signed_in(response)


def test_an_account_is_locked_after_five_failures_even_with_the_right_password(firm):
    fail(5)
    response = sign_in(OWNER, PASSWORD)
    assert response.status_code == 429
    assert not signed_in(response)
    body = response.content
    assert LOCKED_MESSAGE in body and b"paused for 15 minutes" in body
    assert b'href="/login/"' in body
    # Other members of the firm are not locked out by it (from elsewhere).
    assert sign_in(ROLE_EMAILS["admin"], PASSWORD, ip="10.0.0.2").status_code == 302


def test_one_account_guessed_from_many_addresses_is_locked(firm):
    # Spellings the sign-in form treats as one account count as one account.
    for n, spelling in enumerate([OWNER, OWNER.upper(), f" {OWNER}", OWNER.title(), OWNER]):
        fail(1, spelling, ip=f"10.1.0.{n}")
    response = sign_in(OWNER, PASSWORD, ip="10.1.0.99")
    assert response.status_code == 429 and not signed_in(response)


def test_many_accounts_guessed_from_one_address_lock_that_address(firm):
    for n in range(5):
        fail(1, f"guess{n}@acme.test", ip="10.2.0.1")
    assert sign_in(OWNER, PASSWORD, ip="10.2.0.1").status_code == 429
    assert sign_in(OWNER, PASSWORD, ip="10.2.0.2").status_code == 302


def test_a_forged_forwarded_for_header_does_not_dodge_the_address_lock(firm):
    # Without a trusted proxy (TRUSTED_PROXY_COUNT=0) the peer address is the client.
    for n in range(5):
        sign_in(f"guess{n}@acme.test", "x", ip="10.3.0.1", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    assert sign_in(OWNER, PASSWORD, ip="10.3.0.1", HTTP_X_FORWARDED_FOR="192.0.2.77").status_code == 429


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(firm, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    for n in range(5):
        sign_in(f"guess{n}@acme.test", "x", ip="10.9.9.9", HTTP_X_FORWARDED_FOR=f"1.1.1.1, 192.0.2.{n}")
    # Every attempt came through the one proxy, but from different clients: nobody is locked.
    assert sign_in(OWNER, PASSWORD, ip="10.9.9.9", HTTP_X_FORWARDED_FOR="192.0.2.50").status_code == 302
    fail(5, "guess@acme.test", ip="10.9.9.9")  # no header: the proxy address itself
    for n in range(5):
        sign_in(f"x{n}@acme.test", "x", ip="10.9.9.9", HTTP_X_FORWARDED_FOR="spoofed, 192.0.2.60")
    assert sign_in(OWNER, PASSWORD, ip="10.9.9.9", HTTP_X_FORWARDED_FOR="192.0.2.60").status_code == 429


def test_the_lock_ends_after_the_cool_off(firm):
    fail(5)
    assert sign_in(OWNER, PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - datetime.timedelta(minutes=16))
    response = sign_in(OWNER, PASSWORD)
    assert response.status_code == 302 and signed_in(response)


def test_the_admin_login_is_throttled_too(firm):
    User.objects.create_superuser("root@acme.test", "root-password-123")
    fail(5, "root@acme.test", path="/admin/login/")
    response = sign_in("root@acme.test", "root-password-123", path="/admin/login/")
    assert response.status_code == 429
    assert LOCKED_MESSAGE in response.content
    assert not signed_in(response)


def test_the_lockout_message_is_translated(firm):
    fail(5)
    response = sign_in(OWNER, PASSWORD, HTTP_ACCEPT_LANGUAGE="es")
    assert response.status_code == 429
    assert b"Demasiados intentos fallidos" in response.content


def test_the_password_is_never_stored_with_the_attempt(firm):
    fail(1)
    attempt = AccessAttempt.objects.get()
    assert "wrong-password" not in attempt.post_data
    assert attempt.failures_since_start == 1

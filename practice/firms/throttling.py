"""How django-axes sees a sign-in attempt: who it is for, where it comes from, what it answers.

Wired in config/settings.py (AXES_*); the counting and locking are django-axes' own.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def login_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """The account an attempt targets, as the sign-in form compares it (lower-case, trimmed).

    Without this "Owner@Firm.test" and "owner@firm.test " would be counted as two accounts and
    an attacker would get five guesses per spelling.
    """
    username = (credentials or {}).get("username")
    if username is None:
        username = request.POST.get("username", "")
    return str(username).strip().lower()


def client_ip(request: HttpRequest) -> str:
    """The address an attempt comes from.

    Behind TRUSTED_PROXY_COUNT proxies the client is the entry that many places from the right
    of X-Forwarded-For (entries further left are whatever the client chose to send); without a
    proxy it is the peer address, and the header is ignored because anyone can set it.
    """
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies > 0:
        forwarded = [
            hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()
        ]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return str(request.META.get("REMOTE_ADDR", ""))


def locked_out_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """One page for a locked sign-in, ours and /admin/login/ alike: what happened, for how long."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return render(
        request,
        "firms/locked_out.html",
        {"minutes": minutes, "failure_limit": settings.AXES_FAILURE_LIMIT},
        status=429,
    )

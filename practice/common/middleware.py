"""Request plumbing: the current firm and role, the user's language, security headers."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation


class FirmMiddleware:
    """Sets `request.membership` and `request.firm` for a signed-in member (else None).

    A user belongs to one firm; every view reads data through selectors that take
    `request.firm`, so a foreign firm's ids are simply not found (404).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from practice.firms.selectors import membership_for_user

        membership = None
        if request.user.is_authenticated:
            membership = membership_for_user(user=request.user)
        request.membership = membership  # type: ignore[attr-defined]
        request.firm = membership.firm if membership else None  # type: ignore[attr-defined]
        return self.get_response(request)


class UserLanguageMiddleware:
    """Language per user (their saved choice), else the browser's Accept-Language."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        language = None
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and getattr(user, "language", ""):
            language = user.language
        if not language:
            language = translation.get_language_from_request(request)
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()  # type: ignore[attr-defined]
        response = self.get_response(request)
        response.headers.setdefault("Content-Language", translation.get_language())
        translation.deactivate()
        return response


class SecurityHeadersMiddleware:
    """Headers Intuit's security review asks for on pages with sensitive data."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method not in {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}:
            # TRACE and other unused methods are refused outright (RFC 9110: a 405 names what is allowed).
            refused = HttpResponse(status=405)
            refused["Allow"] = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
            return refused
        response = self.get_response(request)
        if not request.path.startswith(
            settings.STATIC_URL if settings.STATIC_URL.startswith("/") else "/" + settings.STATIC_URL
        ):
            response.headers["Cache-Control"] = "no-cache, no-store, must-revalidate"
            response.headers.setdefault("Pragma", "no-cache")
        return response

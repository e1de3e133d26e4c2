"""Request plumbing: the current firm and role, the user's language, security headers."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

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
            response: HttpResponse = HttpResponse(status=405)
            response["Allow"] = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
        else:
            response = self.get_response(request)
        response.headers.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        # Read by django-csp's middleware, which runs after this one on the way out.
        response._csp_update = {"form-action": [qbo_sign_in_origin()]}  # type: ignore[attr-defined]
        if not request.path.startswith(
            settings.STATIC_URL if settings.STATIC_URL.startswith("/") else "/" + settings.STATIC_URL
        ):
            response.headers["Cache-Control"] = "no-cache, no-store, must-revalidate"
            response.headers.setdefault("Pragma", "no-cache")
        return response


def qbo_sign_in_origin() -> str:
    """Where the Connect button sends the browser: Intuit's sign-in, or the bundled sandbox."""
    if getattr(settings, "QBO_ENVIRONMENT", "sandbox-local") == "sandbox-local":
        parts = urlsplit(str(getattr(settings, "QBO_SANDBOX_URL", "")))
        return f"{parts.scheme}://{parts.netloc}"
    # Intuit's authorization endpoint for sandbox and production alike (qbo-api.md §8.1).
    return "https://appcenter.intuit.com"

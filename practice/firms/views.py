from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from practice.common.permissions import member_required
from practice.firms.forms import EmailAuthenticationForm
from practice.firms.services import user_set_language


class LoginView(auth_views.LoginView):
    """Django's login (which only follows a `next` on this host), answering 400 to bad input."""

    template_name = "firms/login.html"
    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True

    def form_invalid(self, form: Any) -> HttpResponse:
        response = super().form_invalid(form)
        response.status_code = 400
        return response


@member_required
@require_http_methods(["GET", "HEAD"])
def home(request: HttpRequest) -> HttpResponse:
    return redirect("clients:account_list")


@member_required
@require_http_methods(["GET", "HEAD", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    """The signed-in user's preferences (language)."""
    errors: dict[str, str] = {}
    if request.method == "POST":
        language = request.POST.get("language", "")
        try:
            user_set_language(user=request.user, language=language)  # type: ignore[arg-type]
        except ValueError:
            errors["language"] = _("Choose English, Spanish or the browser default.")
        else:
            messages.success(request, _("Your preferences were saved."))
            response = redirect("profile")
            _set_language_cookie(response, language)
            return response
    return render(request, "firms/profile.html", {"errors": errors}, status=400 if errors else 200)


def _safe_next(request: HttpRequest) -> str:
    # Only same-site paths: an attacker-supplied `next` must not bounce users elsewhere.
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return resolve_url("home" if request.user.is_authenticated else "login")


def _set_language_cookie(response: HttpResponse, language: str) -> None:
    if language:
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            language,
            max_age=settings.LANGUAGE_COOKIE_AGE,
            samesite="Lax",
            secure=settings.SESSION_COOKIE_SECURE,
            httponly=True,
        )
    else:
        response.delete_cookie(settings.LANGUAGE_COOKIE_NAME, samesite="Lax")


@require_POST
def language_switch(request: HttpRequest) -> HttpResponse:
    """The language menu in the top bar: saved on the user when signed in, else in a cookie."""
    language = request.POST.get("language", "")
    if language not in {"en", "es"}:
        return HttpResponse(_("Choose English or Spanish."), status=400, content_type="text/plain")
    if request.user.is_authenticated:
        user_set_language(user=request.user, language=language)  # type: ignore[arg-type]
    response = HttpResponseRedirect(_safe_next(request))
    _set_language_cookie(response, language)
    return response

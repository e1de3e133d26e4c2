from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from practice.common.permissions import member_required
from practice.firms.services import user_set_language


@member_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect("clients:account_list")


@member_required
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
            return redirect("profile")
    return render(request, "firms/profile.html", {"errors": errors}, status=400 if errors else 200)

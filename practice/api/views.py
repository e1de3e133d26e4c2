"""The profile page's API tokens section: create (secret shown once) and revoke."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from practice.api.tokens import token_create, token_revoke
from practice.common.permissions import member_required


@member_required
@require_POST
def api_token_create(request: HttpRequest) -> HttpResponse:
    try:
        token, secret = token_create(user=request.user, name=request.POST.get("name", ""))  # type: ignore[arg-type]
    except ValidationError as e:
        context = {
            "errors": {},
            "api_token_errors": e.message_dict,
            "api_token_name": request.POST.get("name", ""),
        }
        return render(request, "firms/profile.html", context, status=400)
    # Rendered, not redirected: the secret must never sit in a session, a URL or a log.
    response = render(
        request, "firms/profile.html", {"errors": {}, "new_api_token": token, "new_api_secret": secret}
    )
    response["Cache-Control"] = "no-store"
    return response


@member_required
@require_POST
def api_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    if token_revoke(user=request.user, token_id=token_id):  # type: ignore[arg-type]
        messages.success(request, _("The token was revoked; scripts using it stop working now."))
    else:
        messages.error(request, _("That token does not exist or was already revoked."))
    return redirect("profile")

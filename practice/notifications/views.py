"""The notifications list and "mark read" (each person sees only their own)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from practice.notifications import services
from practice.notifications.models import Notification


@login_required
@require_GET
def notification_list(request: HttpRequest) -> HttpResponse:
    items = list(Notification.objects.filter(user=request.user)[:100])  # type: ignore[misc]
    return render(request, "notifications/list.html", {"notifications": items})


@login_required
@require_POST
def mark_read(request: HttpRequest) -> HttpResponse:
    raw = request.POST.getlist("id")
    ids = [int(v) for v in raw if v.isascii() and v.isdigit() and len(v) <= 18]
    services.mark_read(user=request.user, ids=ids if raw else None)  # type: ignore[arg-type]
    return redirect("notifications:list")

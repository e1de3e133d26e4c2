from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from practice.common.permissions import manager_required


@manager_required
def settings_page(request: HttpRequest) -> HttpResponse:
    return render(request, "base.html")

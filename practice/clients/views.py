from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from practice.common.permissions import member_required


@member_required
def account_list(request: HttpRequest) -> HttpResponse:
    return render(request, "base.html")

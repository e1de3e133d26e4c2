"""The QuickBooks banner's question, asked once per request and only for owners and admins:
does anything need attention (a connection to reconnect, paused pushes, a record in Error)?"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def attention(request: HttpRequest) -> dict[str, Any]:
    membership = getattr(request, "membership", None)
    if membership is None or membership.role not in ("owner", "admin"):
        return {}
    from practice.quickbooks.problems import attention_for_request

    # Lazy: pages that never render the banner (htmx partials) ask nothing.
    return {"qbo_attention": SimpleLazyObject(lambda: attention_for_request(request))}

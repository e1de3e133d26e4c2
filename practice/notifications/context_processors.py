"""The bell's unread count: one query, only when a page renders it."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def unread(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from practice.notifications.services import unread_count

    return {"unread_notifications": SimpleLazyObject(lambda: unread_count(user))}

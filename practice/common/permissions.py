"""Role checks for views. Every restricted view uses one of these decorators.

Rules (product.md): anonymous users are sent to log in; a signed-in user with no firm gets 403;
a member whose role is not allowed gets 403 and nothing changes. Objects of other firms are
looked up through firm-scoped selectors and so answer 404, never 403.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from practice.firms.models import Role

ViewFunc = TypeVar("ViewFunc", bound=Callable[..., HttpResponse])


def roles_required(*roles: str) -> Callable[[ViewFunc], ViewFunc]:
    """Allow signed-in members of a firm whose role is in `roles` (all roles when empty)."""

    allowed = set(roles) or {r.value for r in Role}

    def decorator(view: ViewFunc) -> ViewFunc:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                if request.headers.get("HX-Request"):
                    return HttpResponse(status=401)
                return redirect_to_login(request.get_full_path())
            membership = getattr(request, "membership", None)
            if membership is None or membership.role not in allowed:
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


member_required = roles_required()
manager_required = roles_required(Role.OWNER, Role.ADMIN)
owner_required = roles_required(Role.OWNER)

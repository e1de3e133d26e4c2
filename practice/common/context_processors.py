from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def firm(request: HttpRequest) -> dict[str, Any]:
    """Expose the current firm and membership to every template."""
    membership = getattr(request, "membership", None)
    return {
        "current_firm": getattr(request, "firm", None),
        "current_membership": membership,
        "is_manager": bool(membership and membership.role in ("owner", "admin")),
        "is_owner": bool(membership and membership.role == "owner"),
    }

from __future__ import annotations

from typing import Any

from django import template

from practice.api.tokens import user_tokens

register = template.Library()


@register.inclusion_tag("api/tokens_section.html", takes_context=True)
def api_tokens_section(context: template.Context) -> dict[str, Any]:
    request = context["request"]
    return {
        "request": request,
        "csrf_token": context.get("csrf_token"),
        "tokens": user_tokens(user=request.user) if request.user.is_authenticated else [],
        "new_token": context.get("new_api_token"),
        "new_secret": context.get("new_api_secret"),
        "errors": context.get("api_token_errors") or {},
        "name_value": context.get("api_token_name", ""),
    }

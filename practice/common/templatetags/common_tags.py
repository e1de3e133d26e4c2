"""Template helpers shared by every app."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import template
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.simple_tag(takes_context=True)
def optional_include(context: template.Context, template_name: str, **extra: Any) -> SafeString:
    """Render `template_name` with the current context (plus `extra`) if it exists, else nothing.

    Pages owned by one app use it for slots another app fills (e.g. the QuickBooks column on
    the accounts list), so either app can be deployed, or developed, before the other.
    """
    try:
        tpl = get_template(template_name)
    except TemplateDoesNotExist:
        return mark_safe("")
    flat: dict[str, Any] = dict(context.flatten())  # type: ignore[arg-type]
    flat.update(extra)
    request = context.get("request")
    # The template renders through its own autoescaping engine: the result is already safe.
    return mark_safe(tpl.render(flat, request))  # noqa: S308


@register.simple_tag(takes_context=True)
def query_with(context: template.Context, **changes: Any) -> str:
    """The current query string with some parameters changed (None or "" removes them).

    Keeps search and filters when paging, so links never drop what the user typed.
    """
    request = context.get("request")
    params = request.GET.copy() if request is not None else {}
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)  # type: ignore[union-attr]
        else:
            params[key] = str(value)  # type: ignore[index]
    encoded = params.urlencode() if hasattr(params, "urlencode") else urlencode(params)
    return "?" + encoded if encoded else "?"


@register.filter
def qbo_company_name_cut(name: str) -> str:
    """The 100 characters QuickBooks keeps of a company name, or "" when it keeps it whole."""
    from practice.common.text import qbo_company_name, qbo_would_cut_company_name

    return qbo_company_name(str(name)) if qbo_would_cut_company_name(str(name)) else ""

"""The page extension points other apps use (hooks, optional_include) and the paging helper."""

from __future__ import annotations

from django.template import Context, Template
from django.test import RequestFactory

from practice.common import hooks


def render(source: str, **context) -> str:
    return Template("{% load common_tags %}" + source).render(Context(context))


def test_optional_include_renders_nothing_for_a_missing_template():
    assert render('[{% optional_include "nowhere/missing.html" %}]') == "[]"


def test_optional_include_passes_context_and_extra_values_and_escapes():
    out = render(
        '{% optional_include "clients/partials/account_row.html" account=acc %}',
        acc=type("A", (), {"pk": 7, "name": "<b>x</b>", "archived": False, "get_kind_display": "Company"})(),
    )
    assert 'id="account-row-7"' in out
    assert "&lt;b&gt;x&lt;/b&gt;" in out


def test_query_with_keeps_other_parameters():
    request = RequestFactory().get("/clients/accounts/", {"q": "a b", "status": "error", "page": "3"})
    out = render("{% query_with page=4 %}|{% query_with page=None %}", request=request)
    first, second = out.split("|")
    assert first == "?q=a+b&amp;status=error&amp;page=4"
    assert second == "?q=a+b&amp;status=error"


def test_hooks_apply_in_order_and_register_once():
    calls = []

    def qs_hook(request, queryset):
        calls.append("qs")
        return [*queryset, 1]

    def ctx_hook(request, context):
        calls.append("ctx")
        return {"extra": len(context["items"])}

    try:
        hooks.register_queryset("test.page", qs_hook)
        hooks.register_queryset("test.page", qs_hook)  # AppConfig.ready may run twice
        hooks.register_context("test.page", ctx_hook)
        items = hooks.apply_queryset("test.page", None, [])  # type: ignore[arg-type]
        context = hooks.apply_context("test.page", None, {"items": items})  # type: ignore[arg-type]
    finally:
        hooks._queryset_hooks.pop("test.page", None)
        hooks._context_hooks.pop("test.page", None)
    assert items == [1]
    assert context == {"items": [1], "extra": 1}
    assert calls == ["qs", "ctx"]


def test_pages_without_hooks_are_untouched():
    assert hooks.apply_queryset("nobody.listens", None, ["x"]) == ["x"]  # type: ignore[arg-type]
    assert hooks.apply_context("nobody.listens", None, {"a": 1}) == {"a": 1}  # type: ignore[arg-type]

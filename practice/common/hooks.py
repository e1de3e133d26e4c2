"""Extension points that let one app add to another app's pages without importing it.

The domain apps must not import QuickBooks internals (architecture.md §2), yet the accounts list
shows a QuickBooks column and filter. So the page owner calls named hooks and the other app
registers functions for them in its `AppConfig.ready()`:

    from practice.common import hooks
    hooks.register_queryset("clients.account_list", filter_by_status)   # (request, qs) -> qs
    hooks.register_context("clients.account_list", add_status_counts)   # (request, ctx) -> dict

Hook names in use:
- "clients.account_list": queryset = the firm's accounts before paging (filter or annotate
  it, e.g. a QuickBooks status, so rows need no extra query); context = the page's context
  (`page_obj`, `accounts`, `search`, `show_archived`) to add to.
- "clients.account_detail": context hook only; context has `account`.
- "billing.service_list", "billing.invoice_list", "billing.payment_list": queryset = the firm's
  services / invoices / payments before paging (annotated with their QuickBooks status, and
  filtered by `?qbo=`); context = the page's context (`page`, the Paginator page, whose
  `object_list` the hook may replace by a list of the same records, annotated).
- "billing.service_detail", "billing.invoice_detail", "billing.payment_detail": context hooks;
  context has `service` / `invoice` / `payment` (the QuickBooks panel of the record's page).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest

QuerysetHook = Callable[[HttpRequest, QuerySet[Any]], QuerySet[Any]]
ContextHook = Callable[[HttpRequest, dict[str, Any]], dict[str, Any] | None]

_queryset_hooks: dict[str, list[QuerysetHook]] = defaultdict(list)
_context_hooks: dict[str, list[ContextHook]] = defaultdict(list)


def register_queryset(name: str, fn: QuerysetHook) -> QuerysetHook:
    if fn not in _queryset_hooks[name]:  # ready() may run twice in tests
        _queryset_hooks[name].append(fn)
    return fn


def register_context(name: str, fn: ContextHook) -> ContextHook:
    if fn not in _context_hooks[name]:
        _context_hooks[name].append(fn)
    return fn


def apply_queryset(name: str, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
    for fn in _queryset_hooks.get(name, []):
        queryset = fn(request, queryset)
    return queryset


def apply_context(name: str, request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    for fn in _context_hooks.get(name, []):
        extra = fn(request, context)
        if extra:
            context.update(extra)
    return context

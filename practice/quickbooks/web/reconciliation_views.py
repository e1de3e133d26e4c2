"""Settings > Integrations > QuickBooks > Reconciliation (owner and admin; employees get 403):
per linked customer the app's figures beside QBO's, "Refresh from QuickBooks", and the CSV.

QBO's figures are never read while the page renders: it shows the cached `CustomerBalance` rows
and, when some are missing, stale or older than QBO_RECONCILE_MAX_AGE_SECONDS, queues one
background read (sync/balances.py), at most once a minute per web process.
"""

from __future__ import annotations

import csv
from typing import Any

from django.contrib import messages
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from practice.common.permissions import manager_required
from practice.quickbooks import reconciliation, selectors
from practice.quickbooks.models import Connection
from practice.quickbooks.sync import balances

PAGE_SIZES = (25, 50, 100)  # like the accounts list (?per_page=)
SHOW = ("differences", "history", "all")
QUEUED_KEY = "qbo-reconcile-refresh-queued:%s"


def _connection(request: HttpRequest) -> Connection | None:
    connection = selectors.connection_for(request.firm)  # type: ignore[attr-defined]
    return connection if connection is not None and connection.realm_id else None


def _enqueue(connection: Connection, *, force: bool) -> None:
    transaction.on_commit(
        lambda: balances.refresh_customer_balances.enqueue(connection.pk, force),
        robust=True,
    )


def _filtered(rows: list[reconciliation.Row], show: str) -> list[reconciliation.Row]:
    """ "differences": those to look at; "history": only QBO history from before linking; "all"."""
    if show == "differences":
        return [r for r in rows if r.needs_look]
    if show == "history":
        return [r for r in rows if r.history_only]
    return rows


def _show(request: HttpRequest) -> str:
    wanted = request.GET.get("show", "")
    return wanted if wanted in SHOW else "differences"


@manager_required
@require_GET
def reconciliation_page(request: HttpRequest) -> HttpResponse:
    connection = _connection(request)
    show = _show(request)
    everything = reconciliation.all_rows(firm=request.firm, connection=connection)  # type: ignore[attr-defined]
    rows = _filtered(everything, show)
    wanted = request.GET.get("per_page", "")
    per_page = int(wanted) if wanted in {str(n) for n in PAGE_SIZES} else PAGE_SIZES[0]
    page_obj = Paginator(rows, per_page).get_page(request.GET.get("page"))
    shown = list(page_obj.object_list)
    if connection is not None:
        reconciliation.explain(shown, firm=request.firm, connection=connection)  # type: ignore[attr-defined]
    refreshing = False
    if connection is not None and connection.is_connected and balances.needs_refresh(connection):
        refreshing = True
        if cache.add(QUEUED_KEY % connection.pk, 1, timeout=60):
            _enqueue(connection, force=False)
    read = [r.read_at for r in everything if r.read_at is not None]
    return render(
        request,
        "quickbooks/reconciliation.html",
        {
            "connection": connection,
            "page_obj": page_obj,
            "rows": shown,
            "show": show,
            "per_page": per_page,
            "page_sizes": PAGE_SIZES,
            "linked": len(everything),
            "differing": sum(1 for r in everything if r.needs_look),
            "history": sum(1 for r in everything if r.history_only),
            "unread": sum(1 for r in everything if r.qbo is None),
            "oldest_read": min(read) if read else None,
            "newest_read": max(read) if read else None,
            "refreshing": refreshing,
        },
    )


@manager_required
@require_POST
def reconciliation_refresh(request: HttpRequest) -> HttpResponse:
    connection = _connection(request)
    if connection is None or not connection.is_connected:
        messages.error(request, _("QuickBooks is not connected, so its figures cannot be read."))
    else:
        _enqueue(connection, force=True)
        cache.set(QUEUED_KEY % connection.pk, 1, timeout=60)
        messages.success(
            request,
            _("Reading the figures from QuickBooks in the background; reload this page in a moment."),
        )
    return redirect(reverse("quickbooks:reconciliation"))


@manager_required
@require_GET
def reconciliation_csv(request: HttpRequest) -> HttpResponse:
    connection = _connection(request)
    show = _show(request)
    rows = _filtered(reconciliation.all_rows(firm=request.firm, connection=connection), show)  # type: ignore[attr-defined]
    if connection is not None:
        reconciliation.explain(rows, firm=request.firm, connection=connection)  # type: ignore[attr-defined]
    firm_slug = slugify(request.firm.name) or "firm"  # type: ignore[attr-defined]
    name = f"reconciliation-{firm_slug}-{timezone.localdate().isoformat()}.csv"
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer: Any = csv.writer(response)
    writer.writerows(reconciliation.csv_rows(rows))
    return response

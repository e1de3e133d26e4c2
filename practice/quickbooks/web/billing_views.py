"""QuickBooks panel and actions of services, invoices and payments (issue 10). Thin: parse, call
`actions.record_*`, render the panel (htmx) or go back to the record's page with a message.

Roles: everyone in the firm sees the panel; actions are for owner and admin (403 for employees,
checked before anything is read). Records of other firms, and unknown kinds, are 404.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from practice.common.permissions import manager_required, member_required
from practice.quickbooks import actions, billing_status, selectors

PANEL = "quickbooks/partials/record_sync_panel.html"
DETAIL_URL = {
    "service": "billing:service_edit",
    "invoice": "billing:invoice_detail",
    "payment": "billing:payment_detail",
}


def _record(request: HttpRequest, kind: str, pk: int) -> Any:
    record = billing_status.record_get(firm=request.firm, kind=kind, pk=pk)  # type: ignore[attr-defined]
    if record is None:
        raise Http404
    return record


def _context(request: HttpRequest, kind: str, record: Any) -> dict[str, Any]:
    ctx = billing_status.panel_context(
        firm=request.firm,  # type: ignore[attr-defined]
        kind=kind,
        record=record,
        connection=selectors.connection_for(request.firm),  # type: ignore[attr-defined]
    )
    ctx[kind] = record
    return ctx


@member_required
@require_GET
def record_sync_panel(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    record = _record(request, kind, pk)
    return render(request, PANEL, _context(request, kind, record))


def _done_message(action: str, what: str) -> str:
    if action == "unsync":
        return _("Sync turned off for %(what)s. Nothing in QuickBooks was deleted.") % {"what": what}
    if action == "retry":
        return _("Retrying %(what)s with the next sync.") % {"what": what}
    return capfirst(_("%(what)s will be sent to QuickBooks with the next sync.") % {"what": what})


@manager_required
@require_POST
def record_action(request: HttpRequest, kind: str, pk: int, action: str) -> HttpResponse:
    if kind not in billing_status.BILLING_KINDS or action not in ("sync", "unsync", "retry"):
        raise Http404
    record = _record(request, kind, pk)
    firm = request.firm  # type: ignore[attr-defined]
    actor = str(getattr(request.user, "email", "") or "")
    do = {"sync": actions.record_sync, "unsync": actions.record_unsync, "retry": actions.record_retry}[action]
    what = billing_status.record_label(kind, record)
    error = ""
    try:
        do(firm=firm, kind=kind, local_id=record.pk, actor=actor)
    except actions.SyncActionError as e:
        error = str(e)
    if request.htmx:  # type: ignore[attr-defined]
        ctx = _context(request, kind, record)
        if error:
            ctx["qbo_action_error"] = error
        else:
            ctx["qbo_action_done"] = _done_message(action, what)
        # 200 even when refused: htmx does not swap a 4xx answer, and the panel says why.
        return render(request, PANEL, ctx)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, _done_message(action, what))
    return redirect(DETAIL_URL[kind], pk=record.pk)


# Drift (issue 16): the fixes of a record changed, voided or deleted in QuickBooks
# (actions.DRIFT_FIXES). Refunds and fees have no page of their own: the problems page offers
# their fixes and gets them back.
DRIFT_DONE = {
    "push_ours": gettext_lazy(
        "The app's version of %(what)s will be sent to QuickBooks again with the next sync."
    ),
    "accept_qbo": gettext_lazy("QuickBooks' version of %(what)s is kept; nothing was sent."),
    "push_again": gettext_lazy("%(what)s will be created in QuickBooks again with the next sync."),
}


@manager_required
@require_POST
def drift_action(request: HttpRequest, kind: str, pk: int, action: str) -> HttpResponse:
    if kind not in actions.DRIFT_RECORD_KINDS or action not in actions.DRIFT_ACTIONS:
        raise Http404
    firm = request.firm  # type: ignore[attr-defined]
    actor = str(getattr(request.user, "email", "") or "")
    record = _record(request, kind, pk) if kind in billing_status.BILLING_KINDS else None
    what = billing_status.record_label(kind, record) if record is not None else _("this record")
    error = ""
    try:
        actions.DRIFT_ACTIONS[action](firm=firm, kind=kind, local_id=pk, actor=actor)
    except actions.SyncActionError as e:
        error = str(e)
    except PermissionDenied as e:
        raise Http404 from e  # another firm's refund or fee: as unknown as a missing one
    done = capfirst(str(DRIFT_DONE[action]) % {"what": what})
    if record is not None and request.htmx:  # type: ignore[attr-defined]
        ctx = _context(request, kind, record)
        ctx["qbo_action_error" if error else "qbo_action_done"] = error or done
        return render(request, PANEL, ctx)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, done)
    if record is None:
        return redirect("quickbooks:problems")
    return redirect(DETAIL_URL[kind], pk=record.pk)

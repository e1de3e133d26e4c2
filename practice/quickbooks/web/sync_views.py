"""Account sync views: the Info-tab panel and its actions, the customer picker, bulk actions and
the status poll of the accounts list. Thin: parse, call a service, render.

Roles: everyone in the firm sees statuses; actions are for owner and admin (403 for employees,
checked before anything is read). Accounts of other firms are 404 (firm-scoped selector).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import retarget
from django_tasks import TaskResultStatus
from django_tasks.exceptions import TaskResultDoesNotExist

from practice.clients.models import ClientAccount
from practice.clients.selectors import account_get
from practice.common.permissions import manager_required, member_required
from practice.quickbooks import actions, selectors
from practice.quickbooks.connection.errors import QBOError, ReauthRequired
from practice.quickbooks.statuses import SyncStatus
from practice.quickbooks.sync.preview import PREVIEW_NOT_CONNECTED, SyncPreview, preview_task

PICKER_PAGE_SIZE = 20


def _actor(request: HttpRequest) -> str:
    return str(getattr(request.user, "email", "") or "")


def _panel_context(request: HttpRequest, account: ClientAccount) -> dict[str, Any]:
    connection = selectors.connection_for(request.firm)  # type: ignore[attr-defined]
    link = selectors.links_by_account(connection, [account.pk]).get(account.pk)
    return {
        "account": account,
        "qbo": selectors.status_view(
            link, connection, account.name, idle=selectors._idle(connection, link, account.pk)
        ),
        "qbo_connection": connection,
        "qbo_history": selectors.attempt_history(firm=request.firm, account=account),  # type: ignore[attr-defined]
    }


def _panel(request: HttpRequest, account: ClientAccount, *, status: int = 200) -> HttpResponse:
    if not request.htmx:  # type: ignore[attr-defined]
        return redirect("clients:account_detail", pk=account.pk)
    return render(
        request,
        "quickbooks/partials/account_sync_panel.html",
        _panel_context(request, account),
        status=status,
    )


def _account(request: HttpRequest, pk: int) -> ClientAccount:
    return account_get(firm=request.firm, pk=pk)  # type: ignore[attr-defined]


def _fail(request: HttpRequest, account: ClientAccount, message: str) -> HttpResponse:
    if request.htmx:  # type: ignore[attr-defined]
        ctx = _panel_context(request, account)
        ctx["qbo_action_error"] = message
        return render(request, "quickbooks/partials/account_sync_panel.html", ctx, status=409)
    messages.error(request, message)
    return redirect("clients:account_detail", pk=account.pk)


@member_required
@require_GET
def account_sync_panel(request: HttpRequest, pk: int) -> HttpResponse:
    account = _account(request, pk)
    return render(request, "quickbooks/partials/account_sync_panel.html", _panel_context(request, account))


@manager_required
@require_GET
def customer_picker(request: HttpRequest, pk: int) -> HttpResponse:
    """QBO customers read live (searchable, paged): display name, company, email, active."""
    account = _account(request, pk)
    connection = selectors.connection_for(request.firm)  # type: ignore[attr-defined]
    search = request.GET.get("q", "").strip().replace("\x00", "")[:100]
    try:
        page = max(1, int(request.GET.get("page", "1")))
    except ValueError:
        page = 1
    ctx: dict[str, Any] = {"account": account, "search": search, "page": page, "customers": [], "error": ""}
    if connection is None or not connection.is_connected:
        ctx["error"] = _("QuickBooks is not connected.")
        return render(request, "quickbooks/partials/customer_picker_results.html", ctx)
    from practice.quickbooks.connection.client import QBOClient, like_contains

    where = "Active IN (true, false)"
    if search:
        # "Contains", case-insensitive in QBO's name fields; what was typed is matched literally.
        where += f" AND DisplayName LIKE {like_contains(search)}"
    start = (page - 1) * PICKER_PAGE_SIZE + 1
    statement = (
        f"SELECT * FROM Customer WHERE {where} ORDERBY DisplayName "  # noqa: S608 - QBO query, quoted
        f"STARTPOSITION {start} MAXRESULTS {PICKER_PAGE_SIZE + 1}"
    )
    try:
        rows = QBOClient(connection).query(statement).get("Customer", [])
    except ReauthRequired:
        ctx["error"] = _("QuickBooks is not connected.")
        return render(request, "quickbooks/partials/customer_picker_results.html", ctx)
    except QBOError:
        ctx["error"] = _("QuickBooks did not answer. Try again in a moment.")
        return render(request, "quickbooks/partials/customer_picker_results.html", ctx)
    linked = actions.linked_accounts_by_customer(
        firm=request.firm,  # type: ignore[attr-defined]
        customer_ids=[str(r.get("Id")) for r in rows],
    )
    ctx["has_next"] = len(rows) > PICKER_PAGE_SIZE
    ctx["customers"] = [
        {
            "id": str(r.get("Id")),
            "name": r.get("DisplayName", ""),
            "company": r.get("CompanyName", ""),
            "email": (r.get("PrimaryEmailAddr") or {}).get("Address", ""),
            "active": bool(r.get("Active", True)),
            "linked_to": linked.get(str(r.get("Id")), []),
        }
        for r in rows[:PICKER_PAGE_SIZE]
    ]
    return render(request, "quickbooks/partials/customer_picker_results.html", ctx)


@manager_required
@require_POST
def account_link(request: HttpRequest, pk: int) -> HttpResponse:
    account = _account(request, pk)
    customer_id = request.POST.get("customer_id", "")
    try:
        result = actions.account_sync_link(
            firm=request.firm,  # type: ignore[attr-defined]
            account=account,
            customer_id=customer_id,
            actor=_actor(request),
            confirmed=request.POST.get("confirm") == "1",
        )
    except ValidationError as e:
        return _fail(request, account, " ".join(e.messages))
    except actions.SyncActionError as e:
        return _fail(request, account, str(e))
    if isinstance(result, actions.LinkCheck):
        ctx = {"account": account, "customer": result.customer, "linked_to": result.linked_to}
        response = render(request, "quickbooks/partials/customer_picker_confirm.html", ctx)
        return retarget(response, "#qbo-picker-results") if request.htmx else response  # type: ignore[attr-defined]
    if not request.htmx:  # type: ignore[attr-defined]
        messages.success(request, _("Linked to “%(name)s”.") % {"name": result.qbo_name})
    return _panel(request, account)


@manager_required
@require_POST
def account_create_customer(request: HttpRequest, pk: int) -> HttpResponse:
    account = _account(request, pk)
    name = request.POST.get("name", "")
    try:
        actions.account_sync_create(
            firm=request.firm,  # type: ignore[attr-defined]
            account=account,
            name=name,
            actor=_actor(request),
        )
    except ValidationError as e:
        if request.htmx:  # type: ignore[attr-defined]
            ctx = {"account": account, "name": name, "name_error": " ".join(e.messages)}
            response = render(request, "quickbooks/partials/customer_create_form.html", ctx, status=400)
            return retarget(response, "#qbo-create-form")
        messages.error(request, " ".join(e.messages))
        return redirect("clients:account_detail", pk=account.pk)
    except actions.SyncActionError as e:
        return _fail(request, account, str(e))
    return _panel(request, account)


def _simple_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    account = _account(request, pk)
    firm = request.firm  # type: ignore[attr-defined]
    try:
        if action == "unsync":
            actions.account_unsync(firm=firm, account=account, actor=_actor(request))
        elif action == "retry":
            actions.account_sync_retry(firm=firm, account=account, actor=_actor(request))
        elif action == "reactivate":
            actions.account_sync_reactivate(
                firm=firm,
                account=account,
                customer_id=request.POST.get("customer_id") or None,
                actor=_actor(request),
            )
    except actions.SyncActionError as e:
        return _fail(request, account, str(e))
    return _panel(request, account)


@manager_required
@require_POST
def account_unsync(request: HttpRequest, pk: int) -> HttpResponse:
    return _simple_action(request, pk, "unsync")


@manager_required
@require_POST
def account_retry(request: HttpRequest, pk: int) -> HttpResponse:
    return _simple_action(request, pk, "retry")


@manager_required
@require_POST
def account_reactivate(request: HttpRequest, pk: int) -> HttpResponse:
    return _simple_action(request, pk, "reactivate")


# Primary keys are 64-bit: a longer number made SQLite raise OverflowError and PostgreSQL
# refuse the query, a 500 either way (issue 12). Such an id names no account, so it is dropped.
_MAX_PK = 2**63 - 1


def _account_ids(values: list[str], *, limit: int) -> list[int]:
    """The account ids among `values`: ASCII digits only ("²".isdigit() is true, int() fails)."""
    ids = [int(v) for v in values if v.isascii() and v.isdigit() and len(v) <= 19]
    return [i for i in ids if 0 < i <= _MAX_PK][:limit]


@manager_required
@require_POST
def accounts_bulk(request: HttpRequest) -> HttpResponse:
    action = request.POST.get("action", "")
    ids = _account_ids(request.POST.getlist("ids"), limit=1000)
    back = request.POST.get("next", "")
    # Django's check, not a prefix test: browsers read "/\\evil.example" as "//evil.example".
    safe = url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    target = back if back and safe else reverse("clients:account_list")
    if action not in ("sync", "unsync", "retry_errors"):
        messages.error(request, _("Choose an action."))
        return redirect(target)
    if action != "retry_errors" and not ids:
        messages.error(request, _("Select at least one account."))
        return redirect(target)
    try:
        done = actions.accounts_sync_bulk(
            firm=request.firm,  # type: ignore[attr-defined]
            action=action,
            account_ids=ids,
            actor=_actor(request),
        )
    except actions.SyncActionError as e:
        messages.error(request, str(e))
        return redirect(target)
    messages.success(request, _("%(count)d account(s) updated.") % {"count": done})
    return redirect(target)


@member_required
@require_GET
def account_status_poll(request: HttpRequest) -> HttpResponse:
    """Fresh status badges (out-of-band swaps) for the accounts shown on the list page."""
    ids = _account_ids(request.GET.get("ids", "").split(","), limit=200)
    firm = request.firm  # type: ignore[attr-defined]
    connection = selectors.connection_for(firm)
    # Only this firm's accounts: foreign ids are silently dropped.
    own = dict(ClientAccount.objects.filter(firm=firm, pk__in=ids).values_list("pk", "name"))
    links = selectors.links_by_account(connection, list(own))
    not_synced = [pk for pk in own if pk not in links or links[pk].status == SyncStatus.NOT_SYNCED]
    idle = selectors.idle_account_ids(connection, not_synced)
    views = [
        (pk, selectors.status_view(links.get(pk), connection, name, idle=pk in idle))
        for pk, name in own.items()
    ]
    any_syncing = any(v.is_syncing for _pk, v in views)
    ctx = {"views": views, "any_syncing": any_syncing, "ids": ",".join(str(pk) for pk in own)}
    return render(request, "quickbooks/partials/account_status_poll.html", ctx)


# A preview not started by a worker after this long: say so instead of a silent spinner.
PREVIEW_SLOW_AFTER = timedelta(seconds=60)
PREVIEW_POLL_SECONDS = 1


@manager_required
@require_GET
def sync_preview(request: HttpRequest) -> HttpResponse:
    """What the first (or next) run will do with accounts, read by a worker, nothing written.

    For the setup page: `<div hx-get="{% url 'quickbooks:sync_preview' %}" hx-trigger="load">`.
    Reading the realm may take minutes for a large company (paced queries, 429 waits), so the
    request only enqueues `preview_task` and answers with a partial that polls `?task=<id>`
    until the result is there; no web request reads QBO here.
    """
    connection = selectors.connection_for(request.firm)  # type: ignore[attr-defined]
    ctx: dict[str, Any] = {
        "preview": None,
        "error": "",
        "task_id": "",
        "slow": False,
        # The owner's "Start syncing" is enabled once this answers (or is slow).
        "can_confirm": request.membership.role == "owner",  # type: ignore[attr-defined]
    }
    if connection is None or not connection.is_connected:
        ctx["error"] = _("QuickBooks is not connected.")
        return render(request, "quickbooks/partials/sync_preview.html", ctx)
    task_id = request.GET.get("task", "")
    if not task_id:
        ctx["task_id"] = preview_task.enqueue(connection.pk).id
        return render(request, "quickbooks/partials/sync_preview.html", ctx)
    try:
        result = preview_task.get_result(task_id)
    except (TaskResultDoesNotExist, ValueError) as e:
        raise Http404 from e
    # Only this firm's preview: a result id of another firm (or of another task) is not found.
    if result.task.func is not preview_task.func or list(result.args) != [connection.pk]:
        raise Http404
    if result.status in (TaskResultStatus.READY, TaskResultStatus.RUNNING):
        ctx["task_id"] = result.id
        enqueued = result.enqueued_at or timezone.now()
        ctx["slow"] = result.started_at is None and timezone.now() - enqueued > PREVIEW_SLOW_AFTER
    elif result.status == TaskResultStatus.SUCCESSFUL:
        value = result.return_value or {}
        if "preview" in value:
            ctx["preview"] = SyncPreview.from_dict(value["preview"])
        elif value.get("error") == PREVIEW_NOT_CONNECTED:
            ctx["error"] = _("QuickBooks is not connected.")
        else:
            ctx["error"] = _("QuickBooks did not answer. Try again in a moment.")
    else:
        ctx["error"] = _("The preview could not be worked out. Try again in a moment.")
    return render(request, "quickbooks/partials/sync_preview.html", ctx)


# --------------------------------------------------------------------------------------------
# Invoices


@manager_required
@require_POST
def invoice_renumber(request: HttpRequest, pk: int) -> HttpResponse:
    """Renumber an invoice whose number QuickBooks already uses (a "docnumber_clash" Error)."""
    from practice.billing.selectors import invoice_get

    firm = request.firm  # type: ignore[attr-defined]
    invoice = invoice_get(firm=firm, pk=pk)
    if invoice is None:
        raise Http404
    number = request.POST.get("number", "")
    detail = reverse("billing:invoice_detail", args=[invoice.pk])
    error = ""
    status = 422  # a bad number; 409 when the action is refused (both swapped by htmx, base.html)
    try:
        actions.invoice_renumber(firm=firm, invoice=invoice, number=number, actor=request.user)
    except ValidationError as e:
        error = " ".join(e.message_dict.get("number") or e.messages)
    except actions.SyncActionError as e:
        error, status = str(e), 409
    if not error:
        messages.success(request, _("Invoice renumbered; it will be sent to QuickBooks again."))
        if request.htmx:  # type: ignore[attr-defined]
            response = HttpResponse()
            response["HX-Redirect"] = detail
            return response
        return redirect(detail)
    if request.htmx:  # type: ignore[attr-defined]
        ctx = {"invoice": invoice, "number": number, "number_error": error}
        response = render(request, "quickbooks/invoice_renumber_form.html", ctx, status=status)
        return retarget(response, "#qbo-renumber-form")
    messages.error(request, error)
    return redirect(detail)

"""Billing pages. Thin: parse with a form, call a service, render. Objects come from firm-scoped
selectors, so another firm's ids answer 404. Bad input re-renders the form with status 400 and
the error next to its field.

Roles: any member views; every member creates, edits and issues invoices and records and applies
payments; only owner and admin manage services, void invoices, unapply or delete payments and
record refunds (those undo money movements).
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from practice.billing import selectors, services
from practice.billing.forms import (
    AllocateForm,
    InvoiceForm,
    LineForm,
    PaymentForm,
    ReasonForm,
    RefundForm,
    ServiceForm,
    allocations_from_post,
    apply_errors,
    line_forms_from_post,
    line_forms_initial,
)
from practice.billing.models import Invoice, InvoiceState, Payment, PaymentState, Service
from practice.common import hooks
from practice.common.permissions import manager_required, member_required

PAGE_SIZE = 25
BAD_REQUEST = 400


def _firm(request: HttpRequest) -> Any:
    return request.firm  # type: ignore[attr-defined]


def _or_404(obj: Any) -> Any:
    if obj is None:
        raise Http404
    return obj


def _page(request: HttpRequest, qs: Any) -> Any:
    return Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))


def _query_without_page(request: HttpRequest) -> str:
    params = {k: v for k, v in request.GET.items() if k != "page" and v}
    return urlencode(params)


def _today(request: HttpRequest) -> datetime.date:
    return timezone.localdate()


# --- services ----------------------------------------------------------------------------------


@member_required
@require_GET
def service_list(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "").strip()
    show_archived = request.GET.get("archived") == "1"
    qs = selectors.service_list(firm=_firm(request), search=search, include_archived=show_archived)
    qs = hooks.apply_queryset("billing.service_list", request, qs)
    context: dict[str, Any] = {
        "page": _page(request, qs),
        "search": search,
        "show_archived": show_archived,
        "query": _query_without_page(request),
    }
    return render(
        request, "billing/service_list.html", hooks.apply_context("billing.service_list", request, context)
    )


def _service_form_page(
    request: HttpRequest, form: ServiceForm, service: Service | None, status: int = 200
) -> HttpResponse:
    context: dict[str, Any] = {"form": form, "service": service}
    if service is not None:
        context = hooks.apply_context("billing.service_detail", request, context)
    return render(request, "billing/service_form.html", context, status=status)


@manager_required
@require_http_methods(["GET", "POST"])
def service_create(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _service_form_page(request, ServiceForm(), None)
    form = ServiceForm(request.POST)
    if form.is_valid():
        try:
            service = services.service_create(firm=_firm(request), actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, _("Service “%(name)s” created.") % {"name": service.name})
            return redirect("billing:service_list")
    return _service_form_page(request, form, None, BAD_REQUEST)


@manager_required
@require_http_methods(["GET", "POST"])
def service_edit(request: HttpRequest, pk: int) -> HttpResponse:
    service = _or_404(selectors.service_get(firm=_firm(request), pk=pk))
    if request.method == "GET":
        initial = {
            f: getattr(service, f) for f in ("name", "description", "rate", "income_account_name", "taxable")
        }
        return _service_form_page(request, ServiceForm(initial=initial), service)
    form = ServiceForm(request.POST)
    if form.is_valid():
        try:
            services.service_update(service=service, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, _("Service “%(name)s” saved.") % {"name": service.name})
            return redirect("billing:service_list")
    return _service_form_page(request, form, service, BAD_REQUEST)


@manager_required
@require_POST
def service_archive(request: HttpRequest, pk: int) -> HttpResponse:
    service = _or_404(selectors.service_get(firm=_firm(request), pk=pk))
    restore = request.POST.get("restore") == "1"
    services.service_archive(service=service, archived=not restore, actor=request.user)
    if restore:
        messages.success(request, _("Service “%(name)s” restored.") % {"name": service.name})
    else:
        messages.success(request, _("Service “%(name)s” archived.") % {"name": service.name})
    return redirect("billing:service_list")


# --- invoices ----------------------------------------------------------------------------------


@member_required
@require_GET
def invoice_list(request: HttpRequest) -> HttpResponse:
    firm = _firm(request)
    search = request.GET.get("q", "").strip()
    state = request.GET.get("state", "")
    if state not in InvoiceState.values:
        state = ""
    qs = selectors.invoice_list(firm=firm, search=search, state=state)
    qs = hooks.apply_queryset("billing.invoice_list", request, qs)
    counts = selectors.invoice_state_counts(firm=firm)
    states = [(s, InvoiceState(s).label, counts[s]) for s in InvoiceState.values]
    context: dict[str, Any] = {
        "page": _page(request, qs),
        "search": search,
        "state": state,
        "states": states,
        "all_count": sum(counts.values()),
        "query": _query_without_page(request),
        "totals": selectors.billing_totals(firm=firm),
    }
    return render(
        request, "billing/invoice_list.html", hooks.apply_context("billing.invoice_list", request, context)
    )


def _invoice_form_page(
    request: HttpRequest,
    *,
    form: InvoiceForm,
    line_forms: list[LineForm],
    invoice: Invoice | None,
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        "billing/invoice_form.html",
        {"form": form, "line_forms": line_forms, "invoice": invoice, **_line_totals(line_forms)},
        status=status,
    )


def _save_invoice(request: HttpRequest, invoice: Invoice | None) -> HttpResponse:
    """POST handler shared by create and edit."""
    firm = _firm(request)
    keep = set(invoice.lines.values_list("service_id", flat=True)) if invoice else set()
    service_qs = selectors.service_choices(firm=firm, keep_ids=keep)
    accounts = selectors.account_choices(firm=firm, keep_id=invoice.account_id if invoice else None)
    form = InvoiceForm(request.POST, accounts=accounts)
    line_forms = line_forms_from_post(request.POST, services=service_qs)
    valid = form.is_valid()
    filled = [lf for lf in line_forms if not lf.is_blank()]
    for lf in filled:
        valid = lf.is_valid() and valid
        if lf.is_valid() and lf.cleaned_data.get("service") is None:
            lf.add_error("service", _("Choose a service."))
            valid = False
    if valid:
        lines = [
            {
                "service": lf.cleaned_data["service"],
                "description": lf.cleaned_data["description"],
                "quantity": lf.cleaned_data["quantity"] if lf.cleaned_data["quantity"] is not None else "1",
                "rate": lf.cleaned_data["rate"] if lf.cleaned_data["rate"] is not None else "",
            }
            for lf in filled
        ]
        fields = {**form.cleaned_data, "lines": lines, "actor": request.user}
        try:
            if invoice is None:
                saved = services.invoice_create(firm=firm, **fields)
            else:
                saved = services.invoice_update(invoice=invoice, **fields)
        except ValidationError as exc:
            _apply_invoice_errors(form, filled, exc)
        else:
            messages.success(request, _("Invoice %(number)s saved.") % {"number": saved.number})
            return redirect("billing:invoice_detail", pk=saved.pk)
    if not line_forms:
        line_forms = line_forms_initial(None, services=service_qs)
    return _invoice_form_page(request, form=form, line_forms=line_forms, invoice=invoice, status=BAD_REQUEST)


def _apply_invoice_errors(form: InvoiceForm, filled: list[LineForm], exc: ValidationError) -> None:
    """Service errors "lines-<n>-<field>" count only non-blank rows; map them to the row."""
    header: dict[str, list[str]] = {}
    for key, msgs in exc.message_dict.items():
        parts = key.split("-")
        if len(parts) == 3 and parts[0] == "lines" and parts[1].isdigit() and int(parts[1]) < len(filled):
            row = filled[int(parts[1])]
            for message in msgs:
                row.add_error(parts[2] if parts[2] in row.fields else None, message)
        else:
            header[key] = msgs
    if header:
        apply_errors(form, ValidationError(header), rename={"lines": "__all__"})


@member_required
@require_http_methods(["GET", "POST"])
def invoice_create(request: HttpRequest) -> HttpResponse:
    firm = _firm(request)
    if request.method == "POST":
        return _save_invoice(request, None)
    today = _today(request)
    initial: dict[str, Any] = {"issue_date": today, "due_date": today + datetime.timedelta(days=30)}
    account = selectors.account_get(firm=firm, pk=request.GET.get("account"))
    if account is not None:
        initial["account"] = account.pk
    form = InvoiceForm(initial=initial, accounts=selectors.account_choices(firm=firm))
    line_forms = line_forms_initial(None, services=selectors.service_choices(firm=firm))
    return _invoice_form_page(request, form=form, line_forms=line_forms, invoice=None)


@member_required
@require_GET
def invoice_line_row(request: HttpRequest) -> HttpResponse:
    """One blank line row for the invoice form ("Add line", htmx)."""
    try:
        index = int(request.GET.get("index", "0"))
    except ValueError:
        index = 0
    index = max(0, min(index, 10**15 - 1))
    form = LineForm(prefix=f"lines-{index}", services=selectors.service_choices(firm=_firm(request)))
    return render(request, "billing/partials/line_row.html", {"lf": form})


@member_required
@require_POST
def invoice_preview(request: HttpRequest) -> HttpResponse:
    """Line amounts and the total for the invoice form while typing (htmx; saves nothing)."""
    line_forms = line_forms_from_post(request.POST, services=selectors.service_choices(firm=_firm(request)))
    return render(request, "billing/partials/line_totals.html", _line_totals(line_forms))


def _line_totals(line_forms: list[LineForm]) -> dict[str, Any]:
    amounts = [(lf, lf.amount()) for lf in line_forms]
    total = sum((amount for _lf, amount in amounts if amount is not None), Decimal("0.00"))
    return {"line_amounts": amounts, "total": total}


@member_required
@require_http_methods(["GET", "POST"])
def invoice_edit(request: HttpRequest, pk: int) -> HttpResponse:
    firm = _firm(request)
    invoice = _or_404(selectors.invoice_detail(firm=firm, pk=pk))
    if invoice.state != InvoiceState.DRAFT:
        messages.error(request, _("Only draft invoices can be edited."))
        return redirect("billing:invoice_detail", pk=invoice.pk)
    if request.method == "POST":
        return _save_invoice(request, invoice)
    initial = {
        "account": invoice.account_id,
        "number": invoice.number,
        "issue_date": invoice.issue_date,
        "due_date": invoice.due_date,
        "class_name": invoice.class_name,
        "location_name": invoice.location_name,
        "memo": invoice.memo,
    }
    keep = {line.service_id for line in invoice.lines.all()}
    service_qs = selectors.service_choices(firm=firm, keep_ids=keep)
    form = InvoiceForm(
        initial=initial, accounts=selectors.account_choices(firm=firm, keep_id=invoice.account_id)
    )
    return _invoice_form_page(
        request,
        form=form,
        line_forms=line_forms_initial(invoice, services=service_qs, blank_rows=2),
        invoice=invoice,
    )


def _invoice_detail_page(
    request: HttpRequest,
    invoice: Invoice,
    *,
    void_form: ReasonForm | None = None,
    errors: list[str] | None = None,
    status: int = 200,
) -> HttpResponse:
    context: dict[str, Any] = {
        "invoice": invoice,
        "void_form": void_form or ReasonForm(),
        "action_errors": errors or [],
    }
    context = hooks.apply_context("billing.invoice_detail", request, context)
    return render(request, "billing/invoice_detail.html", context, status=status)


@member_required
@require_GET
def invoice_detail(request: HttpRequest, pk: int) -> HttpResponse:
    invoice = _or_404(selectors.invoice_detail(firm=_firm(request), pk=pk))
    return _invoice_detail_page(request, invoice)


@member_required
@require_POST
def invoice_issue(request: HttpRequest, pk: int) -> HttpResponse:
    firm = _firm(request)
    invoice = _or_404(selectors.invoice_get(firm=firm, pk=pk))
    try:
        services.invoice_issue(invoice=invoice, actor=request.user)
    except ValidationError as exc:
        fresh = _or_404(selectors.invoice_detail(firm=firm, pk=pk))
        return _invoice_detail_page(request, fresh, errors=exc.messages, status=BAD_REQUEST)
    messages.success(request, _("Invoice %(number)s issued.") % {"number": invoice.number})
    return redirect("billing:invoice_detail", pk=invoice.pk)


@manager_required
@require_POST
def invoice_void(request: HttpRequest, pk: int) -> HttpResponse:
    firm = _firm(request)
    invoice = _or_404(selectors.invoice_get(firm=firm, pk=pk))
    form = ReasonForm(request.POST)
    if form.is_valid():
        try:
            services.invoice_void(invoice=invoice, reason=form.cleaned_data["reason"], actor=request.user)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, _("Invoice %(number)s voided.") % {"number": invoice.number})
            return redirect("billing:invoice_detail", pk=invoice.pk)
    fresh = _or_404(selectors.invoice_detail(firm=firm, pk=pk))
    return _invoice_detail_page(request, fresh, void_form=form, status=BAD_REQUEST)


# --- payments ----------------------------------------------------------------------------------


@member_required
@require_GET
def payment_list(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "").strip()
    state = request.GET.get("state", "")
    if state not in PaymentState.values:
        state = ""
    qs = selectors.payment_list(firm=_firm(request), search=search, state=state)
    qs = hooks.apply_queryset("billing.payment_list", request, qs)
    context: dict[str, Any] = {
        "page": _page(request, qs),
        "search": search,
        "state": state,
        "states": PaymentState.choices,
        "query": _query_without_page(request),
    }
    return render(
        request, "billing/payment_list.html", hooks.apply_context("billing.payment_list", request, context)
    )


def _allocation_context(
    request: HttpRequest, *, account: Any, values: dict[str, str], errors: dict[str, list[str]]
) -> dict[str, Any]:
    """Rows of (open invoice, typed amount, errors) for the payment form's "apply" table."""
    invoices = selectors.open_invoices(firm=_firm(request), account=account) if account else []
    rows = [
        (inv, values.get(f"allocation-{inv.pk}", ""), errors.get(f"allocation-{inv.pk}", []))
        for inv in invoices
    ]
    return {"account": account, "allocation_rows": rows, "allocations_errors": errors.get("allocations", [])}


def _payment_form_page(
    request: HttpRequest,
    form: PaymentForm,
    *,
    account: Any,
    allocation_values: dict[str, str],
    allocation_errors: dict[str, list[str]],
    status: int = 200,
) -> HttpResponse:
    context = _allocation_context(
        request, account=account, values=allocation_values, errors=allocation_errors
    )
    # An error for an invoice that has no row on the page (not open, or not this account's)
    # would be invisible next to nothing: show it at the top of the form instead.
    shown = {f"allocation-{inv.pk}" for inv, _value, _errors in context["allocation_rows"]}
    for key, msgs in allocation_errors.items():
        if key.startswith("allocation-") and key not in shown:
            for message in msgs:
                form.add_error(None, message)
    return render(request, "billing/payment_form.html", {"form": form, **context}, status=status)


@member_required
@require_http_methods(["GET", "POST"])
def payment_create(request: HttpRequest) -> HttpResponse:
    firm = _firm(request)
    accounts = selectors.account_choices(firm=firm)
    if request.method == "GET":
        account = selectors.account_get(firm=firm, pk=request.GET.get("account"))
        initial: dict[str, Any] = {"date": _today(request), "method": "check", "processing_fee": "0.00"}
        values: dict[str, str] = {}
        if account is not None:
            initial["account"] = account.pk
            invoice_id = request.GET.get("invoice")
            for inv in selectors.open_invoices(firm=firm, account=account):
                if str(inv.pk) == invoice_id:
                    initial["amount"] = inv.balance
                    values[f"allocation-{inv.pk}"] = str(inv.balance)
        form = PaymentForm(initial=initial, accounts=accounts)
        return _payment_form_page(
            request, form, account=account, allocation_values=values, allocation_errors={}
        )
    form = PaymentForm(request.POST, accounts=accounts)
    allocations = allocations_from_post(request.POST)
    values = {f"allocation-{i}": v for i, v in allocations}
    alloc_errors: dict[str, list[str]] = {}
    if form.is_valid():
        data = form.cleaned_data
        try:
            payment = services.payment_record(
                firm=firm,
                account=data["account"],
                date=data["date"],
                amount=data["amount"],
                method=data["method"],
                reference=data["reference"],
                processing_fee=data["processing_fee"] if data["processing_fee"] is not None else "0",
                sync_to_quickbooks=form.sync_flag(),
                created_manually=True,
                allocations=allocations,
                actor=request.user,
            )
        except ValidationError as exc:
            alloc_errors = {k: v for k, v in exc.message_dict.items() if k.startswith("allocation")}
            rest = {k: v for k, v in exc.message_dict.items() if not k.startswith("allocation-")}
            if rest:
                apply_errors(form, ValidationError(rest))
        else:
            messages.success(request, _("Payment recorded."))
            return redirect("billing:payment_detail", pk=payment.pk)
    account = form.cleaned_data.get("account") if hasattr(form, "cleaned_data") else None
    return _payment_form_page(
        request,
        form,
        account=account,
        allocation_values=values,
        allocation_errors=alloc_errors,
        status=BAD_REQUEST,
    )


@member_required
@require_GET
def payment_allocation_rows(request: HttpRequest) -> HttpResponse:
    """The open invoices of the chosen account, with amount inputs (htmx, on account change)."""
    account = selectors.account_get(firm=_firm(request), pk=request.GET.get("account"))
    context = _allocation_context(request, account=account, values={}, errors={})
    return render(request, "billing/partials/allocation_rows.html", context)


def _payment_detail_page(
    request: HttpRequest,
    payment: Payment,
    *,
    allocate_form: AllocateForm | None = None,
    refund_form: RefundForm | None = None,
    delete_form: ReasonForm | None = None,
    errors: list[str] | None = None,
    status: int = 200,
) -> HttpResponse:
    firm = _firm(request)
    invoices = (
        selectors.open_invoices(firm=firm, account=payment.account_id)
        if payment.state == PaymentState.RECORDED
        else []
    )
    context: dict[str, Any] = {
        "payment": payment,
        "open_invoices": invoices,
        "allocate_form": allocate_form or AllocateForm(invoices=invoices, initial={"amount": None}),
        "refund_form": refund_form
        or RefundForm(initial={"date": _today(request), "amount": payment.unapplied}),
        "delete_form": delete_form or ReasonForm(),
        "action_errors": errors or [],
    }
    context = hooks.apply_context("billing.payment_detail", request, context)
    return render(request, "billing/payment_detail.html", context, status=status)


@member_required
@require_GET
def payment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    payment = _or_404(selectors.payment_detail(firm=_firm(request), pk=pk))
    return _payment_detail_page(request, payment)


@member_required
@require_POST
def payment_allocate(request: HttpRequest, pk: int) -> HttpResponse:
    firm = _firm(request)
    payment = _or_404(selectors.payment_get(firm=firm, pk=pk))
    invoices = selectors.open_invoices(firm=firm, account=payment.account_id)
    form = AllocateForm(request.POST, invoices=invoices)
    if form.is_valid():
        try:
            services.payment_allocate(
                payment=payment,
                invoice=form.cleaned_data["invoice"],
                amount=form.cleaned_data["amount"],
                actor=request.user,
            )
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(
                request,
                _("Payment applied to invoice %(number)s.") % {"number": form.cleaned_data["invoice"].number},
            )
            return redirect("billing:payment_detail", pk=payment.pk)
    fresh = _or_404(selectors.payment_detail(firm=firm, pk=pk))
    return _payment_detail_page(request, fresh, allocate_form=form, status=BAD_REQUEST)


@manager_required
@require_POST
def payment_unallocate(request: HttpRequest, pk: int, allocation_pk: int) -> HttpResponse:
    firm = _firm(request)
    payment = _or_404(selectors.payment_get(firm=firm, pk=pk))
    allocation = _or_404(selectors.allocation_get(firm=firm, payment=payment, pk=allocation_pk))
    try:
        services.payment_unallocate(allocation=allocation, actor=request.user)
    except ValidationError as exc:
        fresh = _or_404(selectors.payment_detail(firm=firm, pk=pk))
        return _payment_detail_page(request, fresh, errors=exc.messages, status=BAD_REQUEST)
    messages.success(
        request, _("Payment unapplied from invoice %(number)s.") % {"number": allocation.invoice.number}
    )
    return redirect("billing:payment_detail", pk=payment.pk)


@manager_required
@require_POST
def payment_refund(request: HttpRequest, pk: int) -> HttpResponse:
    firm = _firm(request)
    payment = _or_404(selectors.payment_get(firm=firm, pk=pk))
    form = RefundForm(request.POST)
    if form.is_valid():
        try:
            services.refund_record(payment=payment, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, _("Refund recorded."))
            return redirect("billing:payment_detail", pk=payment.pk)
    fresh = _or_404(selectors.payment_detail(firm=firm, pk=pk))
    return _payment_detail_page(request, fresh, refund_form=form, status=BAD_REQUEST)


@manager_required
@require_POST
def payment_delete(request: HttpRequest, pk: int) -> HttpResponse:
    firm = _firm(request)
    payment = _or_404(selectors.payment_get(firm=firm, pk=pk))
    form = ReasonForm(request.POST)
    if form.is_valid():
        try:
            services.payment_delete(payment=payment, reason=form.cleaned_data["reason"], actor=request.user)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, _("Payment deleted. It stays in the list, marked deleted."))
            return redirect("billing:payment_detail", pk=payment.pk)
    fresh = _or_404(selectors.payment_detail(firm=firm, pk=pk))
    return _payment_detail_page(request, fresh, delete_form=form, status=BAD_REQUEST)

"""Payments (create, allocate, unallocate, delete), refunds, the QuickBooks history of services,
invoices and payments, and their QuickBooks actions (sync, unsync, retry, renumber).

Same rules as the web UI: the billing services validate (422 naming the field), the QuickBooks
actions refuse in words (409), only owners and admins sync, unsync, retry, renumber, unapply,
refund and delete; other firms' ids are 404.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from django.urls import reverse
from ninja import Query, Status
from ninja import Schema as _Schema
from pydantic import Field

from practice.api.api import (
    ACTION_ERRORS,
    ERRORS,
    InvoiceOut,
    ObjectId,
    PageFilters,
    QuickBooksOut,
    ServiceOut,
    StrictIn,
    _actor,
    _firm,
    _invoice,
    _invoice_out,
    _links,
    _page_of,
    _payment_out,
    _quickbooks,
    _require_manager,
    _service,
    _service_out,
    _status_filter,
    billing,
)
from practice.api.api import PaymentOut as _PaymentOut
from practice.billing import selectors as billing_selectors
from practice.billing import services as billing_services
from practice.billing.models import Payment, Refund
from practice.quickbooks import actions as qbo_actions
from practice.quickbooks import billing_status

router = billing

AMOUNT = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"
MethodLiteral = Literal["card", "ach", "cash", "check", "credit_note"]


def _renamed(exc: DjangoValidationError, names: dict[str, str]) -> DjangoValidationError:
    """The service's error keys in the API's field names (e.g. "allocation-7" -> "allocations.0")."""
    if not hasattr(exc, "error_dict"):
        return exc
    return DjangoValidationError(
        {names.get(k, k) if k != NON_FIELD_ERRORS else k: v for k, v in exc.message_dict.items()}
    )


# ---------------------------------------------------------------- payments


class AllocationIn(StrictIn):
    invoice_id: int = Field(ge=1, le=2**62)
    amount: str = Field(pattern=AMOUNT, description='A decimal amount, e.g. "150.00".')


class PaymentIn(StrictIn):
    account_id: int = Field(ge=1, le=2**62)
    date: datetime.date = Field(strict=False)
    amount: str = Field(pattern=AMOUNT, description='A decimal amount, e.g. "150.00".')
    method: MethodLiteral
    reference: str = Field("", max_length=100)
    processing_fee: str = Field("0", pattern=AMOUNT)
    sync_to_quickbooks: bool | None = Field(
        None, description="Send this payment to QuickBooks (default: the QuickBooks setting)."
    )
    allocations: list[AllocationIn] = Field([], max_length=250)


class DeleteIn(StrictIn):
    reason: str = Field("", max_length=500)


def _payment(request: HttpRequest, payment_id: int) -> Payment:
    payment = billing_selectors.payment_detail(firm=_firm(request), pk=payment_id)
    if payment is None:
        raise Http404
    return payment


@router.post("/payments", response={201: _PaymentOut, **ERRORS}, url_name="payment_create")
def payment_create(request: HttpRequest, payload: PaymentIn) -> Any:
    """Record a payment (by hand), optionally applied to issued invoices of its account."""
    firm = _firm(request)
    names = {"account": "account_id", "allocations": "allocations"}
    for i, a in enumerate(payload.allocations):
        names.setdefault(f"allocation-{a.invoice_id}", f"allocations.{i}.amount")
    try:
        payment = billing_services.payment_record(
            firm=firm,
            account=payload.account_id,
            date=payload.date,
            amount=payload.amount,
            method=payload.method,
            reference=payload.reference,
            processing_fee=payload.processing_fee,
            created_manually=True,
            sync_to_quickbooks=payload.sync_to_quickbooks,
            allocations=[(a.invoice_id, a.amount) for a in payload.allocations],
            actor=request.user,
        )
    except DjangoValidationError as exc:
        raise _renamed(exc, names) from exc
    return Status(201, _payment_out(firm, _payment(request, payment.pk)))


@router.post(
    "/payments/{payment_id}/allocations", response={201: _PaymentOut, **ERRORS}, url_name="payment_allocate"
)
def payment_allocate(request: HttpRequest, payload: AllocationIn, payment_id: int = ObjectId) -> Any:
    """Apply more of the payment's unapplied credit to an issued invoice of the same account."""
    payment = _payment(request, payment_id)
    try:
        billing_services.payment_allocate(
            payment=payment, invoice=payload.invoice_id, amount=payload.amount, actor=request.user
        )
    except DjangoValidationError as exc:
        raise _renamed(exc, {"invoice": "invoice_id"}) from exc
    return Status(201, _payment_out(_firm(request), _payment(request, payment_id)))


@router.delete(
    "/payments/{payment_id}/allocations/{allocation_id}",
    response={200: _PaymentOut, **ERRORS},
    url_name="payment_unallocate",
)
def payment_unallocate(
    request: HttpRequest, payment_id: int = ObjectId, allocation_id: int = ObjectId
) -> Any:
    """Take the payment off an invoice: the money goes back to its unapplied credit."""
    _require_manager(request)
    payment = _payment(request, payment_id)
    allocation = billing_selectors.allocation_get(firm=_firm(request), payment=payment, pk=allocation_id)
    if allocation is None:
        raise Http404
    billing_services.payment_unallocate(allocation=allocation, actor=request.user)
    return _payment_out(_firm(request), _payment(request, payment_id))


@router.post(
    "/payments/{payment_id}/delete", response={200: _PaymentOut, **ERRORS}, url_name="payment_delete"
)
def payment_delete(request: HttpRequest, payload: DeleteIn, payment_id: int = ObjectId) -> Any:
    """Mark the payment deleted (kept for history; its invoices owe again)."""
    _require_manager(request)
    billing_services.payment_delete(
        payment=_payment(request, payment_id), reason=payload.reason, actor=request.user
    )
    return _payment_out(_firm(request), _payment(request, payment_id))


# ---------------------------------------------------------------- refunds


class RefundOut(_Schema):
    id: int
    payment_id: int
    account_id: int
    date: datetime.date
    amount: Decimal
    reason: str
    updated_at: datetime.datetime
    quickbooks: QuickBooksOut


class RefundPage(_Schema):
    items: list[RefundOut]
    total: int
    page: int
    next_page: int | None


class RefundIn(StrictIn):
    payment_id: int = Field(ge=1, le=2**62)
    date: datetime.date = Field(strict=False)
    amount: str = Field(pattern=AMOUNT, description='A decimal amount, e.g. "50.00".')
    reason: str = Field("", max_length=500)


class RefundFilters(PageFilters):
    payment_id: int | None = Field(None, ge=1, le=2**62)
    account_id: int | None = Field(None, ge=1, le=2**62)


def _refund_out(r: Refund, connection: Any, links: dict[int, Any]) -> dict[str, Any]:
    return {
        "id": r.pk,
        "payment_id": r.payment_id,
        "account_id": r.payment.account_id,
        "date": r.date,
        "amount": r.amount,
        "reason": r.reason,
        "updated_at": r.updated_at,
        # Refunds have no QuickBooks record kind of their own yet: the generic link status.
        "quickbooks": _quickbooks(
            links.get(r.pk), connection, "", reverse("api-v1:payment_history", args=[r.payment_id])
        ),
    }


def _refunds(firm: Any) -> QuerySet[Refund]:
    return Refund.objects.filter(firm=firm).select_related("payment").order_by("-date", "-id")


@router.get("/refunds", response={200: RefundPage, **ERRORS}, url_name="refund_list")
def refund_list(request: HttpRequest, filters: Query[RefundFilters]) -> Any:
    firm = _firm(request)
    qs = _refunds(firm)
    if filters.payment_id is not None:
        qs = qs.filter(payment_id=filters.payment_id)
    if filters.account_id is not None:
        qs = qs.filter(payment__account_id=filters.account_id)
    qs = _status_filter(qs, firm, "refund", filters.quickbooks_status)
    items, total, next_page = _page_of(qs, filters)
    connection, links = _links(firm, "refund", [r.pk for r in items])
    return {
        "items": [_refund_out(r, connection, links) for r in items],
        "total": total,
        "page": filters.page,
        "next_page": next_page,
    }


def _one_refund(firm: Any, refund_id: int) -> dict[str, Any]:
    refund = _refunds(firm).filter(pk=refund_id).first()
    if refund is None:
        raise Http404
    connection, links = _links(firm, "refund", [refund.pk])
    return _refund_out(refund, connection, links)


@router.get("/refunds/{refund_id}", response={200: RefundOut, **ERRORS}, url_name="refund_get")
def refund_get(request: HttpRequest, refund_id: int = ObjectId) -> Any:
    return _one_refund(_firm(request), refund_id)


@router.post("/refunds", response={201: RefundOut, **ERRORS}, url_name="refund_create")
def refund_create(request: HttpRequest, payload: RefundIn) -> Any:
    """Return part of a payment to the client, out of its unapplied credit."""
    _require_manager(request)
    firm = _firm(request)
    payment = _payment(request, payload.payment_id)
    refund = billing_services.refund_record(
        payment=payment, date=payload.date, amount=payload.amount, reason=payload.reason, actor=request.user
    )
    return Status(201, _one_refund(firm, refund.pk))


# ---------------------------------------------------------------- QuickBooks history and actions


class AttemptOut(_Schema):
    at: datetime.datetime
    operation: str
    outcome: str
    message: str


def _history(request: HttpRequest, kind: str, local_id: int) -> list[dict[str, Any]]:
    return [
        {"at": a.created_at, "operation": a.operation, "outcome": a.outcome, "message": a.message or ""}
        for a in billing_status.attempt_history(firm=_firm(request), kind=kind, local_id=local_id)
    ]


@router.get(
    "/services/{service_id}/history", response={200: list[AttemptOut], **ERRORS}, url_name="service_history"
)
def service_history(request: HttpRequest, service_id: int = ObjectId) -> Any:
    return _history(request, "service", _service(request, service_id).pk)


@router.get(
    "/invoices/{invoice_id}/history", response={200: list[AttemptOut], **ERRORS}, url_name="invoice_history"
)
def invoice_history(request: HttpRequest, invoice_id: int = ObjectId) -> Any:
    return _history(request, "invoice", _invoice(request, invoice_id).pk)


@router.get(
    "/payments/{payment_id}/history", response={200: list[AttemptOut], **ERRORS}, url_name="payment_history"
)
def payment_history(request: HttpRequest, payment_id: int = ObjectId) -> Any:
    return _history(request, "payment", _payment(request, payment_id).pk)


ACTIONS: dict[str, Callable[..., Any]] = {
    "sync": qbo_actions.record_sync,
    "unsync": qbo_actions.record_unsync,
    "retry": qbo_actions.record_retry,
    # A record changed, voided or deleted in QuickBooks (issue 16; 409 when it is not).
    "push_ours": qbo_actions.record_push_ours,
    "accept_quickbooks": qbo_actions.record_accept_qbo,
    "push_again": qbo_actions.record_push_again,
}


def _act(request: HttpRequest, kind: str, local_id: int, action: str) -> None:
    ACTIONS[action](firm=_firm(request), kind=kind, local_id=local_id, actor=_actor(request))


def _service_action(action: str) -> Any:
    def endpoint(request: HttpRequest, service_id: int = ObjectId) -> Any:
        _require_manager(request)
        service = _service(request, service_id)
        _act(request, "service", service.pk, action)
        return Status(202, _service_out(_firm(request), _service(request, service_id)))

    endpoint.__name__ = f"service_{action}"
    endpoint.__doc__ = f"QuickBooks: {action} this service (409 with the reason when refused)."
    return endpoint


def _invoice_action(action: str) -> Any:
    def endpoint(request: HttpRequest, invoice_id: int = ObjectId) -> Any:
        _require_manager(request)
        invoice = _invoice(request, invoice_id)
        _act(request, "invoice", invoice.pk, action)
        return Status(202, _invoice_out(_firm(request), _invoice(request, invoice_id)))

    endpoint.__name__ = f"invoice_{action}"
    endpoint.__doc__ = f"QuickBooks: {action} this invoice (409 with the reason when refused)."
    return endpoint


def _payment_action(action: str) -> Any:
    def endpoint(request: HttpRequest, payment_id: int = ObjectId) -> Any:
        _require_manager(request)
        payment = _payment(request, payment_id)
        _act(request, "payment", payment.pk, action)
        return Status(202, _payment_out(_firm(request), _payment(request, payment_id)))

    endpoint.__name__ = f"payment_{action}"
    endpoint.__doc__ = f"QuickBooks: {action} this payment (409 with the reason when refused)."
    return endpoint


for _action in ACTIONS:
    _path = _action.replace("_", "-")  # /invoices/{id}/push-ours
    router.post(
        f"/services/{{service_id}}/{_path}",
        response={202: ServiceOut, **ACTION_ERRORS},
        url_name=f"service_{_action}",
    )(_service_action(_action))
    router.post(
        f"/invoices/{{invoice_id}}/{_path}",
        response={202: InvoiceOut, **ACTION_ERRORS},
        url_name=f"invoice_{_action}",
    )(_invoice_action(_action))
    router.post(
        f"/payments/{{payment_id}}/{_path}",
        response={202: _PaymentOut, **ACTION_ERRORS},
        url_name=f"payment_{_action}",
    )(_payment_action(_action))


class RenumberIn(StrictIn):
    number: str = Field(min_length=1, max_length=21)


@router.post(
    "/invoices/{invoice_id}/renumber",
    response={200: InvoiceOut, **ACTION_ERRORS},
    url_name="invoice_renumber",
)
def invoice_renumber(request: HttpRequest, payload: RenumberIn, invoice_id: int = ObjectId) -> Any:
    """Give the invoice a number QuickBooks does not use yet (the fix for a number clash) and send
    it again; 409 once the invoice is in QuickBooks."""
    _require_manager(request)
    qbo_actions.invoice_renumber(
        firm=_firm(request), invoice=_invoice(request, invoice_id), number=payload.number, actor=request.user
    )
    return _invoice_out(_firm(request), _invoice(request, invoice_id))

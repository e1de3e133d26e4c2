"""The public JSON API, /api/v1/ (issue 14, product.md §6).

Every request is authenticated by a personal token (`Authorization: Bearer pat_…`) and acts as
the token's owner: same firm, same role rules as the web UI (employees read and edit what the UI
lets them, only owners/admins sync, unsync and archive). Objects of other firms answer 404.
Every 4xx has one shape: {"errors": [{"field": …, "code": …, "message": …}]}.
"""

from __future__ import annotations

import datetime
import re
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from ninja import NinjaAPI, Path, Query, Router, Schema, Status
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import HttpBearer
from pydantic import ConfigDict, Field, field_validator

from practice.api.tokens import token_check
from practice.billing import selectors as billing_selectors
from practice.billing import services as billing_services
from practice.billing.models import Invoice, Payment, Service
from practice.firms.models import Role
from practice.quickbooks import actions as qbo_actions
from practice.quickbooks import billing_status
from practice.quickbooks.models import Connection, SyncLink
from practice.quickbooks.selectors import connection_for, status_view
from practice.quickbooks.statuses import SyncStatus

# Ids are bigints: bounded so an out-of-range id is a 422, never a database overflow (500).
ObjectId = Path(..., ge=1, le=2**62)
MANAGERS = {Role.OWNER.value, Role.ADMIN.value}
PAGE_SIZE_MAX = 100


class ApiProblem(Exception):
    def __init__(
        self, status: int, code: str, message: str, field: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.retry_after = retry_after


# ---------------------------------------------------------------- auth and rate limit


class BearerToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Any:
        found = token_check(token)
        if found is None:
            return None
        membership = getattr(found.user, "membership", None)
        if membership is None:
            raise ApiProblem(403, "no_firm", "This token's user does not belong to a firm.")
        _rate_limit(found.pk)
        request.firm = membership.firm  # type: ignore[attr-defined]
        request.membership = membership  # type: ignore[attr-defined]
        request.user = found.user
        return found


def _rate_limit(token_id: int) -> None:
    """Fixed window per token. The cache is per-process, so N web workers allow N×limit at most."""
    limit = int(getattr(settings, "API_RATE_LIMIT", 120))
    window = int(getattr(settings, "API_RATE_WINDOW_SECONDS", 60))
    now = int(timezone.now().timestamp())
    bucket = now // window
    key = f"api-rate:{token_id}:{bucket}"
    cache.add(key, 0, timeout=window + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window + 1)
        count = 1
    if count > limit:
        raise ApiProblem(
            429,
            "rate_limited",
            "Too many requests for this token; wait and try again.",
            retry_after=max(1, (bucket + 1) * window - now),
        )


class _PracticeApi(NinjaAPI):
    def get_openapi_operation_id(self, operation: Any) -> str:
        # "practice_api_api_<function>" whichever module of practice/api/ defines the endpoint:
        # clients generated from the OpenAPI document keep their names when a module is split.
        return "practice_api_api_" + operation.view_func.__name__


api = _PracticeApi(
    title="Practice API",
    version="1",
    urls_namespace="api-v1",
    auth=BearerToken(),
    docs_url="/docs",
    openapi_url="/openapi.json",
)


class ErrorItem(Schema):
    field: str | None = None
    code: str
    message: str


class ErrorOut(Schema):
    errors: list[ErrorItem]


def _errors(request: HttpRequest, status: int, items: list[dict[str, Any]]) -> HttpResponse:
    return api.create_response(request, {"errors": items}, status=status)


@api.exception_handler(ApiProblem)
def _problem(request: HttpRequest, exc: ApiProblem) -> HttpResponse:
    response = _errors(request, exc.status, [{"field": exc.field, "code": exc.code, "message": exc.message}])
    if exc.retry_after:
        response["Retry-After"] = str(exc.retry_after)
    return response


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = _errors(
        request,
        401,
        [
            {
                "field": None,
                "code": "unauthenticated",
                "message": "Send a valid API token: Authorization: Bearer <token>.",
            }
        ],
    )
    response["WWW-Authenticate"] = "Bearer"
    return response


@api.exception_handler(NinjaValidationError)
def _invalid(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    items: list[dict[str, Any]] = []
    for err in exc.errors:
        # ninja's loc starts with where the value came from (body/query/path); the rest names it.
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in {"body", "query", "path"}:
            loc = loc[1:]
        if loc and loc[0] == "payload":
            loc = loc[1:]
        items.append(
            {
                "field": ".".join(loc) or None,
                "code": str(err.get("type", "invalid")),
                "message": str(err.get("msg", "Invalid value.")),
            }
        )
    return _errors(request, 422, items)


@api.exception_handler(DjangoValidationError)
def _invalid_service(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
    items: list[dict[str, Any]] = []
    if hasattr(exc, "error_dict"):
        for field, errs in exc.message_dict.items():
            # Services key line errors "lines-<n>-<field>"; the API names them lines.<n>.<field>.
            name = field.replace("-", ".") if field.startswith("lines-") else field
            items.extend(
                {"field": None if name == "__all__" else name, "code": "invalid", "message": m} for m in errs
            )
    else:
        items = [{"field": None, "code": "invalid", "message": m} for m in exc.messages]
    return _errors(request, 422, items)


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _errors(request, 404, [{"field": None, "code": "not_found", "message": "Not found."}])


@api.exception_handler(PermissionDenied)
def _forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return _errors(
        request, 403, [{"field": None, "code": "forbidden", "message": "Your role does not allow this."}]
    )


@api.exception_handler(qbo_actions.SyncActionError)
def _sync_refused(request: HttpRequest, exc: qbo_actions.SyncActionError) -> HttpResponse:
    return _errors(request, 409, [{"field": None, "code": "conflict", "message": str(exc)}])


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    code = "bad_request" if exc.status_code == 400 else "error"
    return _errors(request, exc.status_code, [{"field": None, "code": code, "message": str(exc)}])


def _firm(request: HttpRequest) -> Any:
    return request.firm  # type: ignore[attr-defined]


def _require_manager(request: HttpRequest) -> None:
    if request.membership.role not in MANAGERS:  # type: ignore[attr-defined]
        raise PermissionDenied


def _require_connected(request: HttpRequest) -> None:
    connection = connection_for(_firm(request))
    if connection is None or not connection.realm_id:
        raise qbo_actions.SyncActionError("QuickBooks is not connected.")


def _actor(request: HttpRequest) -> str:
    return f"{request.user} (API)"


ERRORS: dict[int, Any] = {
    400: ErrorOut,
    401: ErrorOut,
    403: ErrorOut,
    404: ErrorOut,
    422: ErrorOut,
    429: ErrorOut,
}
ACTION_ERRORS: dict[int, Any] = {**ERRORS, 409: ErrorOut}


# ---------------------------------------------------------------- shared schemas


def _no_nul(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL (stack-notes §4): refuse it as a 422 instead of a 500.
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class StrictIn(Schema):
    model_config = ConfigDict(strict=True, extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _reject_nul(cls, value: Any) -> Any:
        return _no_nul(value)


class CandidateOut(Schema):
    id: str
    name: str
    active: bool
    entity: str


class QuickBooksOut(Schema):
    status: str
    label: str
    error: str
    error_code: str
    qbo_id: str
    qbo_url: str
    history_url: str
    candidates: list[CandidateOut] = Field(description="QBO records an Error could be linked to (by id).")
    reason: str = Field("", description="Why the record has this status, in words (billing records).")


class PageFilters(Schema):
    # An unknown (say misspelt) filter is a 422, not silently ignored: a script filtering on
    # "quickbook_status" must not act on the whole list.
    model_config = ConfigDict(extra="forbid")

    quickbooks_status: SyncStatus | None = Field(
        None, description="Only objects with this QuickBooks status."
    )
    updated_since: datetime.datetime | None = Field(
        None, description="Only objects changed at or after this time."
    )
    page: int = Field(1, ge=1, le=100000)

    @field_validator("*", mode="before")
    @classmethod
    def _reject_nul(cls, value: Any) -> Any:
        return _no_nul(value)

    @field_validator("updated_since", mode="before")
    @classmethod
    def _iso_only(cls, value: Any) -> Any:
        # pydantic would read "0.5" as a Unix timestamp; the API documents ISO 8601 only.
        if isinstance(value, str) and not re.match(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            raise ValueError("use an ISO 8601 date-time, e.g. 2026-01-31T00:00:00Z")
        return value

    @field_validator("updated_since", mode="after")
    @classmethod
    def _in_utc(cls, value: datetime.datetime | None) -> datetime.datetime | None:
        # ISO allows offsets up to ±23:59 but PostgreSQL only ±15:59 ("time zone displacement out
        # of range", a 500 found by schemathesis): compare in UTC. Naive times are read as UTC.
        if value is None:
            return None
        if timezone.is_naive(value):
            value = value.replace(tzinfo=datetime.UTC)
        try:
            return value.astimezone(datetime.UTC)
        except OverflowError as e:
            raise ValueError("date-time out of range") from e

    page_size: int = Field(50, ge=1, le=PAGE_SIZE_MAX)


def _page_of(qs: QuerySet[Any], filters: PageFilters) -> tuple[list[Any], int, int | None]:
    if filters.updated_since is not None:
        qs = qs.filter(updated_at__gte=filters.updated_since)
    total = qs.count()
    start = (filters.page - 1) * filters.page_size
    items = list(qs[start : start + filters.page_size])
    next_page = filters.page + 1 if start + filters.page_size < total else None
    return items, total, next_page


def _links(firm: Any, kind: str, ids: list[int]) -> tuple[Connection | None, dict[int, SyncLink]]:
    connection = connection_for(firm)
    if connection is None or not ids:
        return connection, {}
    rows = SyncLink.objects.filter(connection=connection, kind=kind, local_id__in=ids)
    return connection, {link.local_id: link for link in rows}


def _quickbooks(
    link: SyncLink | None, connection: Connection | None, name: str, history_url: str
) -> dict[str, Any]:
    view = status_view(link, connection, name)
    return {
        "status": view.status,
        "label": str(view.label),
        "error": str(view.tooltip) if view.status == SyncStatus.ERROR else "",
        "error_code": view.error_code,
        "qbo_id": view.qbo_id,
        "qbo_url": view.qbo_url,
        "history_url": history_url,
        "candidates": [
            {
                "id": str(c.get("id", "")),
                "name": str(c.get("name", "")),
                "active": bool(c.get("active", True)),
                "entity": str(c.get("entity", "Customer")),
            }
            for c in (view.candidates or [])
        ],
    }


def _status_filter(qs: QuerySet[Any], firm: Any, kind: str, status: SyncStatus | None) -> QuerySet[Any]:
    """Keep rows whose link (of this kind, in the firm's connection) has `status`; none = Not synced."""
    if status is None:
        return qs
    connection = connection_for(firm)
    linked = (
        SyncLink.objects.filter(connection=connection, kind=kind) if connection else SyncLink.objects.none()
    )
    if status == SyncStatus.NOT_SYNCED:
        others = linked.exclude(status=SyncStatus.NOT_SYNCED).values("local_id")
        return qs.exclude(pk__in=others)
    return qs.filter(pk__in=linked.filter(status=status).values("local_id"))


# ---------------------------------------------------------------- services, invoices, payments

billing = Router(tags=["billing"])


class ServiceOut(Schema):
    id: int
    name: str
    description: str
    rate: Decimal
    income_account_name: str
    archived: bool
    updated_at: datetime.datetime
    quickbooks: QuickBooksOut


class ServicePage(Schema):
    items: list[ServiceOut]
    total: int
    page: int
    next_page: int | None


class ServiceIn(StrictIn):
    name: str = Field(min_length=1, max_length=100)
    rate: str = Field(
        pattern=r"^-?[0-9]{1,10}(\.[0-9]{1,2})?$", description='A decimal amount, e.g. "150.00".'
    )
    description: str = Field("", max_length=4000)
    income_account_name: str = Field("", max_length=100)


def _billing_quickbooks(firm: Any, kind: str, obj: Any, ui_url: str) -> dict[str, Any]:
    """The record's QuickBooks status in billing_status' words (waiting, not eligible, Error), with
    its QBO Id, "Open in QuickBooks" link and the API's history of it (`ui_url` is unused: kept
    for callers)."""
    connection, links = _links(firm, kind, [obj.pk])
    link = links.get(obj.pk)
    acct = billing_status.account_status(connection, obj.account_id) if kind != "service" else None
    view = billing_status.record_status_view(kind, obj, link, connection, account_status=acct)
    out = _quickbooks(link, connection, "", reverse(f"api-v1:{kind}_history", args=[obj.pk]))
    out["error"] = str(view.tooltip) if view.status == SyncStatus.ERROR else ""
    out["qbo_url"] = view.qbo_url
    out["reason"] = str(view.tooltip)
    return out


def _service_out(firm: Any, s: Service) -> dict[str, Any]:
    data = {f: getattr(s, f) for f in ServiceOut.model_fields if f != "quickbooks"}
    data["quickbooks"] = _billing_quickbooks(firm, "service", s, reverse("billing:service_edit", args=[s.pk]))
    return data


class ServiceFilters(PageFilters):
    include_archived: bool = False


@billing.get("/services", response={200: ServicePage, **ERRORS}, url_name="service_list")
def service_list(request: HttpRequest, filters: Query[ServiceFilters]) -> Any:
    firm = _firm(request)
    qs = billing_selectors.service_list(firm=firm, include_archived=filters.include_archived)
    qs = _status_filter(qs, firm, "service", filters.quickbooks_status)
    items, total, next_page = _page_of(qs, filters)
    return {
        "items": [_service_out(firm, s) for s in items],
        "total": total,
        "page": filters.page,
        "next_page": next_page,
    }


@billing.post("/services", response={201: ServiceOut, **ERRORS}, url_name="service_create")
def service_create(request: HttpRequest, payload: ServiceIn) -> Any:
    _require_manager(request)
    service = billing_services.service_create(firm=_firm(request), actor=request.user, **payload.model_dump())
    return Status(201, _service_out(_firm(request), service))


def _service(request: HttpRequest, service_id: int) -> Service:
    service = billing_selectors.service_get(firm=_firm(request), pk=service_id)
    if service is None:
        raise Http404
    return service


@billing.get("/services/{service_id}", response={200: ServiceOut, **ERRORS}, url_name="service_get")
def service_get(request: HttpRequest, service_id: int = ObjectId) -> Any:
    return _service_out(_firm(request), _service(request, service_id))


@billing.put("/services/{service_id}", response={200: ServiceOut, **ERRORS}, url_name="service_update")
def service_update(request: HttpRequest, payload: ServiceIn, service_id: int = ObjectId) -> Any:
    _require_manager(request)
    service = billing_services.service_update(
        service=_service(request, service_id), actor=request.user, **payload.model_dump()
    )
    return _service_out(_firm(request), service)


class InvoiceLineOut(Schema):
    id: int
    service_id: int
    description: str
    quantity: Decimal
    rate: Decimal
    amount: Decimal


class InvoiceOut(Schema):
    id: int
    number: str
    account_id: int
    state: str
    issue_date: datetime.date
    due_date: datetime.date
    memo: str
    total: Decimal
    balance: Decimal
    updated_at: datetime.datetime
    lines: list[InvoiceLineOut]
    quickbooks: QuickBooksOut


class InvoicePage(Schema):
    items: list[InvoiceOut]
    total: int
    page: int
    next_page: int | None


class InvoiceLineIn(StrictIn):
    service_id: int = Field(ge=1, le=2**62)
    description: str = Field("", max_length=1000)
    quantity: str = Field(pattern=r"^[0-9]{1,10}(\.[0-9]{1,2})?$")
    rate: str | None = Field(None, pattern=r"^-?[0-9]{1,10}(\.[0-9]{1,2})?$")


class InvoiceIn(StrictIn):
    account_id: int = Field(ge=1, le=2**62)
    # strict=False: JSON has no date type, so the ISO string must be parsed (still a real date).
    issue_date: datetime.date = Field(strict=False)
    due_date: datetime.date = Field(strict=False)
    number: str = Field("", max_length=21)
    memo: str = Field("", max_length=4000)
    lines: list[InvoiceLineIn] = Field(min_length=1, max_length=250)


class VoidIn(StrictIn):
    reason: str = Field("", max_length=500)


def _invoice_out(firm: Any, inv: Invoice) -> dict[str, Any]:
    lines = [
        {
            "id": line.pk,
            "service_id": line.service_id,
            "description": line.description,
            "quantity": line.quantity,
            "rate": line.rate,
            "amount": line.amount,
        }
        for line in inv.lines.all()
    ]
    return {
        "id": inv.pk,
        "number": inv.number,
        "account_id": inv.account_id,
        "state": inv.state,
        "issue_date": inv.issue_date,
        "due_date": inv.due_date,
        "memo": inv.memo,
        # total_amount is annotated by invoice_list / invoice_detail (one query, no per-line sum).
        "total": Decimal(getattr(inv, "total_amount")).quantize(Decimal("0.01")),  # noqa: B009
        "balance": inv.balance,
        "updated_at": inv.updated_at,
        "lines": lines,
        "quickbooks": _billing_quickbooks(
            firm, "invoice", inv, reverse("billing:invoice_detail", args=[inv.pk])
        ),
    }


class InvoiceFilters(PageFilters):
    state: str = Field("", max_length=16)
    account_id: int | None = Field(None, ge=1, le=2**62)


@billing.get("/invoices", response={200: InvoicePage, **ERRORS}, url_name="invoice_list")
def invoice_list(request: HttpRequest, filters: Query[InvoiceFilters]) -> Any:
    firm = _firm(request)
    qs = billing_selectors.invoice_list(firm=firm, state=filters.state, account=filters.account_id)
    qs = _status_filter(qs, firm, "invoice", filters.quickbooks_status).prefetch_related("lines")
    items, total, next_page = _page_of(qs, filters)
    return {
        "items": [_invoice_out(firm, i) for i in items],
        "total": total,
        "page": filters.page,
        "next_page": next_page,
    }


def _invoice(request: HttpRequest, invoice_id: int) -> Invoice:
    invoice = billing_selectors.invoice_detail(firm=_firm(request), pk=invoice_id)
    if invoice is None:
        raise Http404
    return invoice


def _invoice_args(payload: InvoiceIn) -> dict[str, Any]:
    data = payload.model_dump()
    data["account"] = data.pop("account_id")
    data["lines"] = [
        {
            "service": line["service_id"],
            "description": line["description"],
            "quantity": line["quantity"],
            "rate": line["rate"] or "",
        }
        for line in data["lines"]
    ]
    return data


@billing.post("/invoices", response={201: InvoiceOut, **ERRORS}, url_name="invoice_create")
def invoice_create(request: HttpRequest, payload: InvoiceIn) -> Any:
    firm = _firm(request)
    invoice = billing_services.invoice_create(firm=firm, actor=request.user, **_invoice_args(payload))
    return Status(201, _invoice_out(firm, _invoice(request, invoice.pk)))


@billing.get("/invoices/{invoice_id}", response={200: InvoiceOut, **ERRORS}, url_name="invoice_get")
def invoice_get(request: HttpRequest, invoice_id: int = ObjectId) -> Any:
    return _invoice_out(_firm(request), _invoice(request, invoice_id))


@billing.post("/invoices/{invoice_id}/issue", response={200: InvoiceOut, **ERRORS}, url_name="invoice_issue")
def invoice_issue(request: HttpRequest, invoice_id: int = ObjectId) -> Any:
    billing_services.invoice_issue(invoice=_invoice(request, invoice_id), actor=request.user)
    return _invoice_out(_firm(request), _invoice(request, invoice_id))


@billing.post("/invoices/{invoice_id}/void", response={200: InvoiceOut, **ERRORS}, url_name="invoice_void")
def invoice_void(request: HttpRequest, payload: VoidIn, invoice_id: int = ObjectId) -> Any:
    _require_manager(request)
    billing_services.invoice_void(
        invoice=_invoice(request, invoice_id), reason=payload.reason, actor=request.user
    )
    return _invoice_out(_firm(request), _invoice(request, invoice_id))


class AllocationOut(Schema):
    id: int
    invoice_id: int
    amount: Decimal


class RefundOut(Schema):
    id: int
    date: datetime.date
    amount: Decimal
    reason: str


class PaymentOut(Schema):
    id: int
    account_id: int
    date: datetime.date
    amount: Decimal
    method: str
    reference: str
    state: str
    updated_at: datetime.datetime
    allocations: list[AllocationOut]
    refunds: list[RefundOut]
    quickbooks: QuickBooksOut


class PaymentPage(Schema):
    items: list[PaymentOut]
    total: int
    page: int
    next_page: int | None


def _payment_out(firm: Any, p: Payment) -> dict[str, Any]:
    return {
        "id": p.pk,
        "account_id": p.account_id,
        "date": p.date,
        "amount": p.amount,
        "method": p.method,
        "reference": p.reference,
        "state": p.state,
        "updated_at": p.updated_at,
        "allocations": [
            {"id": a.pk, "invoice_id": a.invoice_id, "amount": a.amount} for a in p.allocations.all()
        ],
        "refunds": [
            {"id": r.pk, "date": r.date, "amount": r.amount, "reason": r.reason} for r in p.refunds.all()
        ],
        "quickbooks": _billing_quickbooks(firm, "payment", p, reverse("billing:payment_detail", args=[p.pk])),
    }


class PaymentFilters(PageFilters):
    state: str = Field("", max_length=16)
    account_id: int | None = Field(None, ge=1, le=2**62)


@billing.get("/payments", response={200: PaymentPage, **ERRORS}, url_name="payment_list")
def payment_list(request: HttpRequest, filters: Query[PaymentFilters]) -> Any:
    firm = _firm(request)
    qs = billing_selectors.payment_list(firm=firm, state=filters.state, account=filters.account_id)
    qs = _status_filter(qs, firm, "payment", filters.quickbooks_status).prefetch_related(
        "allocations", "refunds"
    )
    items, total, next_page = _page_of(qs, filters)
    return {
        "items": [_payment_out(firm, p) for p in items],
        "total": total,
        "page": filters.page,
        "next_page": next_page,
    }


@billing.get("/payments/{payment_id}", response={200: PaymentOut, **ERRORS}, url_name="payment_get")
def payment_get(request: HttpRequest, payment_id: int = ObjectId) -> Any:
    payment = billing_selectors.payment_detail(firm=_firm(request), pk=payment_id)
    if payment is None:
        raise Http404
    return _payment_out(_firm(request), payment)


# ---------------------------------------------------------------- connection

quickbooks = Router(tags=["quickbooks"])


class ConnectionOut(Schema):
    connected: bool
    status: str
    company_name: str
    realm_id: str
    environment: str
    setup_completed: bool
    last_error: str


@quickbooks.get("/connection", response={200: ConnectionOut, **ERRORS}, url_name="connection")
def connection_state(request: HttpRequest) -> Any:
    conn = connection_for(_firm(request))
    if conn is None:
        return {
            "connected": False,
            "status": "disconnected",
            "company_name": "",
            "realm_id": "",
            "environment": "",
            "setup_completed": False,
            "last_error": "",
        }
    return {
        "connected": bool(conn.is_connected),
        "status": conn.status,
        "company_name": conn.company_name,
        "realm_id": conn.realm_id,
        "environment": conn.environment,
        "setup_completed": conn.setup_completed_at is not None,
        "last_error": conn.last_error,
    }


class PreviewProblemOut(Schema):
    account: str
    message: str


class PreviewOut(Schema):
    link_by_name: list[str]
    create: list[str]
    need_a_person: list[PreviewProblemOut]
    already_linked: int
    skipped: int


@quickbooks.get("/preview", response={200: PreviewOut, **ACTION_ERRORS}, url_name="preview")
def first_sync_preview(request: HttpRequest) -> Any:
    """What the next sync would do with the firm's accounts; reads QBO, writes nothing."""
    from practice.quickbooks.connection.errors import QBOError
    from practice.quickbooks.sync.preview import account_sync_preview

    _require_manager(request)
    _require_connected(request)
    connection = connection_for(_firm(request))
    assert connection is not None
    try:
        preview = account_sync_preview(connection=connection)
    except QBOError as e:
        raise qbo_actions.SyncActionError("QuickBooks did not answer. Try again in a moment.") from e
    return {
        "link_by_name": preview.link_by_name,
        "create": preview.create,
        "need_a_person": [{"account": name, "message": str(msg)} for name, msg in preview.need_a_person],
        "already_linked": preview.already_linked,
        "skipped": preview.skipped,
    }


@billing.post(
    "/services/{service_id}/archive", response={200: ServiceOut, **ERRORS}, url_name="service_archive"
)
def service_archive(request: HttpRequest, service_id: int = ObjectId) -> Any:
    _require_manager(request)
    service = billing_services.service_archive(service=_service(request, service_id), actor=request.user)
    return _service_out(_firm(request), service)


@billing.put("/invoices/{invoice_id}", response={200: InvoiceOut, **ERRORS}, url_name="invoice_update")
def invoice_update(request: HttpRequest, payload: InvoiceIn, invoice_id: int = ObjectId) -> Any:
    """Replace a draft's header and lines (issued and void invoices are not editable: 422)."""
    billing_services.invoice_update(
        invoice=_invoice(request, invoice_id), actor=request.user, **_invoice_args(payload)
    )
    return _invoice_out(_firm(request), _invoice(request, invoice_id))


# Payments, refunds and the billing records' QuickBooks actions (issue 14 items 2-3) join the
# billing router (one router per path: ninja resolves a path to the first router that has it).
# The accounts endpoints live in accounts_api.py on this router (split out of this module).
# Module imports (not names) so that either module may be imported first.
accounts = Router(tags=["accounts"])

from practice.api import accounts_api, billing_api  # noqa: E402, F401  (their routes use the helpers above)

api.add_router("/accounts", accounts)
api.add_router("", billing)
api.add_router("/quickbooks", quickbooks)

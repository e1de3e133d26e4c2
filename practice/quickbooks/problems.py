"""Settings > Integrations > QuickBooks > Problems: what needs a person, per category, and the
banner that points there (issue 11 item 2).

Reads only: the counts are one query, a category's failing records one query for the links and
one for the records' names; the banner's question is one query per request
(`attention_for_request`, used by the context processor). Retrying is in actions.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db.models import Count, Exists, Max, OuterRef, Q
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from practice.quickbooks.models import Connection, SyncLink
from practice.quickbooks.statuses import DRIFT_FIX_LABELS, DRIFT_FIXES, Outcome, SyncStatus

if TYPE_CHECKING:
    from practice.firms.models import Firm

# (kind, category label) in the order the page shows them.
CATEGORIES: tuple[tuple[str, Any], ...] = (
    ("customer", gettext_lazy("Accounts")),
    ("service", gettext_lazy("Services")),
    ("invoice", gettext_lazy("Invoices")),
    ("payment", gettext_lazy("Payments")),
    ("refund", gettext_lazy("Refunds")),
    ("fee", gettext_lazy("Expenses")),
)
KINDS = tuple(k for k, _label in CATEGORIES)
PAGE_SIZE = 50

# Where each kind's record opens in the app.
DETAIL_URL = {
    "customer": "clients:account_detail",
    "service": "billing:service_edit",
    "invoice": "billing:invoice_detail",
    "payment": "billing:payment_detail",
    "refund": "billing:payment_detail",
    "fee": "billing:payment_detail",
}


@dataclass
class Category:
    kind: str
    label: str
    count: int


@dataclass
class Problem:
    """One record in Error, as the page lists it."""

    link: SyncLink
    kind: str
    name: str
    url: str
    message: str
    code: str
    detail: str
    last_attempt_at: datetime | None
    attempts: int
    # Changed, voided or deleted in QuickBooks: its own fixes [(action, label)] instead of Retry
    # (a blind retry would push over what was done there; statuses.DRIFT_FIXES).
    fixes: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Attention:
    """What the banner needs: the connection's state and whether any record is in Error."""

    connection: Connection | None
    has_errors: bool = False
    needs_reconnect: bool = False
    paused: bool = False
    categories: list[Category] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return self.has_errors or self.needs_reconnect or self.paused


def _connection_with_errors(firm: Firm) -> Connection | None:
    """The firm's connection, annotated `has_errors` (one query)."""
    errors = SyncLink.objects.filter(connection=OuterRef("pk"), status=SyncStatus.ERROR)
    return Connection.objects.filter(firm=firm).annotate(has_errors=Exists(errors)).first()


def attention(firm: Firm | None) -> Attention:
    if firm is None:
        return Attention(connection=None)
    connection = _connection_with_errors(firm)
    if connection is None or not connection.realm_id:
        return Attention(connection=connection)
    live = connection.status != "disconnected"
    return Attention(
        connection=connection,
        has_errors=bool(getattr(connection, "has_errors", False)) and live,
        needs_reconnect=connection.needs_reconnect,
        paused=connection.is_connected and connection.is_paused,
    )


def attention_for_request(request: HttpRequest) -> Attention:
    """`attention` once per request (the banner and any other caller share it)."""
    cached: Attention | None = getattr(request, "_qbo_attention", None)
    if cached is None:
        cached = attention(getattr(request, "firm", None))
        request._qbo_attention = cached  # type: ignore[attr-defined]
        if not hasattr(request, "_qbo_connection"):
            request._qbo_connection = cached.connection  # type: ignore[attr-defined]
    return cached


def error_counts(connection: Connection | None) -> list[Category]:
    """Records in Error per category (one query); every category, zeros included."""
    counts: dict[str, int] = {}
    if connection is not None:
        rows = (
            SyncLink.objects.filter(connection=connection, status=SyncStatus.ERROR)
            .order_by()
            .values("kind")
            .annotate(n=Count("pk"))
        )
        counts = {row["kind"]: row["n"] for row in rows}
    return [Category(kind=k, label=str(label), count=counts.get(k, 0)) for k, label in CATEGORIES]


def _names(firm: Firm, kind: str, ids: list[int]) -> dict[int, str]:
    """{local id: what a person calls the record} in one query."""
    if not ids:
        return {}
    from practice.clients.models import ClientAccount

    if kind == "customer":
        return dict(ClientAccount.objects.filter(firm=firm, pk__in=ids).values_list("pk", "name"))
    from practice.billing.models import Invoice, Payment, Service

    if kind == "service":
        return dict(Service.objects.filter(firm=firm, pk__in=ids).values_list("pk", "name"))
    if kind == "invoice":
        rows = Invoice.objects.filter(firm=firm, pk__in=ids).values_list("pk", "number", "account__name")
        return {pk: _("Invoice %(number)s · %(account)s") % {"number": n, "account": a} for pk, n, a in rows}
    if kind == "payment":
        payments = Payment.objects.filter(firm=firm, pk__in=ids).values_list(
            "pk", "date", "amount", "account__name"
        )
        return {
            pk: _("Payment of %(amount)s on %(date)s · %(account)s")
            % {"amount": amount, "date": d.isoformat(), "account": a}
            for pk, d, amount, a in payments
        }
    if kind == "refund":
        from practice.billing.models import Refund

        refunds = Refund.objects.filter(firm=firm, pk__in=ids).values_list(
            "pk", "date", "amount", "payment__account__name"
        )
        return {
            pk: _("Refund of %(amount)s on %(date)s · %(account)s")
            % {"amount": amount, "date": d.isoformat(), "account": a}
            for pk, d, amount, a in refunds
        }
    if kind == "fee":
        # A fee's local id is its payment's id (the "fee" kind is the payment's processing fee).
        fees = Payment.objects.filter(firm=firm, pk__in=ids).values_list(
            "pk", "date", "processing_fee", "account__name"
        )
        return {
            pk: _("Processing fee of %(amount)s on %(date)s · %(account)s")
            % {"amount": amount, "date": d.isoformat(), "account": a}
            for pk, d, amount, a in fees
        }
    return {}


def _payment_ids_of_refunds(firm: Firm, ids: list[int]) -> dict[int, int]:
    from practice.billing.models import Refund

    return dict(Refund.objects.filter(firm=firm, pk__in=ids).values_list("pk", "payment_id"))


def record_url(kind: str, local_id: int) -> str:
    """Where the record opens in the app. Refunds and fees are shown on their payment's page, so
    pass the payment's id for them."""
    name = DETAIL_URL.get(kind)
    if not name:
        return ""
    try:
        return reverse(name, kwargs={"pk": local_id})
    except NoReverseMatch:
        return ""


def _message(link: SyncLink, name: str) -> str:
    """The Error in the reader's language (accounts rebuild it from its kind; others translate
    the stored sentence when it is a known one)."""
    from practice.quickbooks.history_text import translate
    from practice.quickbooks.sync.messages import error_text

    if link.kind == "customer":
        text = error_text(link.error_kind, name=name, candidates=list(link.candidates or []), stored="")
        if text:
            return text
    return translate(link.error_message) or _(
        "QuickBooks refused this record. Retry it, or open it to fix it."
    )


def failing_records(*, firm: Firm, connection: Connection | None, kind: str, page: int = 1) -> list[Problem]:
    """One page of a category's records in Error, most recent attempt first (two queries)."""
    if connection is None or kind not in KINDS:
        return []
    start = max(page - 1, 0) * PAGE_SIZE
    tried = ~Q(attempts_log__outcome=Outcome.INFO)  # a person's request is not an attempt
    links = list(
        SyncLink.objects.filter(connection=connection, kind=kind, status=SyncStatus.ERROR)
        .annotate(
            n_attempts=Count("attempts_log", filter=tried),
            last_attempt=Max("attempts_log__created_at", filter=tried),
        )
        .order_by("-updated_at", "pk")[start : start + PAGE_SIZE]
    )
    names = _names(firm, kind, [link.local_id for link in links])
    # Refunds open on their payment's page (one more query for that category only).
    page_of = _payment_ids_of_refunds(firm, list(names)) if kind == "refund" else {}
    return [
        Problem(
            link=link,
            kind=kind,
            name=names.get(link.local_id) or _("Record %(id)s (deleted)") % {"id": link.local_id},
            url=record_url(kind, page_of.get(link.local_id, link.local_id)) if link.local_id in names else "",
            message=_message(link, names.get(link.local_id, "")),
            code=link.error_code,
            detail=link.error_detail,
            last_attempt_at=link.last_attempt or link.last_attempt_at,  # type: ignore[attr-defined]
            attempts=link.n_attempts,  # type: ignore[attr-defined]
            fixes=[(a, str(DRIFT_FIX_LABELS[a])) for a in DRIFT_FIXES.get(link.error_kind, ())],
        )
        for link in links
    ]

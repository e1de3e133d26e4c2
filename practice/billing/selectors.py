"""Billing reads. Every selector takes the firm, so another firm's ids are simply not found.

Totals are annotated with correlated subqueries rather than joins: joining lines and
allocations in one query would multiply rows and inflate sums, and subqueries keep list pages at
a fixed number of queries whatever the page size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import (
    Count,
    DecimalField,
    Exists,
    F,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce

from practice.billing.models import (
    ZERO,
    BillingHistory,
    Invoice,
    InvoiceLine,
    InvoiceState,
    Payment,
    PaymentAllocation,
    PaymentState,
    Refund,
    Service,
    money,
)
from practice.clients.models import ClientAccount
from practice.firms.models import Firm

MONEY: DecimalField[Decimal, Decimal] = DecimalField(max_digits=14, decimal_places=2)


def _sum_subquery(qs: QuerySet[Any], field: str = "amount") -> Coalesce:
    """SUM(field) over `qs` (already correlated to the outer row) as a scalar subquery."""
    # Group by a constant so the subquery yields one row (the sum), not one per child.
    summed = qs.order_by().annotate(_g=Value(1)).values("_g").annotate(s=Sum(field)).values("s")
    return Coalesce(Subquery(summed, output_field=MONEY), Value(ZERO), output_field=MONEY)


def _invoice_totals(qs: QuerySet[Invoice]) -> QuerySet[Invoice]:
    total = _sum_subquery(InvoiceLine.objects.filter(invoice=OuterRef("pk")))
    allocated = _sum_subquery(
        PaymentAllocation.objects.filter(invoice=OuterRef("pk"), payment__state=PaymentState.RECORDED)
    )
    return qs.annotate(total_amount=total, allocated_amount=allocated)


def _payment_totals(qs: QuerySet[Payment]) -> QuerySet[Payment]:
    allocated = _sum_subquery(PaymentAllocation.objects.filter(payment=OuterRef("pk")))
    refunded = _sum_subquery(Refund.objects.filter(payment=OuterRef("pk")))
    return qs.annotate(allocated_amount=allocated, refunded_amount=refunded)


# --- services ----------------------------------------------------------------------------------


def service_list(*, firm: Firm, search: str = "", include_archived: bool = False) -> QuerySet[Service]:
    qs = Service.objects.filter(firm=firm)
    if not include_archived:
        qs = qs.filter(archived=False)
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(description__icontains=search))
    return qs.order_by("archived", "name", "id")


def service_get(*, firm: Firm, pk: Any) -> Service | None:
    return Service.objects.filter(firm=firm, pk=pk).first()


def service_choices(*, firm: Firm, keep_ids: set[int] | None = None) -> QuerySet[Service]:
    """Services that can go on a new line, plus archived ones already used (`keep_ids`)."""
    qs = Service.objects.filter(firm=firm)
    return qs.filter(Q(archived=False) | Q(pk__in=keep_ids or set())).order_by("name", "id")


# --- invoices ----------------------------------------------------------------------------------


def invoice_list(
    *,
    firm: Firm,
    search: str = "",
    state: str = "",
    account: ClientAccount | int | None = None,
) -> QuerySet[Invoice]:
    """Invoices with `total_amount` and `allocated_amount` annotated (balance = property)."""
    qs = Invoice.objects.filter(firm=firm).select_related("account")
    if state in InvoiceState.values:
        qs = qs.filter(state=state)
    if account is not None:
        qs = qs.filter(account=account)
    if search:
        qs = qs.filter(
            Q(number__icontains=search) | Q(account__name__icontains=search) | Q(memo__icontains=search)
        )
    return _invoice_totals(qs).order_by("-issue_date", "-id")


def invoice_state_counts(*, firm: Firm) -> dict[str, int]:
    counts = {state: 0 for state in InvoiceState.values}
    for row in Invoice.objects.filter(firm=firm).values("state").annotate(n=Count("id")).order_by():
        counts[row["state"]] = row["n"]
    return counts


def invoice_get(*, firm: Firm, pk: Any) -> Invoice | None:
    """An invoice with totals annotated (no lines)."""
    return _invoice_totals(Invoice.objects.filter(firm=firm, pk=pk).select_related("account")).first()


def invoice_detail(*, firm: Firm, pk: Any) -> Invoice | None:
    """An invoice with totals, lines (with services), applied payments and history prefetched."""
    lines = InvoiceLine.objects.select_related("service").order_by("position", "id")
    allocations = (
        PaymentAllocation.objects.select_related("payment")
        .filter(payment__state=PaymentState.RECORDED)
        .order_by("payment__date", "id")
    )
    history = BillingHistory.objects.select_related("actor").order_by("created_at", "id")
    return (
        _invoice_totals(Invoice.objects.filter(firm=firm, pk=pk).select_related("account"))
        .prefetch_related(
            Prefetch("lines", queryset=lines),
            Prefetch("allocations", queryset=allocations, to_attr="active_allocations"),
            Prefetch("history", queryset=history),
        )
        .first()
    )


def open_invoices(*, firm: Firm, account: ClientAccount | int) -> list[Invoice]:
    """Issued invoices of the account that still have a balance, oldest first (to pay first)."""
    qs = _invoice_totals(Invoice.objects.filter(firm=firm, account=account, state=InvoiceState.ISSUED))
    # (mypy's Django plugin does not know about annotations, hence the ignore.)
    qs = qs.filter(total_amount__gt=F("allocated_amount"))  # type: ignore[misc]
    qs = qs.order_by("due_date", "issue_date", "id")
    return list(qs)


# --- payments ----------------------------------------------------------------------------------


def payment_list(
    *,
    firm: Firm,
    search: str = "",
    state: str = "",
    account: ClientAccount | int | None = None,
) -> QuerySet[Payment]:
    """Payments with `allocated_amount` and `refunded_amount` annotated (unapplied = property)."""
    qs = Payment.objects.filter(firm=firm).select_related("account")
    if state in PaymentState.values:
        qs = qs.filter(state=state)
    if account is not None:
        qs = qs.filter(account=account)
    if search:
        qs = qs.filter(
            Q(reference__icontains=search)
            | Q(account__name__icontains=search)
            | Q(allocations__invoice__number__icontains=search)
        ).distinct()
    return _payment_totals(qs).order_by("-date", "-id")


def payment_get(*, firm: Firm, pk: Any) -> Payment | None:
    return _payment_totals(Payment.objects.filter(firm=firm, pk=pk).select_related("account")).first()


def payment_detail(*, firm: Firm, pk: Any) -> Payment | None:
    """A payment with totals, its allocations (with invoices), refunds and history."""
    allocations = PaymentAllocation.objects.select_related("invoice").order_by("invoice__issue_date", "id")
    history = BillingHistory.objects.select_related("actor", "invoice").order_by("created_at", "id")
    return (
        _payment_totals(Payment.objects.filter(firm=firm, pk=pk).select_related("account"))
        .prefetch_related(
            Prefetch("allocations", queryset=allocations),
            Prefetch("refunds", queryset=Refund.objects.order_by("date", "id")),
            Prefetch("history", queryset=history),
        )
        .first()
    )


def allocation_get(*, firm: Firm, payment: Payment, pk: Any) -> PaymentAllocation | None:
    return (
        PaymentAllocation.objects.select_related("payment", "invoice")
        .filter(firm=firm, payment=payment, pk=pk)
        .first()
    )


# --- accounts ----------------------------------------------------------------------------------


def account_choices(*, firm: Firm, keep_id: int | None = None) -> QuerySet[ClientAccount]:
    """Accounts to bill: the active ones, plus `keep_id` (an archived account on its own draft)."""
    return (
        ClientAccount.objects.filter(firm=firm)
        .filter(Q(archived=False) | Q(pk=keep_id))
        .order_by("name", "id")
    )


def account_get(*, firm: Firm, pk: Any) -> ClientAccount | None:
    try:
        return ClientAccount.objects.filter(firm=firm, pk=int(pk)).first()
    except (TypeError, ValueError):
        return None


def account_ids_with_billing(*, firm: Firm, among: QuerySet[ClientAccount] | None = None) -> set[int]:
    """Ids of the firm's accounts (of `among`, when given) that have any invoice or payment, in
    any state.

    Used by QBO sync eligibility ("accounts with invoices or payments"). Drafts, void invoices
    and deleted payments count too, on purpose: once billing exists for an account it stays
    eligible, so a void or delete can still be carried to QBO and statuses never flap back.
    """
    has_invoice = Invoice.objects.filter(account=OuterRef("pk"))
    has_payment = Payment.objects.filter(account=OuterRef("pk"))
    accounts = ClientAccount.objects.filter(firm=firm) if among is None else among.filter(firm=firm)
    return set(accounts.filter(Exists(has_invoice) | Exists(has_payment)).values_list("pk", flat=True))


def accounts_with_billing_changed_since(*, firm: Firm, since: datetime) -> Q:
    """A filter on ClientAccount for accounts whose invoices or payments changed since `since`
    (QBO sync plans from what changed: a first invoice makes its account eligible)."""
    return Q(pk__in=Invoice.objects.filter(firm=firm, updated_at__gte=since).values("account_id")) | Q(
        pk__in=Payment.objects.filter(firm=firm, updated_at__gte=since).values("account_id")
    )


@dataclass(frozen=True)
class AccountBalance:
    invoiced: Decimal  # total of issued invoices
    paid: Decimal  # applied to them by payments that are not deleted
    outstanding: Decimal  # what the client owes
    credit: Decimal  # payments received but neither applied nor refunded


def account_balance(*, firm: Firm, account: ClientAccount | int) -> AccountBalance:
    invoices = list(invoice_list(firm=firm, account=account, state=InvoiceState.ISSUED))
    invoiced = sum((i.total for i in invoices), ZERO)
    paid = sum((i.paid for i in invoices), ZERO)
    payments = payment_list(firm=firm, account=account, state=PaymentState.RECORDED)
    credit = sum((p.unapplied for p in payments), ZERO)
    return AccountBalance(
        invoiced=money(invoiced), paid=money(paid), outstanding=money(invoiced - paid), credit=money(credit)
    )


def billing_totals(*, firm: Firm) -> dict[str, Decimal]:
    """Firm-wide figures for the list pages' header: outstanding on issued invoices, credit."""
    invoices = _invoice_totals(Invoice.objects.filter(firm=firm, state=InvoiceState.ISSUED)).aggregate(
        total=Coalesce(Sum("total_amount"), Value(ZERO), output_field=MONEY),
        paid=Coalesce(Sum("allocated_amount"), Value(ZERO), output_field=MONEY),
    )
    return {"outstanding": money(invoices["total"] - invoices["paid"])}

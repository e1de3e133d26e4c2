"""Billing: services, invoices with lines, payments with allocations, refunds, and history.

Money is `Decimal` with two places everywhere. Invoice totals and balances are never stored or
typed by users: they are computed from lines and allocations (selectors annotate them in SQL,
the properties below compute them for a single object). Writes go through `services.py`, which
enforces the cross-row rules (allocations within the payment and the invoice balance, refunds
within the unapplied part of the payment, state transitions).

Foreign keys between billing rows use RESTRICT rather than PROTECT: a row in use cannot be
deleted on its own, but deleting a whole firm (which cascades to everything) still works.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from practice.common.models import FirmScopedModel

CENTS = Decimal("0.01")
ZERO = Decimal("0.00")
# QBO's DocNumber holds at most 21 characters (qbo-api.md); the invoice number becomes it.
INVOICE_NUMBER_MAX_LENGTH = 21


def money(value: Decimal | int | str) -> Decimal:
    """Round to cents, half-up (the way invoices are rounded on paper, not banker's rounding)."""
    return Decimal(value).quantize(CENTS, rounding=ROUND_HALF_UP)


def money_field(verbose_name: str | object, **kwargs: object) -> models.DecimalField:
    return models.DecimalField(verbose_name, max_digits=12, decimal_places=2, **kwargs)  # type: ignore[arg-type]


class Service(FirmScopedModel):
    """Something the firm bills for; becomes a QBO Item of type Service (matched by name)."""

    firm = models.ForeignKey("firms.Firm", on_delete=models.CASCADE, related_name="services")
    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True)
    rate = money_field(_("rate"), default=ZERO, validators=[MinValueValidator(ZERO)])
    # Free text: the name of a QBO income account; empty means the firm's default from the
    # QuickBooks settings. Kept as a name so billing never depends on QBO ids.
    income_account_name = models.CharField(_("income account override"), max_length=100, blank=True)
    archived = models.BooleanField(_("archived"), default=False)
    # Sales tax applies to it: its QBO item is created taxable and its invoice lines carry the
    # tax code TAX (else NON), so QuickBooks adds tax only where the app says so.
    taxable = models.BooleanField(_("taxable"), default=False)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            # QBO matches items by name, so two services of one firm may not share a name.
            models.UniqueConstraint(fields=["firm", "name"], name="billing_service_unique_name_per_firm")
        ]
        # QBO sync plans from what changed since its last run (quickbooks engine.plan_scope).
        indexes = [models.Index(fields=["firm", "updated_at"], name="billing_service_changed")]

    def __str__(self) -> str:
        return self.name


class InvoiceState(models.TextChoices):
    DRAFT = "draft", _("Draft")
    ISSUED = "issued", _("Issued")
    VOID = "void", _("Void")

    @property
    def colour(self) -> str:
        return {"draft": "grey", "issued": "blue", "void": "red"}[self.value]


class Invoice(FirmScopedModel):
    """A bill to one client account. Drafts are editable; issued invoices can be paid or voided.

    `number` is unique per firm and at most 21 characters (QBO DocNumber); the services assign
    "INV-0001"-style numbers when none is given.
    """

    firm = models.ForeignKey("firms.Firm", on_delete=models.CASCADE, related_name="invoices")
    account = models.ForeignKey(
        "clients.ClientAccount", on_delete=models.RESTRICT, related_name="invoices", verbose_name=_("account")
    )
    number = models.CharField(_("number"), max_length=INVOICE_NUMBER_MAX_LENGTH)
    issue_date = models.DateField(_("issue date"))
    due_date = models.DateField(_("due date"))
    state = models.CharField(
        _("state"), max_length=10, choices=InvoiceState.choices, default=InvoiceState.DRAFT
    )
    class_name = models.CharField(_("class"), max_length=100, blank=True)
    location_name = models.CharField(_("location"), max_length=100, blank=True)
    memo = models.TextField(_("memo"), blank=True)
    issued_at = models.DateTimeField(_("issued at"), null=True, blank=True)
    voided_at = models.DateTimeField(_("voided at"), null=True, blank=True)
    void_reason = models.CharField(_("void reason"), max_length=500, blank=True)

    class Meta:
        ordering = ["-issue_date", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["firm", "number"], name="billing_invoice_unique_number_per_firm"),
            models.CheckConstraint(
                condition=Q(due_date__gte=models.F("issue_date")), name="billing_invoice_due_after_issue"
            ),
        ]
        indexes = [
            models.Index(fields=["firm", "state", "issue_date"]),
            models.Index(fields=["firm", "updated_at"], name="billing_invoice_changed"),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def state_choice(self) -> InvoiceState:
        return InvoiceState(self.state)

    @property
    def total(self) -> Decimal:
        """Sum of line amounts (uses the selectors' annotation when present)."""
        annotated = getattr(self, "total_amount", None)
        if annotated is not None:
            return money(annotated)
        return money(self.lines.aggregate(s=Sum("amount"))["s"] or ZERO)

    @property
    def paid(self) -> Decimal:
        """Amount applied by payments that are not deleted."""
        annotated = getattr(self, "allocated_amount", None)
        if annotated is not None:
            return money(annotated)
        return money(
            self.allocations.filter(payment__state=PaymentState.RECORDED).aggregate(s=Sum("amount"))["s"]
            or ZERO
        )

    @property
    def is_overdue(self) -> bool:
        return self.state == InvoiceState.ISSUED and self.due_date < timezone.localdate() and self.balance > 0

    @property
    def payment_badge(self) -> tuple[str, str] | None:
        """(label, colour) for issued invoices: paid, partly paid or overdue; None otherwise."""
        if self.state != InvoiceState.ISSUED:
            return None
        if self.balance <= 0:
            return str(_("Paid")), "green"
        if self.is_overdue:
            return str(_("Overdue")), "red"
        if self.paid > 0:
            return str(_("Partly paid")), "amber"
        return None

    @property
    def balance(self) -> Decimal:
        """What the client still owes: total − applied payments; a void invoice owes nothing."""
        if self.state == InvoiceState.VOID:
            return ZERO
        return self.total - self.paid


class InvoiceLine(FirmScopedModel):
    """One line of an invoice; `amount` = quantity × rate rounded half-up, set by the services."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField(default=0)
    service = models.ForeignKey(
        Service, on_delete=models.RESTRICT, related_name="+", verbose_name=_("service")
    )
    description = models.CharField(_("description"), max_length=1000, blank=True)
    quantity = money_field(_("quantity"), default=Decimal("1.00"))
    rate = money_field(_("rate"))
    amount = money_field(_("amount"))

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.invoice_id}#{self.position}"


class PaymentMethod(models.TextChoices):
    CARD = "card", _("Card")
    ACH = "ach", _("ACH")
    CASH = "cash", _("Cash")
    CHECK = "check", _("Check")
    CREDIT_NOTE = "credit_note", _("Credit note")


class PaymentState(models.TextChoices):
    RECORDED = "recorded", _("Recorded")
    DELETED = "deleted", _("Deleted")

    @property
    def colour(self) -> str:
        return {"recorded": "green", "deleted": "red"}[self.value]


class Payment(FirmScopedModel):
    """Money received from a client account, applied to its invoices through allocations.

    Whatever is not allocated or refunded stays as the client's credit (QBO: unapplied amount).
    Deleting is a state change: the row, its allocations and refunds stay for history, but a
    deleted payment no longer reduces any invoice balance.

    `sync_to_quickbooks` is three-valued: None follows the firm's QuickBooks setting "sync
    manually created payments by default" (resolved by the QBO app at push time), True/False is
    this payment's own override.
    """

    firm = models.ForeignKey("firms.Firm", on_delete=models.CASCADE, related_name="payments")
    account = models.ForeignKey(
        "clients.ClientAccount", on_delete=models.RESTRICT, related_name="payments", verbose_name=_("account")
    )
    date = models.DateField(_("date"))
    amount = money_field(_("amount"))
    method = models.CharField(_("method"), max_length=16, choices=PaymentMethod.choices)
    reference = models.CharField(_("reference"), max_length=100, blank=True)
    processing_fee = money_field(_("processing fee"), default=ZERO)
    created_manually = models.BooleanField(_("created manually"), default=True)
    sync_to_quickbooks = models.BooleanField(_("sync to QuickBooks"), null=True, blank=True, default=None)
    state = models.CharField(
        _("state"), max_length=10, choices=PaymentState.choices, default=PaymentState.RECORDED
    )
    deleted_at = models.DateTimeField(_("deleted at"), null=True, blank=True)
    delete_reason = models.CharField(_("delete reason"), max_length=500, blank=True)

    class Meta:
        ordering = ["-date", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="billing_payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(processing_fee__gte=0) & Q(processing_fee__lte=models.F("amount")),
                name="billing_payment_fee_within_amount",
            ),
        ]
        indexes = [
            models.Index(fields=["firm", "state", "date"]),
            models.Index(fields=["firm", "updated_at"], name="billing_payment_changed"),
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.date} {self.amount}"

    @property
    def state_choice(self) -> PaymentState:
        return PaymentState(self.state)

    @property
    def allocated(self) -> Decimal:
        annotated = getattr(self, "allocated_amount", None)
        if annotated is not None:
            return money(annotated)
        return money(self.allocations.aggregate(s=Sum("amount"))["s"] or ZERO)

    @property
    def refunded(self) -> Decimal:
        annotated = getattr(self, "refunded_amount", None)
        if annotated is not None:
            return money(annotated)
        return money(self.refunds.aggregate(s=Sum("amount"))["s"] or ZERO)

    @property
    def unapplied(self) -> Decimal:
        """Credit left: amount − allocations − refunds."""
        return self.amount - self.allocated - self.refunded


class PaymentAllocation(FirmScopedModel):
    """Part of a payment applied to one issued invoice of the same account (one row per pair)."""

    payment = models.ForeignKey(Payment, on_delete=models.RESTRICT, related_name="allocations")
    invoice = models.ForeignKey(Invoice, on_delete=models.RESTRICT, related_name="allocations")
    amount = money_field(_("amount"))

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["payment", "invoice"], name="billing_allocation_unique_pair"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="billing_allocation_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.payment_id}→{self.invoice_id}: {self.amount}"


class Refund(FirmScopedModel):
    """Money returned to the client out of a payment's unapplied credit (QBO RefundReceipt)."""

    payment = models.ForeignKey(Payment, on_delete=models.RESTRICT, related_name="refunds")
    date = models.DateField(_("date"))
    amount = money_field(_("amount"))
    reason = models.CharField(_("reason"), max_length=500, blank=True)

    class Meta:
        ordering = ["date", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="billing_refund_amount_positive"),
        ]
        indexes = [models.Index(fields=["firm", "updated_at"], name="billing_refund_changed")]

    def __str__(self) -> str:
        return f"{self.payment_id} refund {self.amount}"


class HistoryAction(models.TextChoices):
    CREATED = "created", _("Created")
    UPDATED = "updated", _("Updated")
    ISSUED = "issued", _("Issued")
    VOIDED = "voided", _("Voided")
    ARCHIVED = "archived", _("Archived")
    RESTORED = "restored", _("Restored")
    ALLOCATED = "allocated", _("Payment applied")
    UNALLOCATED = "unallocated", _("Payment unapplied")
    REFUNDED = "refunded", _("Refunded")
    DELETED = "deleted", _("Deleted")


class BillingHistory(FirmScopedModel):
    """Who did what to a billing record, and when: voids and deletes leave a trace here."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    action = models.CharField(_("action"), max_length=16, choices=HistoryAction.choices)
    service = models.ForeignKey(
        Service, on_delete=models.CASCADE, null=True, blank=True, related_name="history"
    )
    invoice = models.ForeignKey(
        Invoice, on_delete=models.CASCADE, null=True, blank=True, related_name="history"
    )
    payment = models.ForeignKey(
        Payment, on_delete=models.CASCADE, null=True, blank=True, related_name="history"
    )
    amount = money_field(_("amount"), null=True, blank=True)
    note = models.CharField(_("note"), max_length=500, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "billing history"

    def __str__(self) -> str:
        return f"{self.action} {self.created_at:%Y-%m-%d}"

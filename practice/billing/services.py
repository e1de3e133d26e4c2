"""Billing writes. Every function takes keyword-only arguments and raises
`django.core.exceptions.ValidationError` with a dict keyed by field name on bad input, so views
can show the error next to the field ("__all__" when no single field is to blame).

Rules decided here (and documented for the QBO side):
- Invoices: draft → issued → void. Only drafts are edited. Voiding needs no payment applied:
  unapply the allocations first (QBO refuses to void an invoice with linked payments too).
- Allocations: only to issued invoices of the payment's account; never more than the invoice
  balance nor more than the payment's unapplied credit (amount − allocations − refunds).
- Refunds come out of the unapplied credit, so allocations + refunds ≤ payment amount always.
- Deleting a payment is a state change; its allocations stop counting towards balances.

Each write that QBO sync cares about calls `practice.common.events.record_changed` (runs on
commit).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from practice.billing.models import (
    INVOICE_NUMBER_MAX_LENGTH,
    ZERO,
    BillingHistory,
    HistoryAction,
    Invoice,
    InvoiceLine,
    InvoiceState,
    Payment,
    PaymentAllocation,
    PaymentMethod,
    PaymentState,
    Refund,
    Service,
    money,
)
from practice.clients.models import ClientAccount
from practice.common.events import record_changed
from practice.common.text import BIDI_CONTROL_MESSAGE, has_bidi_control
from practice.firms.models import Firm

MAX_AMOUNT = Decimal("9999999999.99")  # fits max_digits=12, decimal_places=2
MAX_LINES = 200
NUMBER_PREFIX = "INV-"
_NUMBER_RE = re.compile(r"^INV-(\d+)$")
_FORBIDDEN_CHARS = "\x00"


# --- helpers -----------------------------------------------------------------------------------


def _raise(field: str, message: str) -> None:
    raise ValidationError({field: [message]})


def _clean_text(value: Any, *, field: str, max_length: int, errors: dict[str, list[str]]) -> str:
    text = "" if value is None else str(value)
    if _FORBIDDEN_CHARS in text:
        # PostgreSQL text cannot hold NUL bytes (stack-notes G11); refuse instead of a 500.
        errors.setdefault(field, []).append(_("Remove the invalid control character."))
        return ""
    if has_bidi_control(text):
        errors.setdefault(field, []).append(str(BIDI_CONTROL_MESSAGE))
        return ""
    text = text.strip()
    if len(text) > max_length:
        errors.setdefault(field, []).append(
            _("Use at most %(max)d characters (this has %(n)d).") % {"max": max_length, "n": len(text)}
        )
    return text


def _clean_amount(
    value: Any,
    *,
    field: str,
    errors: dict[str, list[str]],
    allow_zero: bool = False,
    required: bool = True,
) -> Decimal:
    if value is None or value == "":
        if required:
            errors.setdefault(field, []).append(_("Enter an amount."))
        return ZERO
    if isinstance(value, float):
        # Floats cannot hold cents exactly; callers must pass Decimal or str.
        value = str(value)
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        errors.setdefault(field, []).append(_("Enter a number."))
        return ZERO
    if not amount.is_finite():
        errors.setdefault(field, []).append(_("Enter a number."))
        return ZERO
    if abs(amount) > MAX_AMOUNT:
        # Before quantize(): "1e30" in cents needs more than Decimal's 28 digits and raises.
        errors.setdefault(field, []).append(_("This amount is too large."))
        return ZERO
    if amount != amount.quantize(Decimal("0.01")):
        errors.setdefault(field, []).append(_("Use at most two decimal places."))
        return ZERO
    amount = money(amount)
    if amount < 0 or (amount == 0 and not allow_zero):
        errors.setdefault(field, []).append(
            _("Enter zero or more.") if allow_zero else _("Enter an amount greater than zero.")
        )
    elif amount > MAX_AMOUNT:
        errors.setdefault(field, []).append(_("This amount is too large."))
    return amount


def _clean_date(value: Any, *, field: str, errors: dict[str, list[str]]) -> datetime.date | None:
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    errors.setdefault(field, []).append(_("Enter a valid date."))
    return None


def _check(errors: Mapping[str, list[str]]) -> None:
    if errors:
        raise ValidationError(dict(errors))


def _history(
    *,
    firm: Firm,
    action: str,
    actor: Any = None,
    service: Service | None = None,
    invoice: Invoice | None = None,
    payment: Payment | None = None,
    amount: Decimal | None = None,
    note: str = "",
) -> None:
    BillingHistory.objects.create(
        firm=firm,
        action=action,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        service=service,
        invoice=invoice,
        payment=payment,
        amount=amount,
        note=note[:500],
    )


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _account_for(*, firm: Firm, account: ClientAccount | int | None, field: str = "account") -> ClientAccount:
    """The firm's account; another firm's account is reported as not found, never used."""
    account_id = _int_or_none(account.pk if isinstance(account, ClientAccount) else account)
    found = ClientAccount.objects.filter(firm=firm, pk=account_id).first() if account_id else None
    if found is None:
        _raise(field, _("Choose a client account."))
    assert found is not None
    return found


# --- services ----------------------------------------------------------------------------------


def _service_fields(
    *,
    firm: Firm,
    name: Any,
    description: Any,
    rate: Any,
    income_account_name: Any,
    exclude_pk: int | None = None,
) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    clean_name = " ".join(_clean_text(name, field="name", max_length=100, errors=errors).split())
    if not clean_name and "name" not in errors:
        errors["name"] = [_("Enter a name.")]
    # QBO Item names cannot contain a colon (it separates sub-items) or line breaks.
    if ":" in clean_name:
        errors.setdefault("name", []).append(_("QuickBooks does not allow ':' in service names."))
    clash = Service.objects.filter(firm=firm, name__iexact=clean_name)
    if exclude_pk:
        clash = clash.exclude(pk=exclude_pk)
    if clean_name and clash.exists():
        errors.setdefault("name", []).append(_("Another service already has this name."))
    fields = {
        "name": clean_name,
        "description": _clean_text(description, field="description", max_length=4000, errors=errors),
        "rate": _clean_amount(rate, field="rate", errors=errors, allow_zero=True),
        "income_account_name": _clean_text(
            income_account_name, field="income_account_name", max_length=100, errors=errors
        ),
    }
    _check(errors)
    return fields


@transaction.atomic
def service_create(
    *,
    firm: Firm,
    name: str,
    rate: Decimal | str,
    description: str = "",
    income_account_name: str = "",
    taxable: bool = False,
    actor: Any = None,
) -> Service:
    fields = _service_fields(
        firm=firm, name=name, description=description, rate=rate, income_account_name=income_account_name
    )
    service = Service.objects.create(firm=firm, taxable=bool(taxable), **fields)
    _history(firm=firm, action=HistoryAction.CREATED, actor=actor, service=service)
    record_changed(firm=firm, kind="service", obj_id=service.pk)
    return service


@transaction.atomic
def service_update(
    *,
    service: Service,
    name: str,
    rate: Decimal | str,
    description: str = "",
    income_account_name: str = "",
    taxable: bool | None = None,
    actor: Any = None,
) -> Service:
    """Save a service's fields; `taxable` None keeps the current value."""
    fields = _service_fields(
        firm=service.firm,
        name=name,
        description=description,
        rate=rate,
        income_account_name=income_account_name,
        exclude_pk=service.pk,
    )
    if taxable is not None:
        fields["taxable"] = bool(taxable)
    for key, value in fields.items():
        setattr(service, key, value)
    service.save()
    _history(firm=service.firm, action=HistoryAction.UPDATED, actor=actor, service=service)
    record_changed(firm=service.firm, kind="service", obj_id=service.pk)
    return service


@transaction.atomic
def service_archive(*, service: Service, archived: bool = True, actor: Any = None) -> Service:
    """Archive (hide from new invoice lines) or restore a service; existing lines keep it."""
    if service.archived != archived:
        service.archived = archived
        service.save(update_fields=["archived", "updated_at"])
        _history(
            firm=service.firm,
            action=HistoryAction.ARCHIVED if archived else HistoryAction.RESTORED,
            actor=actor,
            service=service,
        )
        record_changed(firm=service.firm, kind="service", obj_id=service.pk)
    return service


# --- invoices ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineInput:
    """A validated invoice line, ready to store."""

    service: Service
    description: str
    quantity: Decimal
    rate: Decimal

    @property
    def amount(self) -> Decimal:
        return money(self.quantity * self.rate)


def _service_id(ref: Any) -> int | None:
    if isinstance(ref, Service):
        return ref.pk
    try:
        return int(ref)
    except (TypeError, ValueError):
        return None


def _clean_lines(
    *, firm: Firm, lines: Iterable[Mapping[str, Any]], existing_service_ids: set[int]
) -> list[LineInput]:
    """Validate lines given as mappings with service (obj or id), description, quantity, rate.

    Errors are keyed "lines" (whole list) or "lines-<n>-<field>" (0-based index), which the
    invoice form maps to the row's field.
    """
    errors: dict[str, list[str]] = {}
    raw = list(lines)
    if len(raw) > MAX_LINES:
        _raise("lines", _("An invoice can have at most %(max)d lines.") % {"max": MAX_LINES})
    service_ids = {_service_id(line.get("service")) for line in raw}
    services = {
        s.pk: s for s in Service.objects.filter(firm=firm, pk__in=[i for i in service_ids if i is not None])
    }
    result: list[LineInput] = []
    for index, line in enumerate(raw):
        prefix = f"lines-{index}-"
        service_id = _service_id(line.get("service"))
        service = services.get(service_id) if service_id else None
        if service is None:
            errors.setdefault(prefix + "service", []).append(_("Choose a service."))
        elif service.archived and service.pk not in existing_service_ids:
            errors.setdefault(prefix + "service", []).append(_("This service is archived."))
        description = _clean_text(
            line.get("description"), field=prefix + "description", max_length=1000, errors=errors
        )
        quantity = _clean_amount(line.get("quantity"), field=prefix + "quantity", errors=errors)
        rate_value = line.get("rate")
        if (rate_value is None or rate_value == "") and service is not None:
            rate_value = service.rate  # a blank rate means "the service's rate"
        rate = _clean_amount(rate_value, field=prefix + "rate", errors=errors, allow_zero=True)
        if money(quantity * rate) > MAX_AMOUNT:
            errors.setdefault(prefix + "quantity", []).append(_("This line amount is too large."))
        if service is not None:
            result.append(LineInput(service=service, description=description, quantity=quantity, rate=rate))
    _check(errors)
    if sum((line.amount for line in result), ZERO) > MAX_AMOUNT:
        _raise("lines", _("The invoice total is too large."))
    return result


def _next_invoice_number(*, firm: Firm) -> str:
    """The next "INV-0001"-style number of the firm (one past the highest used)."""
    highest = 0
    for number in Invoice.objects.filter(firm=firm, number__startswith=NUMBER_PREFIX).values_list(
        "number", flat=True
    ):
        match = _NUMBER_RE.match(number)
        if match:
            highest = max(highest, int(match.group(1)))
    return f"{NUMBER_PREFIX}{highest + 1:04d}"


def _invoice_header(
    *,
    firm: Firm,
    account: ClientAccount | int | None,
    number: Any,
    issue_date: Any,
    due_date: Any,
    class_name: Any,
    location_name: Any,
    memo: Any,
    exclude_pk: int | None = None,
    current_account_id: int | None = None,
) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    account_obj: ClientAccount | None = None
    try:
        account_obj = _account_for(firm=firm, account=account)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if account_obj is not None and account_obj.archived and account_obj.pk != current_account_id:
        errors.setdefault("account", []).append(_("This client account is archived."))
    clean_number = _clean_text(number, field="number", max_length=INVOICE_NUMBER_MAX_LENGTH, errors=errors)
    if clean_number and any(ch.isspace() for ch in clean_number.replace(" ", "")):
        errors.setdefault("number", []).append(_("The number cannot contain tabs or line breaks."))
    if clean_number:
        clash = Invoice.objects.filter(firm=firm, number__iexact=clean_number)
        if exclude_pk:
            clash = clash.exclude(pk=exclude_pk)
        if clash.exists():
            errors.setdefault("number", []).append(_("Another invoice already has this number."))
    issue = _clean_date(issue_date, field="issue_date", errors=errors)
    due = _clean_date(due_date, field="due_date", errors=errors)
    if issue and due and due < issue:
        errors.setdefault("due_date", []).append(_("The due date cannot be before the issue date."))
    fields = {
        "account": account_obj,
        "number": clean_number,
        "issue_date": issue,
        "due_date": due,
        "class_name": _clean_text(class_name, field="class_name", max_length=100, errors=errors),
        "location_name": _clean_text(location_name, field="location_name", max_length=100, errors=errors),
        "memo": _clean_text(memo, field="memo", max_length=4000, errors=errors),
    }
    _check(errors)
    return fields


def _save_with_number(invoice: Invoice, *, firm: Firm, auto_number: bool) -> None:
    """Save, picking the next free number when none was given.

    Two people creating invoices at once would pick the same number: the firm's row is locked
    first so numbering is one at a time per firm (PostgreSQL; on SQLite the IMMEDIATE
    transaction already holds the write lock). Without it the sixth of six simultaneous
    writers lost the race five times and was refused. The unique constraint stays the backstop
    (a number typed by hand elsewhere), retried inside a savepoint so the outer transaction lives.
    """
    if auto_number:
        list(Firm.objects.select_for_update().filter(pk=firm.pk).values_list("pk", flat=True))
    for _attempt in range(5):
        if auto_number:
            invoice.number = _next_invoice_number(firm=firm)
        try:
            with transaction.atomic():
                invoice.save()
            return
        except IntegrityError:
            if not auto_number:
                _raise("number", _("Another invoice already has this number."))
    _raise("number", _("Could not assign an invoice number; please try again."))


def _replace_lines(invoice: Invoice, lines: list[LineInput]) -> None:
    invoice.lines.all().delete()
    InvoiceLine.objects.bulk_create(
        [
            InvoiceLine(
                firm_id=invoice.firm_id,
                invoice=invoice,
                position=position,
                service=line.service,
                description=line.description,
                quantity=line.quantity,
                rate=line.rate,
                amount=line.amount,
            )
            for position, line in enumerate(lines)
        ]
    )


def _validate_invoice_input(
    *,
    firm: Firm,
    lines: Iterable[Mapping[str, Any]],
    existing_service_ids: set[int],
    **header_input: Any,
) -> tuple[dict[str, Any], list[LineInput]]:
    """Check header and lines together so one submit reports every bad field, not the first."""
    errors: dict[str, list[str]] = {}
    header: dict[str, Any] = {}
    clean_lines: list[LineInput] = []
    try:
        header = _invoice_header(firm=firm, **header_input)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    try:
        clean_lines = _clean_lines(firm=firm, lines=lines, existing_service_ids=existing_service_ids)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    _check(errors)
    return header, clean_lines


@transaction.atomic
def invoice_create(
    *,
    firm: Firm,
    account: ClientAccount | int,
    issue_date: datetime.date | str,
    due_date: datetime.date | str,
    lines: Iterable[Mapping[str, Any]] = (),
    number: str = "",
    class_name: str = "",
    location_name: str = "",
    memo: str = "",
    actor: Any = None,
) -> Invoice:
    """Create a draft invoice with its lines. A blank number gets the next "INV-nnnn"."""
    header, clean_lines = _validate_invoice_input(
        firm=firm,
        lines=lines,
        existing_service_ids=set(),
        account=account,
        number=number,
        issue_date=issue_date,
        due_date=due_date,
        class_name=class_name,
        location_name=location_name,
        memo=memo,
    )
    invoice = Invoice(firm=firm, state=InvoiceState.DRAFT, **header)
    _save_with_number(invoice, firm=firm, auto_number=not header["number"])
    _replace_lines(invoice, clean_lines)
    _history(firm=firm, action=HistoryAction.CREATED, actor=actor, invoice=invoice)
    record_changed(firm=firm, kind="invoice", obj_id=invoice.pk)
    return invoice


def _lock_invoice(invoice: Invoice) -> Invoice:
    # Re-read under a row lock so two concurrent writes see each other's result (PostgreSQL;
    # SQLite serialises writers anyway).
    return Invoice.objects.select_for_update().get(pk=invoice.pk, firm_id=invoice.firm_id)


@transaction.atomic
def invoice_update(
    *,
    invoice: Invoice,
    account: ClientAccount | int,
    issue_date: datetime.date | str,
    due_date: datetime.date | str,
    lines: Iterable[Mapping[str, Any]],
    number: str = "",
    class_name: str = "",
    location_name: str = "",
    memo: str = "",
    actor: Any = None,
) -> Invoice:
    """Replace a draft's header and lines. Issued and void invoices are not editable."""
    locked = _lock_invoice(invoice)
    if locked.state != InvoiceState.DRAFT:
        _raise(NON_FIELD_ERRORS, _("Only draft invoices can be edited."))
    firm = locked.firm
    header, clean_lines = _validate_invoice_input(
        firm=firm,
        lines=lines,
        existing_service_ids=set(locked.lines.values_list("service_id", flat=True)),
        account=account,
        number=number,
        issue_date=issue_date,
        due_date=due_date,
        class_name=class_name,
        location_name=location_name,
        memo=memo,
        exclude_pk=locked.pk,
        current_account_id=locked.account_id,
    )
    auto_number = not header["number"]
    if auto_number:
        header["number"] = locked.number  # keep the number it already has
    for key, value in header.items():
        setattr(locked, key, value)
    _save_with_number(locked, firm=firm, auto_number=auto_number and not locked.number)
    _replace_lines(locked, clean_lines)
    _history(firm=firm, action=HistoryAction.UPDATED, actor=actor, invoice=locked)
    record_changed(firm=firm, kind="invoice", obj_id=locked.pk)
    return locked


def _clean_number(*, firm: Firm, number: Any, exclude_pk: int) -> str:
    """An invoice number as `_invoice_header` checks it, required (renumbering picks one)."""
    errors: dict[str, list[str]] = {}
    clean = _clean_text(number, field="number", max_length=INVOICE_NUMBER_MAX_LENGTH, errors=errors)
    if not clean and not errors:
        errors["number"] = [_("Enter a number.")]
    if clean and any(ch.isspace() for ch in clean.replace(" ", "")):
        errors.setdefault("number", []).append(_("The number cannot contain tabs or line breaks."))
    if clean and Invoice.objects.filter(firm=firm, number__iexact=clean).exclude(pk=exclude_pk).exists():
        errors.setdefault("number", []).append(_("Another invoice already has this number."))
    _check(errors)
    return clean


@transaction.atomic
def invoice_renumber(*, invoice: Invoice, number: str, actor: Any = None) -> Invoice:
    """Give a draft or issued invoice another number (say, one QuickBooks already uses for
    another invoice). Same rules as a new number: unique in the firm, at most 21 characters."""
    locked = _lock_invoice(invoice)
    if locked.state == InvoiceState.VOID:
        _raise(NON_FIELD_ERRORS, _("A void invoice cannot be renumbered."))
    clean = _clean_number(firm=locked.firm, number=number, exclude_pk=locked.pk)
    if clean == locked.number:
        return locked
    old = locked.number
    locked.number = clean
    try:
        with transaction.atomic():
            locked.save(update_fields=["number", "updated_at"])
    except IntegrityError:
        _raise("number", _("Another invoice already has this number."))
    _history(
        firm=locked.firm,
        action=HistoryAction.UPDATED,
        actor=actor,
        invoice=locked,
        note=_("Number changed from %(old)s to %(new)s.") % {"old": old, "new": clean},
    )
    record_changed(firm=locked.firm, kind="invoice", obj_id=locked.pk)
    return locked


@transaction.atomic
def invoice_issue(*, invoice: Invoice, actor: Any = None) -> Invoice:
    """Draft → issued. Needs at least one line; after this the invoice can be paid or voided."""
    locked = _lock_invoice(invoice)
    if locked.state != InvoiceState.DRAFT:
        _raise(NON_FIELD_ERRORS, _("Only draft invoices can be issued."))
    if not locked.lines.exists():
        _raise("lines", _("Add at least one line before issuing the invoice."))
    locked.state = InvoiceState.ISSUED
    locked.issued_at = timezone.now()
    locked.save(update_fields=["state", "issued_at", "updated_at"])
    _history(firm=locked.firm, action=HistoryAction.ISSUED, actor=actor, invoice=locked)
    record_changed(firm=locked.firm, kind="invoice", obj_id=locked.pk)
    return locked


@transaction.atomic
def invoice_void(*, invoice: Invoice, reason: str = "", actor: Any = None) -> Invoice:
    """Draft or issued → void (kept, with its lines, for history; balance becomes zero).

    Refused while payments are applied to it: unapply them first, so the client's credit is
    visible instead of silently vanishing.
    """
    locked = _lock_invoice(invoice)
    if locked.state == InvoiceState.VOID:
        _raise(NON_FIELD_ERRORS, _("This invoice is already void."))
    errors: dict[str, list[str]] = {}
    clean_reason = _clean_text(reason, field="reason", max_length=500, errors=errors)
    _check(errors)
    if locked.allocations.filter(payment__state=PaymentState.RECORDED).exists():
        _raise(
            NON_FIELD_ERRORS,
            _("Payments are applied to this invoice. Unapply them from the payment first, then void."),
        )
    locked.state = InvoiceState.VOID
    locked.voided_at = timezone.now()
    locked.void_reason = clean_reason
    locked.save(update_fields=["state", "voided_at", "void_reason", "updated_at"])
    _history(firm=locked.firm, action=HistoryAction.VOIDED, actor=actor, invoice=locked, note=clean_reason)
    record_changed(firm=locked.firm, kind="invoice", obj_id=locked.pk)
    return locked


# --- payments ----------------------------------------------------------------------------------


def _invoice_balance(invoice: Invoice) -> Decimal:
    total = invoice.lines.aggregate(s=Sum("amount"))["s"] or ZERO
    paid = (
        invoice.allocations.filter(payment__state=PaymentState.RECORDED).aggregate(s=Sum("amount"))["s"]
        or ZERO
    )
    return money(total - paid)


def _payment_unapplied(payment: Payment) -> Decimal:
    allocated = payment.allocations.aggregate(s=Sum("amount"))["s"] or ZERO
    refunded = payment.refunds.aggregate(s=Sum("amount"))["s"] or ZERO
    return money(payment.amount - allocated - refunded)


def _touch_allocation(*, payment_id: int, invoice_ids: Iterable[int]) -> None:
    """Bump `updated_at` of a payment and the invoices whose allocations changed: what QBO sync
    re-checks is found by `updated_at`, and an allocation row alone changes neither."""
    now = timezone.now()
    Payment.objects.filter(pk=payment_id).update(updated_at=now)
    Invoice.objects.filter(pk__in=list(invoice_ids)).update(updated_at=now)


def _allocate(
    *, payment: Payment, invoice_id: Any, amount: Decimal, field: str, actor: Any
) -> PaymentAllocation:
    """Apply `amount` of a locked payment to one invoice, checking every rule."""
    invoice_pk = _int_or_none(invoice_id)
    invoice = (
        Invoice.objects.select_for_update().filter(firm_id=payment.firm_id, pk=invoice_pk).first()
        if invoice_pk
        else None
    )
    if invoice is None:
        _raise(field, _("Choose an invoice."))
    assert invoice is not None
    if invoice.account_id != payment.account_id:
        _raise(field, _("Invoice %(number)s belongs to another client account.") % {"number": invoice.number})
    if invoice.state != InvoiceState.ISSUED:
        _raise(
            field,
            _("Invoice %(number)s is not issued; payments apply only to issued invoices.")
            % {"number": invoice.number},
        )
    balance = _invoice_balance(invoice)
    if amount > balance:
        _raise(
            field,
            _("This is more than the balance of invoice %(number)s (%(balance)s).")
            % {"number": invoice.number, "balance": balance},
        )
    unapplied = _payment_unapplied(payment)
    if amount > unapplied:
        _raise(field, _("This is more than the payment's unapplied amount (%(left)s).") % {"left": unapplied})
    allocation = PaymentAllocation.objects.filter(payment=payment, invoice=invoice).first()
    if allocation is None:
        allocation = PaymentAllocation.objects.create(
            firm_id=payment.firm_id, payment=payment, invoice=invoice, amount=amount
        )
    else:
        allocation.amount = money(allocation.amount + amount)
        allocation.save(update_fields=["amount", "updated_at"])
    _touch_allocation(payment_id=payment.pk, invoice_ids=[invoice.pk])
    _history(
        firm=payment.firm,
        action=HistoryAction.ALLOCATED,
        actor=actor,
        payment=payment,
        invoice=invoice,
        amount=amount,
        note=invoice.number,
    )
    return allocation


@transaction.atomic
def payment_record(
    *,
    firm: Firm,
    account: ClientAccount | int,
    date: datetime.date | str,
    amount: Decimal | str,
    method: str,
    reference: str = "",
    processing_fee: Decimal | str = ZERO,
    created_manually: bool = True,
    sync_to_quickbooks: bool | None = None,
    allocations: Iterable[tuple[Invoice | int, Decimal | str]] = (),
    actor: Any = None,
) -> Payment:
    """Record a payment and optionally apply it to invoices: `allocations` = [(invoice, amount)].

    Allocation errors are keyed "allocation-<invoice id>" so the form marks the right row.
    """
    errors: dict[str, list[str]] = {}
    account_obj: ClientAccount | None = None
    try:
        account_obj = _account_for(firm=firm, account=account)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    clean_date = _clean_date(date, field="date", errors=errors)
    clean_amount = _clean_amount(amount, field="amount", errors=errors)
    if method not in PaymentMethod.values:
        errors.setdefault("method", []).append(_("Choose a payment method."))
    clean_reference = _clean_text(reference, field="reference", max_length=100, errors=errors)
    fee = _clean_amount(
        processing_fee, field="processing_fee", errors=errors, allow_zero=True, required=False
    )
    if "amount" not in errors and "processing_fee" not in errors and fee > clean_amount:
        errors.setdefault("processing_fee", []).append(_("The fee cannot be more than the payment."))
    wanted: list[tuple[Any, Decimal, str]] = []
    for invoice_ref, alloc_amount in allocations:
        invoice_id = invoice_ref.pk if isinstance(invoice_ref, Invoice) else invoice_ref
        field = f"allocation-{invoice_id}"
        value = _clean_amount(alloc_amount, field=field, errors=errors, allow_zero=True, required=False)
        if value > 0:
            wanted.append((invoice_id, value, field))
    if "amount" not in errors and sum((w[1] for w in wanted), ZERO) > clean_amount:
        errors.setdefault("allocations", []).append(_("The amounts applied add up to more than the payment."))
    _check(errors)
    assert account_obj is not None and clean_date is not None
    payment = Payment.objects.create(
        firm=firm,
        account=account_obj,
        date=clean_date,
        amount=clean_amount,
        method=method,
        reference=clean_reference,
        processing_fee=fee,
        created_manually=created_manually,
        sync_to_quickbooks=sync_to_quickbooks,
    )
    _history(firm=firm, action=HistoryAction.CREATED, actor=actor, payment=payment, amount=clean_amount)
    for invoice_id, value, field in wanted:
        _allocate(payment=payment, invoice_id=invoice_id, amount=value, field=field, actor=actor)
    record_changed(firm=firm, kind="payment", obj_id=payment.pk)
    return payment


def _lock_payment(payment: Payment) -> Payment:
    return Payment.objects.select_for_update().get(pk=payment.pk, firm_id=payment.firm_id)


@transaction.atomic
def payment_allocate(
    *, payment: Payment, invoice: Invoice | int, amount: Decimal | str, actor: Any = None
) -> PaymentAllocation:
    """Apply more of a payment's unapplied credit to an issued invoice of the same account."""
    locked = _lock_payment(payment)
    if locked.state != PaymentState.RECORDED:
        _raise(NON_FIELD_ERRORS, _("This payment was deleted."))
    errors: dict[str, list[str]] = {}
    value = _clean_amount(amount, field="amount", errors=errors)
    _check(errors)
    invoice_id = invoice.pk if isinstance(invoice, Invoice) else invoice
    allocation = _allocate(payment=locked, invoice_id=invoice_id, amount=value, field="invoice", actor=actor)
    record_changed(firm=locked.firm, kind="payment", obj_id=locked.pk)
    return allocation


@transaction.atomic
def payment_unallocate(*, allocation: PaymentAllocation, actor: Any = None) -> Payment:
    """Take a payment off an invoice; the money goes back to the payment's unapplied credit.

    The allocation row is removed, but the history keeps who unapplied what and when.
    """
    payment = _lock_payment(allocation.payment)
    if payment.state != PaymentState.RECORDED:
        _raise(NON_FIELD_ERRORS, _("This payment was deleted."))
    invoice = allocation.invoice
    _history(
        firm=payment.firm,
        action=HistoryAction.UNALLOCATED,
        actor=actor,
        payment=payment,
        invoice=invoice,
        amount=allocation.amount,
        note=invoice.number,
    )
    allocation.delete()
    _touch_allocation(payment_id=payment.pk, invoice_ids=[invoice.pk])
    record_changed(firm=payment.firm, kind="payment", obj_id=payment.pk)
    return payment


@transaction.atomic
def payment_delete(*, payment: Payment, reason: str = "", actor: Any = None) -> Payment:
    """Mark a payment deleted: it stays for history, with its allocations and refunds, but no
    longer reduces invoice balances (QBO: the payment and its refunds are deleted there)."""
    locked = _lock_payment(payment)
    if locked.state == PaymentState.DELETED:
        _raise(NON_FIELD_ERRORS, _("This payment was already deleted."))
    errors: dict[str, list[str]] = {}
    clean_reason = _clean_text(reason, field="reason", max_length=500, errors=errors)
    _check(errors)
    locked.state = PaymentState.DELETED
    locked.deleted_at = timezone.now()
    locked.delete_reason = clean_reason
    locked.save(update_fields=["state", "deleted_at", "delete_reason", "updated_at"])
    # The invoices it paid owe again.
    _touch_allocation(
        payment_id=locked.pk, invoice_ids=locked.allocations.values_list("invoice_id", flat=True)
    )
    _history(firm=locked.firm, action=HistoryAction.DELETED, actor=actor, payment=locked, note=clean_reason)
    record_changed(firm=locked.firm, kind="payment", obj_id=locked.pk)
    for refund_id in locked.refunds.values_list("pk", flat=True):
        record_changed(firm=locked.firm, kind="refund", obj_id=refund_id)
    return locked


@transaction.atomic
def refund_record(
    *,
    payment: Payment,
    date: datetime.date | str,
    amount: Decimal | str,
    reason: str = "",
    actor: Any = None,
) -> Refund:
    """Return part of a payment to the client, out of its unapplied credit.

    To refund money already applied to an invoice, unapply it first: otherwise the invoice would
    show as paid with money the client got back.
    """
    locked = _lock_payment(payment)
    if locked.state != PaymentState.RECORDED:
        _raise(NON_FIELD_ERRORS, _("This payment was deleted."))
    errors: dict[str, list[str]] = {}
    clean_date = _clean_date(date, field="date", errors=errors)
    value = _clean_amount(amount, field="amount", errors=errors)
    clean_reason = _clean_text(reason, field="reason", max_length=500, errors=errors)
    if clean_date and clean_date < locked.date:
        errors.setdefault("date", []).append(_("A refund cannot be dated before its payment."))
    if "amount" not in errors:
        unapplied = _payment_unapplied(locked)
        if value > unapplied:
            errors.setdefault("amount", []).append(
                _("You can refund at most the unapplied amount (%(left)s).") % {"left": unapplied}
            )
    _check(errors)
    assert clean_date is not None
    refund = Refund.objects.create(
        firm_id=locked.firm_id, payment=locked, date=clean_date, amount=value, reason=clean_reason
    )
    _history(
        firm=locked.firm,
        action=HistoryAction.REFUNDED,
        actor=actor,
        payment=locked,
        amount=value,
        note=clean_reason,
    )
    record_changed(firm=locked.firm, kind="refund", obj_id=refund.pk, payment_id=locked.pk)
    return refund

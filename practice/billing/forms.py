"""Forms parse and render; the business rules live in services.py, whose field-keyed errors the
views copy back onto these forms (`apply_errors`), so every error shows next to its field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from practice.billing.models import INVOICE_NUMBER_MAX_LENGTH, Invoice, PaymentMethod, Service, money
from practice.clients.models import ClientAccount

MONEY_ATTRS = {"step": "0.01", "inputmode": "decimal"}


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs=attrs, format="%Y-%m-%d")


def money_field(label: Any, *, required: bool = True, min_value: Decimal | None = None) -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        required=required,
        max_digits=12,
        decimal_places=2,
        min_value=min_value,
        widget=forms.NumberInput(attrs=MONEY_ATTRS),
    )


def apply_errors(form: forms.Form, exc: ValidationError, *, rename: Mapping[str, str] | None = None) -> None:
    """Copy a service's {field: [messages]} onto the form; unknown fields become form-wide."""
    for field, messages in exc.message_dict.items():
        name = (rename or {}).get(field, field)
        for message in messages:
            if name in form.fields:
                form.add_error(name, message)
            else:
                form.add_error(None, message)


class AccountChoiceField(forms.ModelChoiceField):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("empty_label", _("Choose a client account…"))
        super().__init__(*args, **kwargs)

    def label_from_instance(self, obj: Any) -> str:
        # Names keep their exact spelling (they are matched against QBO), only shown trimmed.
        return " ".join(str(obj.name).split())


class ServiceForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    rate = money_field(_("Rate"), min_value=Decimal("0"))
    income_account_name = forms.CharField(
        label=_("Income account override"),
        required=False,
        max_length=100,
        help_text=_(
            "Name of a QuickBooks income account. Leave empty for the default in the QuickBooks settings."
        ),
    )
    taxable = forms.BooleanField(
        label=_("Taxable"),
        required=False,
        help_text=_(
            "Sales tax applies to this service. QuickBooks then adds tax to its invoice lines when the "
            "company collects sales tax; leave it off for services that are not taxed."
        ),
    )


class InvoiceForm(forms.Form):
    account = AccountChoiceField(label=_("Client account"), queryset=ClientAccount.objects.none())
    number = forms.CharField(
        label=_("Number"),
        required=False,
        max_length=INVOICE_NUMBER_MAX_LENGTH,
        help_text=_("Leave empty for the next number. At most 21 characters (QuickBooks limit)."),
    )
    issue_date = forms.DateField(label=_("Issue date"), widget=DateInput())
    due_date = forms.DateField(label=_("Due date"), widget=DateInput())
    class_name = forms.CharField(label=_("Class"), required=False, max_length=100)
    location_name = forms.CharField(label=_("Location"), required=False, max_length=100)
    memo = forms.CharField(label=_("Memo"), required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, accounts: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = accounts  # type: ignore[attr-defined]


class LineForm(forms.Form):
    service = forms.ModelChoiceField(label=_("Service"), queryset=Service.objects.none(), required=False)
    description = forms.CharField(label=_("Description"), required=False, max_length=1000)
    quantity = money_field(_("Quantity"), required=False)
    rate = money_field(_("Rate"), required=False)

    def __init__(self, *args: Any, services: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["service"].queryset = services  # type: ignore[attr-defined]
        self.fields["service"].empty_label = _("Choose a service…")  # type: ignore[attr-defined]
        self.fields["quantity"].widget.attrs["placeholder"] = "1"
        self.fields["rate"].widget.attrs["placeholder"] = _("default")
        for field in self.fields.values():
            # Rows sit in a table with column headers instead of per-field labels.
            field.widget.attrs["aria-label"] = field.label

    def amount(self) -> Decimal | None:
        """quantity × rate (rate defaulting to the service's), for the form's live preview; None
        while the row is incomplete or invalid. The stored amount is computed by the services."""
        if self.is_bound:
            if self.is_blank() or not self.is_valid():
                return None
            values = self.cleaned_data
        else:
            values = {name: self.initial.get(name) for name in self.fields}
        service = values.get("service")
        if service is not None and not isinstance(service, Service):
            service = self.fields["service"].queryset.filter(pk=service).first()  # type: ignore[attr-defined]
        quantity = values.get("quantity")
        rate = values.get("rate")
        if rate is None and service is not None:
            rate = service.rate
        if service is None or rate is None:
            return None
        return money(Decimal(quantity if quantity is not None else 1) * Decimal(rate))

    def is_blank(self) -> bool:
        """A row the user left empty (the blank rows offered for new lines)."""
        return not any((self.data.get(self.add_prefix(name)) or "").strip() for name in self.fields)


_LINE_KEY = re.compile(r"^lines-(\d{1,15})-")
MAX_LINE_ROWS = 200


def line_indices(data: Mapping[str, Any]) -> list[int]:
    """Row indices present in POST data, in order. Indices need not be contiguous: rows added
    in the browser get a fresh large index and removed rows simply leave a gap."""
    found = {int(m.group(1)) for key in data for m in [_LINE_KEY.match(key)] if m}
    return sorted(found)[:MAX_LINE_ROWS]


def line_forms_from_post(data: Mapping[str, Any], *, services: Any) -> list[LineForm]:
    return [LineForm(data, prefix=f"lines-{i}", services=services) for i in line_indices(data)]


def line_forms_initial(invoice: Invoice | None, *, services: Any, blank_rows: int = 3) -> list[LineForm]:
    forms_: list[LineForm] = []
    if invoice is not None:
        for i, line in enumerate(invoice.lines.all()):
            forms_.append(
                LineForm(
                    prefix=f"lines-{i}",
                    services=services,
                    initial={
                        "service": line.service_id,
                        "description": line.description,
                        "quantity": line.quantity,
                        "rate": line.rate,
                    },
                )
            )
    start = len(forms_)
    forms_.extend(LineForm(prefix=f"lines-{start + j}", services=services) for j in range(blank_rows))
    return forms_


SYNC_CHOICES = [
    ("", _("Use the QuickBooks setting")),
    ("yes", _("Yes, sync to QuickBooks")),
    ("no", _("No, keep it out of QuickBooks")),
]


class PaymentForm(forms.Form):
    account = AccountChoiceField(label=_("Client account"), queryset=ClientAccount.objects.none())
    date = forms.DateField(label=_("Date"), widget=DateInput())
    amount = money_field(_("Amount"))
    method = forms.ChoiceField(label=_("Method"), choices=PaymentMethod.choices)
    reference = forms.CharField(label=_("Reference"), required=False, max_length=100)
    processing_fee = money_field(_("Processing fee"), required=False, min_value=Decimal("0"))
    sync_to_quickbooks = forms.ChoiceField(
        label=_("Sync to QuickBooks"), choices=SYNC_CHOICES, required=False
    )

    def __init__(self, *args: Any, accounts: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = accounts  # type: ignore[attr-defined]
        # The QuickBooks settings page calls it "manually created payments"; this form creates them.
        self.fields["sync_to_quickbooks"].help_text = _("Payments recorded here count as created manually.")

    def sync_flag(self) -> bool | None:
        return {"yes": True, "no": False}.get(self.cleaned_data.get("sync_to_quickbooks") or "")


_ALLOCATION_KEY = re.compile(r"^allocation-(\d{1,15})$")


def allocations_from_post(data: Mapping[str, Any]) -> list[tuple[int, str]]:
    """[(invoice id, amount text)] for the non-empty allocation inputs."""
    result = []
    for key in data:
        match = _ALLOCATION_KEY.match(key)
        value = (data.get(key) or "").strip()
        if match and value:
            result.append((int(match.group(1)), value))
    return result


class AllocateForm(forms.Form):
    invoice = forms.ModelChoiceField(label=_("Invoice"), queryset=Invoice.objects.none())
    amount = money_field(_("Amount"))

    def __init__(self, *args: Any, invoices: list[Invoice], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["invoice"]
        field.queryset = Invoice.objects.filter(pk__in=[i.pk for i in invoices])  # type: ignore[attr-defined]
        labels = {
            i.pk: f"{i.number} · {i.issue_date:%Y-%m-%d} · {_('balance')} {i.balance}" for i in invoices
        }
        field.label_from_instance = lambda obj: labels.get(obj.pk, obj.number)  # type: ignore[attr-defined]


class RefundForm(forms.Form):
    date = forms.DateField(label=_("Date"), widget=DateInput())
    amount = money_field(_("Amount"))
    reason = forms.CharField(label=_("Reason"), required=False, max_length=500)


class ReasonForm(forms.Form):
    """Void an invoice / delete a payment: the reason goes to the history."""

    reason = forms.CharField(label=_("Reason"), required=False, max_length=500)

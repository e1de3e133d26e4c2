"""Payment -> QBO Payment body (qbo-api.md §2.6). Pure: no Django queries, no HTTP.

The kind (`kinds/payments.py`) resolves the references (customer, deposit account, payment
method, the QBO invoices each allocation pays) and hands them in; this module only shapes them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

# QBO's "Reference no." of a received payment. The API reference gives no maximum for
# Payment.PaymentRefNum (qbo-api.md §2.6; SalesReceipt's is 21, RefundReceipt's 100), but the
# field is 21 characters wide in QBO's own screens and integrators report 21 for the API too.
# Longer references are cut to 21 here and kept whole in the PrivateNote, so nothing is lost and
# the payment still goes through: an Error would hold money back over a display field.
MAX_REF_NUM = 21
# The marker that says "this QBO payment is the app's payment #id" (find_existing looks for it).
MARKER = "Practice payment #{id}"
_CENTS = Decimal("0.01")


def marker(payment_id: int) -> str:
    return MARKER.format(id=payment_id)


def carries_marker(private_note: Any, payment_id: int) -> bool:
    """True when a QBO PrivateNote names the app's payment `payment_id` (not #12 in #123)."""
    if not isinstance(private_note, str):
        return False
    return re.search(re.escape(marker(payment_id)) + r"(?!\d)", private_note) is not None


def amount(value: Decimal) -> float:
    """A money amount as QBO's JSON takes it (a number), rounded to cents first."""
    return float(Decimal(value).quantize(_CENTS, rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class AppliedLine:
    """One allocation: `amount` of the payment applied to the QBO invoice `qbo_invoice_id`."""

    amount: Decimal
    qbo_invoice_id: str


@dataclass(frozen=True)
class PaymentFacts:
    """What the body is made of (the app's payment and the QBO references it needs)."""

    payment_id: int
    customer_ref: dict[str, str]
    total: Decimal
    txn_date: date
    reference: str
    lines: Sequence[AppliedLine]
    deposit_account_id: str = ""
    payment_method_id: str = ""


def reference_is_cut(reference: str) -> bool:
    return len(reference.strip()) > MAX_REF_NUM


def payment_body(facts: PaymentFacts) -> dict[str, Any]:
    """The content of the QBO Payment: used as is to create it, and with Id, SyncToken and
    `"sparse": true` added to update it (the Line array sent replaces the payment's lines).

    The unapplied remainder (total − lines) is not sent: QBO computes `UnappliedAmt` and keeps it
    as the customer's credit.
    """
    reference = facts.reference.strip()
    note = marker(facts.payment_id)
    if reference_is_cut(reference):
        note += f" (reference: {reference})"
    body: dict[str, Any] = {
        "CustomerRef": {"value": str(facts.customer_ref["value"])},
        "TotalAmt": amount(facts.total),
        "TxnDate": facts.txn_date.isoformat(),
        "PrivateNote": note,
        # Sorted by QBO invoice so the same allocations always make the same body (and hash).
        "Line": [
            {
                "Amount": amount(line.amount),
                "LinkedTxn": [{"TxnId": str(line.qbo_invoice_id), "TxnType": "Invoice"}],
            }
            for line in sorted(facts.lines, key=lambda li: (_id_key(li.qbo_invoice_id), li.amount))
        ],
    }
    if reference:
        body["PaymentRefNum"] = reference[:MAX_REF_NUM]
    if facts.deposit_account_id:
        body["DepositToAccountRef"] = {"value": str(facts.deposit_account_id)}
    if facts.payment_method_id:
        body["PaymentMethodRef"] = {"value": str(facts.payment_method_id)}
    return body


def cut_reference_note(body: dict[str, Any]) -> str:
    """What to say in the history when a body carries a reference cut to `MAX_REF_NUM` ("" if not)."""
    match = re.search(r"\(reference: (.*)\)$", str(body.get("PrivateNote", "")), re.DOTALL)
    if not match:
        return ""
    return (
        f"The reference “{match.group(1)}” is longer than the {MAX_REF_NUM} characters QuickBooks "
        f"shows; it was sent as “{body.get('PaymentRefNum', '')}” and in full in the payment's memo."
    )


def content_of(body: dict[str, Any]) -> dict[str, Any]:
    """A create or update body without its version fields (Id, SyncToken, sparse): what
    `pushed_hash` is computed from, so an update that says what the create said is "unchanged"."""
    return {k: v for k, v in body.items() if k not in ("Id", "SyncToken", "sparse")}


def unapplied_in(body: dict[str, Any]) -> Decimal:
    """TotalAmt − Σ Line.Amount of a body: what QBO should report as UnappliedAmt."""
    total = Decimal(str(body.get("TotalAmt", 0)))
    applied = sum((Decimal(str(line.get("Amount", 0))) for line in body.get("Line") or []), Decimal(0))
    return (total - applied).quantize(_CENTS, rounding=ROUND_HALF_UP)


def input_hash(parts: Sequence[Any]) -> str:
    """Hash of what a payment decision was made on (see kinds/payments.py `_input_parts`)."""
    raw = json.dumps(list(parts), sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def _id_key(value: str) -> tuple[int, str]:
    return (int(value), "") if value.isdigit() else (1 << 62, value)

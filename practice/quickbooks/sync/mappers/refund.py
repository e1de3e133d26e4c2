"""Refund -> QBO RefundReceipt and processing fee -> QBO Purchase bodies (qbo-api.md §2.8, §2.9).

Pure: no Django queries, no HTTP. The kind (`kinds/refunds.py`) resolves the references (customer,
the account the money leaves from and its type, the "Refunds" item, the fee account).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from practice.quickbooks.sync.mappers.payment import amount

REFUND_MARKER = "Practice refund #{id}"
FEE_MARKER = "Practice processing fee of payment #{id}"
# The item every refund line is on (matched by name, created once per realm when missing).
REFUNDS_ITEM = "Refunds"
# RefundReceipt.PaymentRefNum is at most 100 characters (REF-refundreceipt).
MAX_REFUND_REF = 100
MAX_NOTE = 4000


def refund_marker(refund_id: int) -> str:
    return REFUND_MARKER.format(id=refund_id)


def fee_marker(payment_id: int) -> str:
    return FEE_MARKER.format(id=payment_id)


def carries(private_note: Any, marker: str) -> bool:
    """True when a QBO PrivateNote carries `marker` (not #12 in #123)."""
    if not isinstance(private_note, str):
        return False
    return re.search(re.escape(marker) + r"(?!\d)", private_note) is not None


@dataclass(frozen=True)
class RefundFacts:
    refund_id: int
    customer_id: str
    total: Decimal
    txn_date: date
    reason: str
    item_id: str
    account_id: str
    account_is_bank: bool
    reference: str = ""


def refund_body(facts: RefundFacts) -> dict[str, Any]:
    """One line of the refunded amount on the "Refunds" item, paid from `account_id` (Bank or
    Other Current Asset). A bank refund carries a PaymentRefNum (QBO wants one there)."""
    note = refund_marker(facts.refund_id)
    reason = facts.reason.strip()
    if reason:
        note = f"{note}: {reason}"[:MAX_NOTE]
    line: dict[str, Any] = {
        "DetailType": "SalesItemLineDetail",
        "Amount": amount(facts.total),
        "SalesItemLineDetail": {
            "ItemRef": {"value": str(facts.item_id)},
            "Qty": 1,
            "UnitPrice": amount(facts.total),
        },
    }
    if reason:
        line["Description"] = reason[:4000]
    body: dict[str, Any] = {
        "CustomerRef": {"value": str(facts.customer_id)},
        "TxnDate": facts.txn_date.isoformat(),
        "DepositToAccountRef": {"value": str(facts.account_id)},
        "PrivateNote": note,
        "Line": [line],
    }
    if facts.account_is_bank:
        body["PaymentRefNum"] = (facts.reference.strip() or f"Refund {facts.refund_id}")[:MAX_REFUND_REF]
    return body


@dataclass(frozen=True)
class FeeFacts:
    payment_id: int
    fee: Decimal
    txn_date: date
    account_id: str
    payment_type: str  # "Cash" (bank account) or "CreditCard" (credit-card account)
    fee_account_id: str
    reference: str = ""


def fee_body(facts: FeeFacts) -> dict[str, Any]:
    """An expense paid from the account the payment was deposited to, one line in the fee
    account. No EntityRef: the fee is paid to the card processor, not to the client, and naming
    the client would list an expense among the client's transactions in QuickBooks."""
    note = fee_marker(facts.payment_id)
    if facts.reference.strip():
        note += f" (reference: {facts.reference.strip()})"
    return {
        "PaymentType": facts.payment_type,
        "AccountRef": {"value": str(facts.account_id)},
        "TxnDate": facts.txn_date.isoformat(),
        "PrivateNote": note[:MAX_NOTE],
        "Line": [
            {
                "DetailType": "AccountBasedExpenseLineDetail",
                "Amount": amount(facts.fee),
                "Description": "Payment processing fee",
                "AccountBasedExpenseLineDetail": {"AccountRef": {"value": str(facts.fee_account_id)}},
            }
        ],
    }

"""Invoice -> QBO Invoice body (qbo-api.md §2.5). Pure: the kind resolves every reference."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from practice.quickbooks.sync import engine

MAX_DESCRIPTION = 4000
# Fields of a body that are not its content (compared across creates and sparse updates).
_VERSION = ("Id", "SyncToken", "sparse")


@dataclass
class LineIn:
    item_id: str
    description: str
    quantity: Decimal
    rate: Decimal
    amount: Decimal
    taxable: bool


@dataclass
class InvoiceIn:
    """What the body is made of, references already resolved to QBO ids."""

    local_id: int
    number: str
    customer_id: str
    txn_date: str
    due_date: str
    lines: list[LineIn]
    send_number: bool = True
    class_id: str | None = None
    class_per_line: bool = False
    department_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def private_note(number: str, local_id: int) -> str:
    """The note that names the app's invoice; `marker` finds it again without a DocNumber."""
    return f"Practice invoice {number} {marker(local_id)}"


def marker(local_id: int) -> str:
    return f"(id {local_id})"


def _num(value: Decimal) -> float | int:
    """A JSON number: QBO answers numbers, and the sandbox checks Qty × UnitPrice to the cent."""
    return int(value) if value == value.to_integral_value() else float(value)


def invoice_body(inv: InvoiceIn) -> dict[str, Any]:
    lines: list[dict[str, Any]] = []
    for line in inv.lines:
        detail: dict[str, Any] = {
            "ItemRef": {"value": line.item_id},
            "Qty": _num(line.quantity),
            "UnitPrice": _num(line.rate),
            "TaxCodeRef": {"value": "TAX" if line.taxable else "NON"},
        }
        if inv.class_id and inv.class_per_line:
            detail["ClassRef"] = {"value": inv.class_id}
        out: dict[str, Any] = {
            "DetailType": "SalesItemLineDetail",
            "Amount": float(line.amount),
            "SalesItemLineDetail": detail,
        }
        if line.description:
            out["Description"] = line.description[:MAX_DESCRIPTION]
        lines.append(out)
    body: dict[str, Any] = {
        "CustomerRef": {"value": inv.customer_id},
        "TxnDate": inv.txn_date,
        "DueDate": inv.due_date,
        "PrivateNote": private_note(inv.number, inv.local_id),
        "Line": lines,
    }
    if inv.send_number:
        body["DocNumber"] = inv.number
    if inv.class_id and not inv.class_per_line:
        body["ClassRef"] = {"value": inv.class_id}
    if inv.department_id:
        body["DepartmentRef"] = {"value": inv.department_id}
    return body


def content(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in _VERSION}


def content_hash(body: dict[str, Any]) -> str:
    """`SyncLink.pushed_hash` of an invoice: the same for a create and a sparse update carrying
    the same content."""
    return engine.hash_body(content(body))


def body_total(body: dict[str, Any]) -> Decimal:
    """The app's total as sent: the sum of the line amounts."""
    return sum((Decimal(str(line.get("Amount", 0))) for line in body.get("Line") or []), Decimal("0.00"))


def input_hash(invoice: Any, lines: list[Any]) -> str:
    """Hash of the local fields an invoice decision uses; a change re-plans an Error."""
    raw = json.dumps(
        [
            invoice.number,
            invoice.account_id,
            str(invoice.issue_date),
            str(invoice.due_date),
            invoice.state,
            invoice.class_name,
            invoice.location_name,
            [[ln.service_id, str(ln.quantity), str(ln.rate), ln.description] for ln in lines],
        ],
        ensure_ascii=True,
    )
    return hashlib.sha256(raw.encode()).hexdigest()

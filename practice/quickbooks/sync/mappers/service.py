"""Service -> QBO Item (Type "Service") bodies (qbo-api.md §2.3)."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any, Protocol

from practice.quickbooks.sync.kinds.matching import clean_display_name

# QBO Item limits (qbo-api.md §2.3): Name 100 (unique, no ':'), Description 4000.
MAX_NAME = 100
MAX_DESCRIPTION = 4000


class ServiceLike(Protocol):
    name: str
    description: str
    rate: Decimal
    income_account_name: str
    archived: bool
    taxable: bool


def item_name(service: ServiceLike) -> str:
    """The Item Name we send: trimmed, inner white space collapsed, ':' (QBO's sub-item separator,
    refused in names) replaced, at most 100 characters."""
    return clean_display_name(service.name.replace(":", "-"))[:MAX_NAME]


def item_create_body(service: ServiceLike, *, income_account_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Name": item_name(service),
        "Type": "Service",
        "IncomeAccountRef": {"value": income_account_id},
        # Lines carry their own TaxCodeRef; the item's flag is what QuickBooks falls back to.
        "Taxable": bool(service.taxable),
        "UnitPrice": float(service.rate),
    }
    description = (service.description or "").strip()
    if description:
        body["Description"] = description[:MAX_DESCRIPTION]
    return body


def item_state(service: ServiceLike) -> dict[str, Any]:
    """What the kind keeps in step once the item is linked: its name and whether it is active."""
    return {"Name": item_name(service), "Active": not service.archived}


def state_hash(state: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(state, sort_keys=True, ensure_ascii=True).encode()).hexdigest()


def input_hash(service: ServiceLike) -> str:
    """Hash of what a service decision depends on (name, income account, archived): a change
    re-decides an Error."""
    raw = json.dumps(
        [item_name(service).casefold(), service.income_account_name.strip().casefold(), service.archived],
        ensure_ascii=True,
    )
    return hashlib.sha256(raw.encode()).hexdigest()

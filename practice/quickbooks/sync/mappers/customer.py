"""ClientAccount -> QBO Customer body (qbo-api.md §2.1)."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

from practice.quickbooks.sync.kinds.matching import clean_display_name

# QBO field limits (qbo-api.md §2.1): longer values are refused with 2050, so trim instead.
_MAX_COMPANY = 100
_MAX_PHONE = 30
_MAX_ADDR_LINE = 500


class AccountLike(Protocol):
    name: str
    kind: str
    email: str
    phone: str
    address_line1: str
    city: str
    region: str
    postal_code: str
    country: str


def customer_body(
    account: AccountLike, *, display_name: str | None = None, customer_type_id: str | None = None
) -> dict[str, Any]:
    """The body that creates `account` as a new QBO customer.

    `display_name` overrides the account name (the person edited it in "Create new customer").
    Only fields with a value are sent: QBO stores what it gets, and an empty string is not
    "no e-mail".
    """
    name = clean_display_name(display_name if display_name is not None else account.name)
    body: dict[str, Any] = {"DisplayName": name}
    if account.kind == "company":
        body["CompanyName"] = name[:_MAX_COMPANY]
    email = (account.email or "").strip()
    # QBO refuses addresses without "@" and "." (qbo-api.md §2.1); the app validates e-mail, but
    # old rows may predate that.
    if email and "@" in email and "." in email.split("@")[-1]:
        body["PrimaryEmailAddr"] = {"Address": email}
    phone = (account.phone or "").strip()
    if phone:
        body["PrimaryPhone"] = {"FreeFormNumber": phone[:_MAX_PHONE]}
    addr = {
        "Line1": (account.address_line1 or "").strip()[:_MAX_ADDR_LINE],
        "City": (account.city or "").strip(),
        "CountrySubDivisionCode": (account.region or "").strip(),
        "PostalCode": (account.postal_code or "").strip(),
        "Country": (account.country or "").strip(),
    }
    addr = {k: v for k, v in addr.items() if v}
    if addr:
        body["BillAddr"] = addr
    if customer_type_id:
        body["CustomerTypeRef"] = {"value": customer_type_id}
    return body


def input_hash(account: AccountLike) -> str:
    """Hash of what a customer decision depends on; a change means "decide again"."""
    raw = json.dumps([clean_display_name(account.name).casefold()], ensure_ascii=True)
    return hashlib.sha256(raw.encode()).hexdigest()


def body_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=True).encode()).hexdigest()

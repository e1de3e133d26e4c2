"""Money rules of QuickBooks Online's sales and expense forms (issue 9), kept apart from the store.

Every amount is computed in `Decimal` and rounded half-up to the cent: binary floats give
128.35 × 14.50 = 1861.0749999… (QBO says 1861.08) and round(2.675, 2) = 2.67. Each rule's
confidence and source are listed in docs/sandbox.md ("Money rules").
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from qbo_sandbox import errors

if TYPE_CHECKING:
    from qbo_sandbox.store import Realm

Obj = dict[str, Any]
CENT = Decimal("0.01")
ZERO = Decimal(0)

# Account types a form may post money to (REF-payment, REF-refundreceipt, REF-purchase, REF-item).
DEPOSIT_ACCOUNT_TYPES = ("Bank", "Other Current Asset")
INCOME_ACCOUNT_TYPES = ("Income", "Other Income")
PURCHASE_ACCOUNT_TYPES = {"Cash": ("Bank",), "Check": ("Bank",), "CreditCard": ("Credit Card",)}
# The tax code AST keeps for migrated transactions; not usable on a US form (error-code list 6230).
CUSTOM_SALES_TAX = "CustomSalesTax"


def dec(value: Any, element: str) -> Decimal:
    """A JSON number (or numeric text) as an exact Decimal; the float's shortest repr is what was sent."""
    if isinstance(value, bool) or value is None:
        raise errors.bad_request(f"Invalid number for {element}: {value}", element)
    try:
        result = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise errors.bad_request(f"Invalid number for {element}: {value}", element) from None
    if not result.is_finite():
        raise errors.bad_request(f"Invalid number for {element}: {value}", element)
    return result


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def to_json(value: Decimal) -> float:
    """The stored form: a JSON number with at most two decimals (QBO answers numbers, not strings)."""
    return float(cents(value))


# ---------------------------------------------------------------- line arithmetic


def check_line_amount(line: Obj, detail: Obj) -> Decimal:
    """A sales line's Amount, required, and equal to Qty × UnitPrice at the cent when both are sent (6070)."""
    if line.get("Amount") is None:
        raise errors.required("Line.Amount")
    amount = dec(line["Amount"], "Line.Amount")
    qty, price = detail.get("Qty"), detail.get("UnitPrice")
    if qty is not None and price is not None:
        expected = cents(
            dec(qty, "Line.SalesItemLineDetail.Qty") * dec(price, "Line.SalesItemLineDetail.UnitPrice")
        )
        if cents(amount) != expected:
            raise errors.QBOError(
                "6070",
                "Amount calculation incorrect in the request",
                f"Amount is not equal to Qty * UnitPrice. Supplied value:{line['Amount']}",
                "Line.Amount",
            )
    return cents(amount)


# ---------------------------------------------------------------- sales tax


def sales_tax_on(realm: Realm) -> bool:
    return realm.pref("TaxPrefs", "UsingSalesTax") is True


def automated_tax_on(realm: Realm) -> bool:
    return sales_tax_on(realm) and realm.pref("TaxPrefs", "PartnerTaxEnabled") is True


def _ref_value(ref: Any) -> str | None:
    if isinstance(ref, dict) and ref.get("value") not in (None, ""):
        return str(ref["value"])
    return None


def line_tax_codes(realm: Realm, lines: list[Obj]) -> None:
    """Give every item line TAX or NON: a sent code must be one of them (6100, US); a line without one
    follows its item's Taxable flag."""
    for line in lines:
        detail = line.get("SalesItemLineDetail")
        if line.get("DetailType") != "SalesItemLineDetail" or not isinstance(detail, dict):
            continue
        code = _ref_value(detail.get("TaxCodeRef"))
        if code is None:
            item = realm.get("Item", _ref_value(detail.get("ItemRef")) or "")
            detail["TaxCodeRef"] = {"value": "TAX" if (item or {}).get("Taxable") else "NON"}
        elif code not in ("TAX", "NON"):
            raise errors.QBOError(
                "6100",
                "Invalid Line TaxCode in the request",
                f"Valid Line TaxCodes for US should be TAX or NON. Supplied value:{code}",
                "Line.SalesItemLineDetail.TaxCodeRef",
            )


def _rates(realm: Realm, code_id: str) -> list[tuple[str, Decimal]]:
    code = realm.get("TaxCode", code_id) or {}
    rate_list = (code.get("SalesTaxRateList") or {}).get("TaxRateDetail") or []
    out = []
    for detail in rate_list:
        rate_id = _ref_value((detail or {}).get("TaxRateRef"))
        rate = realm.get("TaxRate", rate_id or "")
        if rate_id and rate is not None:
            out.append((rate_id, dec(rate.get("RateValue", 0), "TaxRate.RateValue")))
    return out


def sales_tax(realm: Realm, obj: Obj, existing: Obj | None, subtotal: Decimal, discount: Decimal) -> Decimal:
    """Fill TxnTaxDetail of a sales form and return its TotalTax.

    Without sales tax the detail is ignored and not stored (REF-invoice TxnTaxDetail). With it, the tax
    code is the one sent, else the customer's default (manual sales tax); under automated sales tax
    (AST) the company's code is used and a sent code only matters with an explicit TotalTax
    (Intuit blog 2017-12-11; intuit/QuickBooks-V3-PHP-SDK#199). An explicit TotalTax is honoured and
    prorated across the code's rates. A TxnTaxDetail equal to the stored one (a sparse update keeps it,
    a full update echoes it back) is not an override: the tax is computed again for the new lines."""
    sent = obj.get("TxnTaxDetail")
    if sent is not None and not isinstance(sent, dict):
        raise errors.bad_request("TxnTaxDetail must be an object", "TxnTaxDetail")
    sent = sent or {}
    if not sales_tax_on(realm):
        obj["TxnTaxDetail"] = {"TotalTax": 0}
        return ZERO
    lines = obj.get("Line") or []
    line_tax_codes(realm, lines)
    sent_code = _ref_value(sent.get("TxnTaxCodeRef"))
    if sent_code == CUSTOM_SALES_TAX:
        raise errors.QBOError(
            "6230",
            "Invalid TaxCodeRef",
            "CustomSalesTax cannot be used as TxnTaxCodeRef for US companies.",
            "TxnTaxDetail.TxnTaxCodeRef",
        )
    explicit = sent.get("TotalTax")
    if existing is not None and sent == existing.get("TxnTaxDetail"):
        explicit = None
    if automated_tax_on(realm) and explicit is None:
        code = _ref_value(realm.pref("TaxPrefs", "TaxGroupCodeRef"))
    else:
        customer = realm.get("Customer", _ref_value(obj.get("CustomerRef")) or "") or {}
        code = sent_code or _ref_value(customer.get("DefaultTaxCodeRef"))
        if code is None and automated_tax_on(realm):
            code = _ref_value(realm.pref("TaxPrefs", "TaxGroupCodeRef"))
    taxable = sum(
        (
            dec(ln.get("Amount") or 0, "Line.Amount")
            for ln in lines
            if ln.get("DetailType") == "SalesItemLineDetail"
            and _ref_value((ln.get("SalesItemLineDetail") or {}).get("TaxCodeRef")) == "TAX"
        ),
        ZERO,
    )
    if obj.get("ApplyTaxAfterDiscount") and subtotal > 0 and discount:
        taxable = cents(taxable * (subtotal - discount) / subtotal)
    rates = _rates(realm, code) if code else []
    tax_lines: list[Obj] = []
    if explicit is not None:
        total = cents(dec(explicit, "TxnTaxDetail.TotalTax"))
        if total < 0:
            raise errors.business("The sales tax amount cannot be negative.", "TxnTaxDetail.TotalTax")
        weight = sum((r for _, r in rates), ZERO)
        left = total
        for i, (rate_id, rate) in enumerate(rates):
            share = left if i == len(rates) - 1 else cents(total * rate / weight) if weight else ZERO
            left -= share
            tax_lines.append(_tax_line(rate_id, rate, share, taxable))
    else:
        total = ZERO
        for rate_id, rate in rates:
            amount = cents(taxable * rate / 100)
            total += amount
            tax_lines.append(_tax_line(rate_id, rate, amount, taxable))
    detail: Obj = {"TotalTax": to_json(total)}
    if code:
        detail = {"TxnTaxCodeRef": {"value": code}, **detail, "TaxLine": tax_lines}
    obj["TxnTaxDetail"] = detail
    return total


def _tax_line(rate_id: str, rate: Decimal, amount: Decimal, taxable: Decimal) -> Obj:
    return {
        "Amount": to_json(amount),
        "DetailType": "TaxLineDetail",
        "TaxLineDetail": {
            "TaxRateRef": {"value": rate_id},
            "PercentBased": True,
            "TaxPercent": float(rate),
            "NetAmountTaxable": to_json(taxable),
        },
    }


class SettingError(ValueError):
    """A bad control-plane field; the 400 answer names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def configure_sales_tax(realm: Realm, spec: Obj) -> Obj:
    """Control plane: switch a company's sales tax (QBO sets TaxPrefs only in its own UI, never via the
    API). ``enabled`` (UsingSalesTax), ``automated`` (PartnerTaxEnabled), ``tax_code`` (the company's
    code, TaxGroupCodeRef) or ``rate`` (a percent: creates a rate and a code for it)."""
    from qbo_sandbox.entities import SPECS

    unknown = set(spec) - {"enabled", "automated", "tax_code", "rate"}
    if unknown:
        name = sorted(unknown)[0]
        raise SettingError(name, f"unknown field {name}; known: enabled, automated, tax_code, rate")
    for key in ("enabled", "automated"):
        if key in spec and not isinstance(spec[key], bool):
            raise SettingError(key, f"{key} must be true or false")
    prefs = realm.preferences()
    current = prefs.get("TaxPrefs")
    tax: Obj = dict(current) if isinstance(current, dict) else {}
    if "enabled" in spec:
        tax["UsingSalesTax"] = spec["enabled"]
    if "automated" in spec:
        tax["PartnerTaxEnabled"] = spec["automated"]
    code_id = spec.get("tax_code")
    if spec.get("rate") is not None:
        try:
            rate = dec(spec["rate"], "rate")
        except errors.QBOError:
            raise SettingError("rate", "rate must be a number (a percent)") from None
        if rate < 0 or rate > 100:
            raise SettingError("rate", "rate must be a percent between 0 and 100")
        rate_id = realm.next_id(SPECS["TaxRate"].id_space)
        realm.insert_raw(
            "TaxRate",
            {
                "Id": rate_id,
                "Name": f"Sandbox rate {rate}%",
                "RateValue": float(rate),
                "Active": True,
                "SyncToken": "0",
                "domain": "QBO",
                "sparse": False,
            },
        )
        code_id = realm.next_id(SPECS["TaxCode"].id_space)
        realm.insert_raw(
            "TaxCode",
            {
                "Id": code_id,
                "Name": f"Sandbox sales tax {rate}%",
                "Taxable": True,
                "TaxGroup": True,
                "Active": True,
                "SalesTaxRateList": {"TaxRateDetail": [{"TaxRateRef": {"value": rate_id}, "TaxOrder": 0}]},
                "PurchaseTaxRateList": {"TaxRateDetail": []},
                "SyncToken": "0",
                "domain": "QBO",
                "sparse": False,
            },
        )
    if code_id is not None:
        if not isinstance(code_id, str) or realm.get("TaxCode", code_id) is None:
            raise SettingError("tax_code", f"tax_code {code_id!r} is not a TaxCode of this company")
        tax["TaxGroupCodeRef"] = {"value": code_id}
    prefs["TaxPrefs"] = tax
    return tax


# ---------------------------------------------------------------- account types


def require_account_type(realm: Realm, ref: Any, allowed: tuple[str, ...], element: str, what: str) -> None:
    """QBO refuses money posted to the wrong kind of account; the exact code is unknown (docs/sandbox.md)."""
    account = realm.get("Account", _ref_value(ref) or "")
    if account is None:
        return  # missing or unknown references are reported by the reference check
    if account.get("AccountType") not in allowed:
        raise errors.business(
            f"{what} must be {' or '.join(allowed)} account; account {account.get('Name')} is "
            f"{account.get('AccountType')}.",
            element,
        )


# ---------------------------------------------------------------- voids


def is_voided(obj: Obj) -> bool:
    """QBO marks a voided form only by zero amounts and "Voided" leading PrivateNote (REF-invoice void)."""
    total = obj.get("TotalAmt")
    return (
        isinstance(total, int | float)
        and total == 0
        and str(obj.get("PrivateNote") or "").startswith("Voided")
    )

"""Realm seeds: `empty` (what a new company needs to work) and `sample-us` (Intuit's sample company).

The sample data's README (/work/shared/data/qbo-sample-company-us/README.md) explains its timeline:
every date is a template day relative to T0 = 2026-03-31, and a sandbox created on day D holds the
template shifted so that D = T0 + 34 days.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from qbo_sandbox import clock
from qbo_sandbox.store import Realm

SAMPLE_DIR = os.environ.get("QBO_SANDBOX_SAMPLE_DIR", "/work/shared/data/qbo-sample-company-us")
TEMPLATE_T0 = date(2026, 3, 31)
CREATION_OFFSET_DAYS = 34

_FILES = {
    "account": "Account",
    "bill": "Bill",
    "billpayment": "BillPayment",
    "creditmemo": "CreditMemo",
    "customer": "Customer",
    "deposit": "Deposit",
    "employee": "Employee",
    "estimate": "Estimate",
    "invoice": "Invoice",
    "item": "Item",
    "journalentry": "JournalEntry",
    "payment": "Payment",
    "paymentmethod": "PaymentMethod",
    "purchase": "Purchase",
    "purchaseorder": "PurchaseOrder",
    "refundreceipt": "RefundReceipt",
    "salesreceipt": "SalesReceipt",
    "taxagency": "TaxAgency",
    "taxcode": "TaxCode",
    "taxrate": "TaxRate",
    "term": "Term",
    "timeactivity": "TimeActivity",
    "transfer": "Transfer",
    "vendor": "Vendor",
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}:?\d{2}|Z)$")

_cache: dict[str, list[dict[str, Any]]] = {}


def _load(name: str) -> list[dict[str, Any]]:
    if name not in _cache:
        with open(os.path.join(SAMPLE_DIR, f"{name}.json")) as fh:
            _cache[name] = json.load(fh)
    return copy.deepcopy(_cache[name])


def _shift(node: Any, days: int, now_stamp: str, now_ts: float, key: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _shift(v, days, now_stamp, now_ts, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_shift(v, days, now_stamp, now_ts, key) for v in node]
    if isinstance(node, str) and (_DATE.match(node) or _STAMP.match(node)):
        shifted = clock.shift_stamp(node, days)
        # The template holds a few stamps from after its capture; a fresh company has no future edits.
        parsed = clock.parse_stamp(shifted) if len(shifted) > 10 else None
        if parsed is not None and parsed.timestamp() > now_ts:
            return now_stamp
        return shifted
    return node


def _stamp_pair(realm: Realm, day: int) -> dict[str, str]:
    created = realm.created - timedelta(days=CREATION_OFFSET_DAYS - day)
    stamp = clock.meta_stamp(created)
    return {"CreateTime": stamp, "LastUpdatedTime": stamp}


def _meta(obj: dict[str, Any], realm: Realm, day: int = 0) -> dict[str, Any]:
    base = {"domain": "QBO", "sparse": False, "SyncToken": "0", "MetaData": _stamp_pair(realm, day)}
    base.update(obj)
    return base


_template_cache: dict[int, str] = {}


def _shifted_template(shift: int, now_stamp: str, now_ts: float) -> dict[str, list[dict[str, Any]]]:
    """The template moved by `shift` days, as fresh objects. Shifting walks every string, so the result
    is kept per shift (one per day) and copied by re-parsing; a stamp clamped to "now" by an earlier
    realm of the same day is at most that day old, which is still in the past."""
    if shift not in _template_cache:
        out: dict[str, list[dict[str, Any]]] = {}
        for filename, entity in _FILES.items():
            objs = []
            for obj in _load(filename):
                obj = _shift(obj, shift, now_stamp, now_ts)
                if entity == "TaxCode":
                    obj.setdefault("domain", "QBO")
                    obj.setdefault("sparse", False)
                    obj.setdefault("SyncToken", "0")
                    obj.setdefault("Active", True)
                objs.append(obj)
            out[entity] = objs
        _template_cache.clear()
        _template_cache[shift] = json.dumps(out)
    data: dict[str, list[dict[str, Any]]] = json.loads(_template_cache[shift])
    return data


def seed_sample_us(realm: Realm) -> None:
    creation = realm.created.date()
    shift = ((creation - timedelta(days=CREATION_OFFSET_DAYS)) - TEMPLATE_T0).days
    now_stamp = clock.meta_stamp(realm.created)
    now_ts = realm.created.timestamp()
    for entity, objs in _shifted_template(shift, now_stamp, now_ts).items():
        for obj in objs:
            realm.insert_raw(entity, obj)
    info = _shift(_load("companyinfo")[0], shift, now_stamp, now_ts)
    info.update(
        CompanyName=realm.company_name,
        LegalName=realm.company_name,
        CompanyStartDate=(TEMPLATE_T0 + timedelta(days=shift)).isoformat(),
        SupportedLanguages="en",
        DefaultTimeZone="America/Los_Angeles",
        Email={"Address": "noreply@sandbox.example"},
    )
    realm.insert_raw("CompanyInfo", _meta(info, realm, 0) | {"Id": "1"})
    prefs = _load("preferences")[0]
    # The reference sample's closing date (2018) is an edit of Intuit's writer, not a fresh company's.
    prefs.get("AccountingInfoPrefs", {}).pop("BookCloseDate", None)
    prefs["SyncToken"] = "0"
    prefs["MetaData"] = _stamp_pair(realm, 0)
    realm.insert_raw("Preferences", prefs)
    _seed_gaps(realm)


def _seed_gaps(realm: Realm) -> None:
    """Records the capture lacks but a working company needs (README §7): customer types, classes,
    departments (Preferences track classes per line and locations)."""
    for i, (name, active) in enumerate(
        [
            ("Individual", True),
            ("Commercial", True),
            ("Residential", True),
            ("Government", True),
            ("Wholesale", False),
        ],
        1,
    ):
        realm.insert_raw(
            "CustomerType", _meta({"Id": str(5000000000000000 + i), "Name": name, "Active": active}, realm, 0)
        )
    classes = [
        ("1", "Design", None),
        ("2", "Landscaping", None),
        ("3", "Maintenance", None),
        ("4", "Installation", "2"),
    ]
    for cid, name, parent in classes:
        obj: dict[str, Any] = {
            "Id": str(5000000000000000100 + int(cid)),
            "Name": name,
            "Active": True,
            "SubClass": parent is not None,
            "FullyQualifiedName": name,
        }
        if parent:
            pid = str(5000000000000000100 + int(parent))
            obj["ParentRef"] = {"value": pid}
            obj["FullyQualifiedName"] = f"{realm.data['Class'][pid]['Name']}:{name}"
        realm.insert_raw("Class", _meta(obj, realm, 1))
    for did, name in [("1", "San Pablo"), ("2", "Mountain View"), ("3", "Online")]:
        realm.insert_raw(
            "Department",
            _meta(
                {"Id": did, "Name": name, "SubDepartment": False, "FullyQualifiedName": name, "Active": True},
                realm,
                1,
            ),
        )


def seed_empty(realm: Realm) -> None:
    """A new US company: chart of accounts basics, terms, payment methods, tax pseudo codes, 2 items."""
    realm.insert_raw(
        "CompanyInfo",
        _meta(
            {
                "Id": "1",
                "CompanyName": realm.company_name,
                "LegalName": realm.company_name,
                "CompanyAddr": {
                    "Id": "1",
                    "Line1": "1 Main Street",
                    "City": "Mountain View",
                    "CountrySubDivisionCode": "CA",
                    "PostalCode": "94043",
                },
                "Country": "US",
                "FiscalYearStartMonth": "January",
                "SupportedLanguages": "en",
                "DefaultTimeZone": "America/Los_Angeles",
                "CompanyStartDate": realm.created.date().isoformat(),
                "Email": {"Address": "noreply@sandbox.example"},
                "NameValue": [
                    {"Name": "OfferingSku", "Value": "QuickBooks Online Plus"},
                    {"Name": "SubscriptionStatus", "Value": "SUBSCRIBED"},
                ],
            },
            realm,
            CREATION_OFFSET_DAYS,
        ),
    )
    realm.insert_raw(
        "Preferences",
        _meta(
            {
                "Id": "1",
                "AccountingInfoPrefs": {
                    "TrackDepartments": False,
                    "DepartmentTerminology": "Location",
                    "ClassTrackingPerTxn": False,
                    "ClassTrackingPerTxnLine": False,
                    "CustomerTerminology": "Customers",
                    "FirstMonthOfFiscalYear": "January",
                },
                "SalesFormsPrefs": {
                    "CustomTxnNumbers": False,
                    "AllowDeposit": True,
                    "AllowDiscount": True,
                    "AllowEstimates": True,
                    "AllowShipping": False,
                    "AllowServiceDate": False,
                    "DefaultTerms": {"value": "3"},
                    "AutoApplyCredit": True,
                    "ETransactionPaymentEnabled": False,
                },
                "TaxPrefs": {"UsingSalesTax": False, "PartnerTaxEnabled": True},
                "CurrencyPrefs": {"MultiCurrencyEnabled": False, "HomeCurrency": {"value": "USD"}},
                "OtherPrefs": {"NameValue": []},
            },
            realm,
            CREATION_OFFSET_DAYS,
        ),
    )
    accounts = [
        ("1", "Services", "Income", "ServiceFeeIncome", "Revenue"),
        ("2", "Sales of Product Income", "Income", "SalesOfProductIncome", "Revenue"),
        ("3", "Checking", "Bank", "Checking", "Asset"),
        ("4", "Undeposited Funds", "Other Current Asset", "UndepositedFunds", "Asset"),
        ("5", "Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable", "Asset"),
        ("6", "Accounts Payable (A/P)", "Accounts Payable", "AccountsPayable", "Liability"),
        ("7", "Bank Charges", "Expense", "BankCharges", "Expense"),
        ("8", "Discounts given", "Income", "DiscountsRefundsGiven", "Revenue"),
        ("9", "Opening Balance Equity", "Equity", "OpeningBalanceEquity", "Equity"),
        ("10", "Uncategorized Income", "Income", "ServiceFeeIncome", "Revenue"),
        ("11", "Uncategorized Expense", "Expense", "OtherMiscellaneousServiceCost", "Expense"),
    ]
    for aid, name, atype, sub, cls in accounts:
        realm.insert_raw(
            "Account",
            _meta(
                {
                    "Id": aid,
                    "Name": name,
                    "SubAccount": False,
                    "FullyQualifiedName": name,
                    "Active": True,
                    "Classification": cls,
                    "AccountType": atype,
                    "AccountSubType": sub,
                    "CurrentBalance": 0,
                    "CurrentBalanceWithSubAccounts": 0,
                    "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
                },
                realm,
                CREATION_OFFSET_DAYS,
            ),
        )
    for tid, name, days in [
        ("1", "Due on receipt", 0),
        ("2", "Net 15", 15),
        ("3", "Net 30", 30),
        ("4", "Net 60", 60),
    ]:
        realm.insert_raw(
            "Term",
            _meta(
                {
                    "Id": tid,
                    "Name": name,
                    "Active": True,
                    "Type": "STANDARD",
                    "DueDays": days,
                    "DiscountPercent": 0,
                    "DiscountDays": 0,
                },
                realm,
                CREATION_OFFSET_DAYS,
            ),
        )
    for pid, name, kind in [
        ("1", "Cash", "NON_CREDIT_CARD"),
        ("2", "Check", "NON_CREDIT_CARD"),
        ("3", "Visa", "CREDIT_CARD"),
        ("4", "MasterCard", "CREDIT_CARD"),
        ("5", "American Express", "CREDIT_CARD"),
    ]:
        realm.insert_raw(
            "PaymentMethod",
            _meta({"Id": pid, "Name": name, "Active": True, "Type": kind}, realm, CREATION_OFFSET_DAYS),
        )
    for code, taxable in [("TAX", True), ("NON", False)]:
        realm.insert_raw(
            "TaxCode",
            _meta(
                {
                    "Id": code,
                    "Name": code,
                    "Description": code,
                    "Taxable": taxable,
                    "TaxGroup": False,
                    "Active": True,
                },
                realm,
                CREATION_OFFSET_DAYS,
            ),
        )
    for iid, name in [("1", "Services"), ("2", "Hours")]:
        realm.insert_raw(
            "Item",
            _meta(
                {
                    "Id": iid,
                    "Name": name,
                    "FullyQualifiedName": name,
                    "Active": True,
                    "Type": "Service",
                    "Taxable": False,
                    "UnitPrice": 0,
                    "PurchaseCost": 0,
                    "TrackQtyOnHand": False,
                    "IncomeAccountRef": {"value": "1", "name": "Services"},
                    "SubItem": False,
                    "Level": 0,
                },
                realm,
                CREATION_OFFSET_DAYS,
            ),
        )
    realm.insert_raw(
        "CustomerType",
        _meta(
            {"Id": "5000000000000000001", "Name": "Individual", "Active": True}, realm, CREATION_OFFSET_DAYS
        ),
    )


SEEDS: dict[str, Callable[[Realm], None]] = {"empty": seed_empty, "sample-us": seed_sample_us}

"""Entities and rules that client libraries touch beyond what the practice app uses (issue 15 item 2).

Kept apart from entities.py/store.py so those stay the home of the app's own entities: this module
adds its specs to SPECS/BY_PATH and its builders to store's builder table when store is imported.
Each rule cites its source in Intuit's reference (REF-<entity>, qbo-api.md §0); where QBO's exact
code or wording is not documented the choice is listed in docs/sandbox.md ("Unverified").
"""

from __future__ import annotations

import email.parser
import email.policy
import json
from datetime import date, timedelta
from typing import Any

from qbo_sandbox import errors, store
from qbo_sandbox.entities import BY_PATH, NAME_LIST, SPECS, TRANSACTION, EntitySpec
from qbo_sandbox.jsoncheck import check_json_shape, has_surrogate

Obj = dict[str, Any]

# ISO 4217 codes QBO offers as company currencies (REF-companycurrency "Code": a currency code
# from the ISO 4217 list); the common ones, enough to tell a code from a typo.
ISO_CURRENCIES = {
    "AED": "UAE Dirham",
    "AUD": "Australian Dollar",
    "BRL": "Brazilian Real",
    "CAD": "Canadian Dollar",
    "CHF": "Swiss Franc",
    "CNY": "Chinese Yuan Renminbi",
    "DKK": "Danish Krone",
    "EUR": "Euro",
    "GBP": "British Pound Sterling",
    "HKD": "Hong Kong Dollar",
    "INR": "Indian Rupee",
    "JPY": "Japanese Yen",
    "MXN": "Mexican Peso",
    "NOK": "Norwegian Krone",
    "NZD": "New Zealand Dollar",
    "PHP": "Philippine Peso",
    "SEK": "Swedish Krona",
    "SGD": "Singapore Dollar",
    "USD": "United States Dollar",
    "ZAR": "South African Rand",
}


def _register(spec: EntitySpec, builder: store.Builder | None = None) -> None:
    SPECS[spec.name] = spec
    BY_PATH[spec.path] = spec
    if builder is not None:
        store._BUILDERS[spec.name] = builder


def _ref_value(obj: Obj, key: str) -> str | None:
    ref = obj.get(key)
    if isinstance(ref, dict) and ref.get("value") not in (None, ""):
        return str(ref["value"])
    return None


def _account_type(realm: store.Realm, obj: Obj, key: str) -> str | None:
    account_id = _ref_value(obj, key)
    account = realm.get("Account", account_id) if account_id else None
    return str(account.get("AccountType")) if account else None


def _require_account_type(realm: store.Realm, obj: Obj, key: str, allowed: tuple[str, ...]) -> None:
    """A reference that must point at an account of one of `allowed` types (REF-* field notes)."""
    found = _account_type(realm, obj, key)
    if found is not None and found not in allowed:
        raise errors.business(f"{key} must be an account of type {' or '.join(allowed)}, not {found}", key)


def _amount(obj: Obj, key: str, *, positive: bool = True) -> float:
    value = obj.get(key)
    if value is None or value == "":
        raise errors.required(key)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise errors.bad_request(f"{key} must be a number", key)
    try:
        number = float(value)
    except ValueError:
        raise errors.bad_request(f"{key} must be a number", key) from None
    if number != number or number in (float("inf"), float("-inf")) or abs(number) >= 1e13:
        raise errors.bad_request(f"{key} must be a finite amount below 10^13", key)
    if positive and number <= 0:
        raise errors.business(f"{key} must be greater than zero", key)
    return store.money(number)


def _lines(obj: Obj) -> list[Obj]:
    lines = obj.get("Line")
    if not isinstance(lines, list) or not lines:
        raise errors.required("Line")
    return [ln for ln in lines if isinstance(ln, dict)]


def _expense_lines(realm: store.Realm, obj: Obj) -> None:
    """Bill/PurchaseOrder/VendorCredit lines (REF-bill): each an AccountBasedExpenseLineDetail with
    an AccountRef or an ItemBasedExpenseLineDetail with an ItemRef, and an Amount."""
    for line in _lines(obj):
        kind = line.get("DetailType")
        where = "Line"  # QBO names the element without the line index , like the rest of the sandbox
        if kind not in ("AccountBasedExpenseLineDetail", "ItemBasedExpenseLineDetail"):
            raise errors.invalid_enum(f"{where}.DetailType", str(kind))
        detail = line.get(kind)
        if not isinstance(detail, dict):
            raise errors.required(f"{where}.{kind}")
        ref_key = "AccountRef" if kind == "AccountBasedExpenseLineDetail" else "ItemRef"
        if _ref_value(detail, ref_key) is None:
            raise errors.required(f"{where}.{kind}.{ref_key}")
        if line.get("Amount") in (None, ""):
            raise errors.required(f"{where}.Amount")


def _addresses(realm: store.Realm, obj: Obj, existing: Obj | None, keys: tuple[str, ...]) -> None:
    for key in keys:
        addr = obj.get(key)
        if addr is None:
            continue
        if not isinstance(addr, dict):
            raise errors.bad_request(f"{key} must be an address object", key)
        if addr and "Id" not in addr:
            old = (existing or {}).get(key)
            addr["Id"] = (
                old["Id"] if isinstance(old, dict) and "Id" in old else realm.next_id("PhysicalAddress")
            )


_generic = store._BUILDERS.get("Bill", store._build_generic)


# ---------------------------------------------------------------- Bill (REF-bill)


def _build_bill(
    realm: store.Realm, spec: EntitySpec, obj: Obj, existing: Obj | None, options: set[str]
) -> None:
    # Required: VendorRef and at least one expense line; APAccountRef must be an A/P account.
    if _ref_value(obj, "VendorRef") is None:
        raise errors.required("VendorRef")
    _expense_lines(realm, obj)
    _require_account_type(realm, obj, "APAccountRef", ("Accounts Payable",))
    _generic(realm, spec, obj, existing, options)
    store._check_date(obj, "DueDate")
    if not obj.get("DueDate"):
        # REF-bill: without a DueDate, TxnDate plus the days of SalesTermRef (else the vendor's terms).
        term_id = _ref_value(obj, "SalesTermRef")
        if term_id is None:
            vendor = realm.get("Vendor", _ref_value(obj, "VendorRef") or "")
            term_id = _ref_value(vendor or {}, "TermRef")
        term = realm.get("Term", term_id) if term_id else None
        try:
            days = int((term or {}).get("DueDays") or 0)
        except (TypeError, ValueError):
            days = 0
        obj["DueDate"] = (date.fromisoformat(obj["TxnDate"][:10]) + timedelta(days=days)).isoformat()


# ---------------------------------------------------------------- Deposit (REF-deposit)


def _build_deposit(
    realm: store.Realm, spec: EntitySpec, obj: Obj, existing: Obj | None, options: set[str]
) -> None:
    # Required: DepositToAccountRef (a bank or other current asset account) and lines; each line is
    # either a linked transaction (a payment sitting in Undeposited Funds) or a DepositLineDetail
    # with the AccountRef the money comes from.
    if _ref_value(obj, "DepositToAccountRef") is None:
        raise errors.required("DepositToAccountRef")
    _require_account_type(realm, obj, "DepositToAccountRef", ("Bank", "Other Current Asset"))
    for line in _lines(obj):
        where = "Line"
        if line.get("Amount") in (None, ""):
            raise errors.required(f"{where}.Amount")
        if line.get("LinkedTxn"):
            continue
        detail = line.get("DepositLineDetail")
        if not isinstance(detail, dict) or _ref_value(detail, "AccountRef") is None:
            raise errors.required(f"{where}.DepositLineDetail.AccountRef")
    _generic(realm, spec, obj, existing, options)


# ---------------------------------------------------------------- PurchaseOrder (REF-purchaseorder)

_PO_STATUSES = ("Open", "Closed")


def _build_purchase_order(
    realm: store.Realm, spec: EntitySpec, obj: Obj, existing: Obj | None, options: set[str]
) -> None:
    if _ref_value(obj, "VendorRef") is None:
        raise errors.required("VendorRef")
    _expense_lines(realm, obj)
    _require_account_type(realm, obj, "APAccountRef", ("Accounts Payable",))
    status = obj.setdefault("POStatus", "Open")
    if status not in _PO_STATUSES:
        raise errors.invalid_enum("POStatus", str(status))
    _addresses(realm, obj, existing, ("VendorAddr", "ShipAddr"))
    _generic(realm, spec, obj, existing, options)


# ---------------------------------------------------------------- Estimate (REF-estimate)

_ESTIMATE_STATUSES = ("Pending", "Accepted", "Closed", "Rejected")
_estimate_builder = store._BUILDERS["Estimate"]


def _build_estimate(
    realm: store.Realm, spec: EntitySpec, obj: Obj, existing: Obj | None, options: set[str]
) -> None:
    status = obj.get("TxnStatus")
    if status not in (None, "") and status not in _ESTIMATE_STATUSES:
        raise errors.invalid_enum("TxnStatus", str(status))
    for key in ("ExpirationDate", "AcceptedDate"):
        store._check_date(obj, key)
    _addresses(realm, obj, existing, ("BillAddr", "ShipAddr"))
    _estimate_builder(realm, spec, obj, existing, options)


# ---------------------------------------------------------------- Account: AcctNum (REF-account)

_account_builder = store._BUILDERS["Account"]


def _build_account(
    realm: store.Realm, spec: EntitySpec, obj: Obj, existing: Obj | None, options: set[str]
) -> None:
    # Name and AcctNum characters and lengths are in the spec (": and " in Name, ":" in AcctNum,
    # AcctNum ≤ 7 for a US company). AcctNum must also be unique among accounts (QBO's UI says "Another
    # account is already using this number"; the API's code for it is unverified, 6000 here).
    number = obj.get("AcctNum")
    if number not in (None, ""):
        wanted = str(number).strip()
        for other in realm.data.get("Account", {}).values():
            if other.get("Id") != obj.get("Id") and str(other.get("AcctNum") or "").strip() == wanted:
                raise errors.business(
                    f"Another account is already using this number: {wanted} (Account {other['Id']})",
                    "AcctNum",
                )
    _account_builder(realm, spec, obj, existing, options)


# ---------------------------------------------------------------- TaxAgency create (REF-taxagency)


def _build_tax_agency(
    realm: store.Realm, spec: EntitySpec, obj: Obj, existing: Obj | None, options: set[str]
) -> None:
    store._check_unique_named(realm, "TaxAgency", obj, "DisplayName", "tax agency")
    for key in ("TaxTrackedOnSales", "TaxTrackedOnPurchases"):
        value = obj.setdefault(key, key == "TaxTrackedOnSales")
        if not isinstance(value, bool):
            raise errors.bad_request(f"{key} must be true or false", key)


# ---------------------------------------------------------------- CompanyCurrency (REF-companycurrency)


def _build_company_currency(
    realm: store.Realm, spec: EntitySpec, obj: Obj, existing: Obj | None, options: set[str]
) -> None:
    # Only for companies with multicurrency on (REF-companycurrency); the code and wording of the
    # refusal are unverified.
    if realm.pref("CurrencyPrefs", "MultiCurrencyEnabled") is not True:
        raise errors.business("Multicurrency is not enabled for this company", "Code")
    code = str(obj.get("Code", "")).upper()
    if code not in ISO_CURRENCIES:
        raise errors.invalid_enum("Code", str(obj.get("Code")))
    home = realm.pref("CurrencyPrefs", "HomeCurrency", {})
    if isinstance(home, dict) and home.get("value") == code:
        raise errors.business(f"{code} is the home currency", "Code")
    for other in realm.data.get("CompanyCurrency", {}).values():
        if other.get("Code") == code and other.get("Id") != obj.get("Id"):
            raise errors.business(f"Currency {code} is already in the list", "Code")
    obj["Code"] = code
    obj["Name"] = ISO_CURRENCIES[code]
    obj.setdefault("Active", True)


# ---------------------------------------------------------------- CreditCardPayment (REF-creditcardpayment)


def _build_credit_card_payment(
    realm: store.Realm, spec: EntitySpec, obj: Obj, existing: Obj | None, options: set[str]
) -> None:
    # Paying down a credit card from a bank account: both refs and a positive Amount are required.
    for key in ("CreditCardAccountRef", "BankAccountRef"):
        if _ref_value(obj, key) is None:
            raise errors.required(key)
    _require_account_type(realm, obj, "CreditCardAccountRef", ("Credit Card",))
    _require_account_type(realm, obj, "BankAccountRef", ("Bank",))
    obj["Amount"] = _amount(obj, "Amount")
    store._txn_date(obj)
    obj.setdefault("CurrencyRef", dict(store.USD))


# ---------------------------------------------------------------- Attachable notes (REF-attachable)


def _build_attachable(
    realm: store.Realm, spec: EntitySpec, obj: Obj, existing: Obj | None, options: set[str]
) -> None:
    # A note (Note) or a file (FileName, uploaded through /upload); AttachableRef links it to
    # entities, each EntityRef {type, value} resolving to an existing object.
    if not obj.get("Note") and not obj.get("FileName"):
        raise errors.required("Note")
    refs = obj.get("AttachableRef", [])
    if not isinstance(refs, list):
        raise errors.bad_request("AttachableRef must be a list", "AttachableRef")
    for index, ref in enumerate(refs):
        entity_ref = ref.get("EntityRef") if isinstance(ref, dict) else None
        where = f"AttachableRef[{index}].EntityRef"
        if not isinstance(entity_ref, dict) or not entity_ref.get("type") or not entity_ref.get("value"):
            raise errors.required(where)
        target = SPECS.get(str(entity_ref["type"]))
        if target is None:
            raise errors.invalid_enum(f"{where}.type", str(entity_ref["type"]))
        if realm.get(target.name, str(entity_ref["value"])) is None:
            raise errors.invalid_reference(where, str(entity_ref["value"]))


# ---------------------------------------------------------------- TaxService (REF-taxservice)

_APPLICABLE_ON = ("Sales", "Purchase")


def _stored(realm: store.Realm, entity: str, obj: Obj) -> Obj:
    _, stamp = realm.stamp()
    out: Obj = {
        "domain": "QBO",
        "sparse": False,
        "Id": realm.next_id(SPECS[entity].id_space),
        "SyncToken": "0",
        "MetaData": {"CreateTime": stamp, "LastUpdatedTime": stamp},
    }
    out.update(obj)
    realm._store(entity, None, out)
    realm._emit(entity, out["Id"], "Create", stamp)
    return out


def tax_service_taxcode(realm: store.Realm, body: Any) -> Obj:
    """`POST /taxservice/taxcode`: a new TaxCode from existing rates (TaxRateId) or new ones
    (TaxRateName, RateValue, TaxAgencyId); answers with the ids QBO assigned. Everything is
    checked before anything is stored, so a refused request leaves no half-made rates behind."""
    if not isinstance(body, dict):
        raise errors.bad_request("Request body must be a JSON object", "")
    code_name = body.get("TaxCode")
    if not isinstance(code_name, str) or not code_name.strip():
        raise errors.required("TaxCode")
    if len(code_name) > 100:
        raise errors.too_long("TaxCode", 100, len(code_name))
    key = realm._name_key(code_name)
    if any(realm._name_key(str(c.get("Name", ""))) == key for c in realm.data.get("TaxCode", {}).values()):
        raise errors.duplicate_name("tax code")
    details = body.get("TaxRateDetails")
    if not isinstance(details, list) or not details or not all(isinstance(d, dict) for d in details):
        raise errors.required("TaxRateDetails")
    planned: list[tuple[Obj, Obj | None, str]] = []
    for detail in details:
        applicable = detail.get("TaxApplicableOn", "Sales")
        if applicable not in _APPLICABLE_ON:
            raise errors.invalid_enum("TaxRateDetails.TaxApplicableOn", str(applicable))
        rate_id = detail.get("TaxRateId")
        if rate_id not in (None, ""):
            rate = realm.get("TaxRate", str(rate_id))
            if rate is None:
                raise errors.invalid_reference("TaxRateDetails.TaxRateId", str(rate_id))
            planned.append((detail, rate, applicable))
            continue
        name = detail.get("TaxRateName")
        if not isinstance(name, str) or not name.strip():
            raise errors.required("TaxRateDetails.TaxRateName")
        if any(
            realm._name_key(str(r.get("Name", ""))) == realm._name_key(name)
            for r in realm.data["TaxRate"].values()
        ):
            raise errors.duplicate_name("tax rate")
        value = _amount(detail, "RateValue", positive=False)
        if not 0 <= value <= 100:
            raise errors.business("TaxRateDetails.RateValue must be a percentage from 0 to 100", "RateValue")
        detail = {**detail, "RateValue": value}
        agency_id = detail.get("TaxAgencyId")
        if agency_id in (None, ""):
            raise errors.required("TaxRateDetails.TaxAgencyId")
        if realm.get("TaxAgency", str(agency_id)) is None:
            raise errors.invalid_reference("TaxRateDetails.TaxAgencyId", str(agency_id))
        planned.append((detail, None, applicable))
    answer: list[Obj] = []
    lists: dict[str, list[Obj]] = {"Sales": [], "Purchase": []}
    for detail, rate, applicable in planned:
        if rate is None:
            rate = _stored(
                realm,
                "TaxRate",
                {
                    "Name": detail["TaxRateName"],
                    "Description": detail.get("TaxRateDescription") or detail["TaxRateName"],
                    "Active": True,
                    "RateValue": detail["RateValue"],
                    "AgencyRef": {"value": str(detail["TaxAgencyId"])},
                    "SpecialTaxType": "NONE",
                    "DisplayType": "ReadOnly",
                },
            )
        lists[applicable].append(
            {
                "TaxRateRef": {"value": rate["Id"], "name": rate.get("Name")},
                "TaxTypeApplicable": "TaxOnAmount",
                "TaxOrder": 0,
            }
        )
        answer.append(
            {
                "TaxRateName": rate.get("Name"),
                "TaxRateId": rate["Id"],
                "RateValue": rate.get("RateValue"),
                "TaxAgencyId": (rate.get("AgencyRef") or {}).get("value"),
                "TaxApplicableOn": applicable,
            }
        )
    code = _stored(
        realm,
        "TaxCode",
        {
            "Name": code_name,
            "Description": code_name,
            "Active": True,
            "Taxable": True,
            "TaxGroup": len(planned) > 1,
            "SalesTaxRateList": {"TaxRateDetail": lists["Sales"]},
            "PurchaseTaxRateList": {"TaxRateDetail": lists["Purchase"]},
        },
    )
    return {"TaxCode": code_name, "TaxCodeId": code["Id"], "TaxRateDetails": answer}


# ---------------------------------------------------------------- upload (REF-attachable "Upload")

# Intuit's limit for one attachment is 100 MB (REF-attachable); the request itself is also bound by
# the sandbox's max_body_bytes.
MAX_UPLOAD_BYTES = 100 * 1024 * 1024


def upload(realm: store.Realm, raw: bytes, content_type: str) -> Obj:
    """`POST /upload` (multipart/form-data): parts `file_metadata_NN` (an Attachable as JSON) and
    `file_content_NN` (the file) pair up by their suffix; each pair becomes an Attachable with
    FileName, ContentType, Size and a download URI. Answers `AttachableResponse`, one entry per
    file: the Attachable, or a Fault for that file alone (as QBO answers uploads)."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise errors.bad_request("upload needs a multipart/form-data body", "Content-Type")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw
    )
    if not message.is_multipart():
        raise errors.bad_request("upload body is not valid multipart/form-data", "Content-Type")
    metadata: dict[str, Any] = {}
    files: dict[str, tuple[str, str, bytes]] = {}
    for part in message.iter_parts():
        name = str(part.get_param("name", header="content-disposition") or "")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if name.startswith("file_metadata_"):
            try:
                meta = json.loads(data)
            except (ValueError, RecursionError):
                raise errors.bad_request(f"{name} is not JSON", name) from None
            check_json_shape(meta)
            metadata[name.removeprefix("file_metadata_")] = meta
        elif name.startswith("file_content_"):
            files[name.removeprefix("file_content_")] = (
                str(part.get_filename() or ""),
                part.get_content_type(),
                data,
            )
    if not files:
        raise errors.required("file_content_01")
    responses: list[Obj] = []
    for suffix, (filename, ctype, data) in sorted(files.items()):
        meta = metadata.get(suffix, {})
        try:
            if not isinstance(meta, dict):
                raise errors.bad_request(
                    f"file_metadata_{suffix} must be a JSON object", f"file_metadata_{suffix}"
                )
            if len(data) > MAX_UPLOAD_BYTES:
                raise errors.business(f"{filename or 'the file'} is larger than 100 MB", "FileName")
            body = {
                **meta,
                "FileName": meta.get("FileName") or filename,
                "ContentType": meta.get("ContentType") or ctype,
            }
            if not body["FileName"]:
                raise errors.required("FileName")
            if has_surrogate(str(body["FileName"])) or has_surrogate(str(body["ContentType"])):
                # Header bytes that are not UTF-8 come out of the email parser as lone surrogates.
                raise errors.bad_request("FileName and ContentType must be UTF-8 text", "FileName")
            created = realm.create("Attachable", body)
            realm.data["Attachable"][created["Id"]]["Size"] = len(data)
            created["Size"] = len(data)
            uri = f"/v3/company/{realm.realm_id}/download/{created['Id']}"
            realm.data["Attachable"][created["Id"]]["FileAccessUri"] = uri
            created["FileAccessUri"] = uri
            responses.append({"Attachable": created})
        except errors.QBOError as err:
            responses.append({"Fault": err.fault()})
    return {"AttachableResponse": responses}


def install() -> None:
    """Register the specs and builders; runs once, when store imports this module at its end."""
    _register(
        EntitySpec(
            "Bill",
            TRANSACTION,
            "txn",
            max_lengths={"DocNumber": 21, "PrivateNote": 4000},
            refs={
                "VendorRef": ("Vendor",),
                "APAccountRef": ("Account",),
                "SalesTermRef": ("Term",),
                "DepartmentRef": ("Department",),
                "Line[].AccountBasedExpenseLineDetail.AccountRef": ("Account",),
                "Line[].AccountBasedExpenseLineDetail.CustomerRef": ("Customer",),
                "Line[].AccountBasedExpenseLineDetail.ClassRef": ("Class",),
                "Line[].ItemBasedExpenseLineDetail.ItemRef": ("Item",),
            },
            deletable=True,
        ),
        _build_bill,
    )
    _register(
        EntitySpec(
            "Deposit",
            TRANSACTION,
            "txn",
            max_lengths={"DocNumber": 21, "PrivateNote": 4000},
            refs={
                "DepositToAccountRef": ("Account",),
                "DepartmentRef": ("Department",),
                "Line[].DepositLineDetail.AccountRef": ("Account",),
                "Line[].DepositLineDetail.Entity": ("Customer", "Vendor", "Employee"),
                "Line[].DepositLineDetail.PaymentMethodRef": ("PaymentMethod",),
                "Line[].DepositLineDetail.ClassRef": ("Class",),
            },
            deletable=True,
        ),
        _build_deposit,
    )
    _register(
        EntitySpec(
            "PurchaseOrder",
            TRANSACTION,
            "txn",
            max_lengths={"DocNumber": 21, "PrivateNote": 4000, "Memo": 4000},
            refs={
                "VendorRef": ("Vendor",),
                "APAccountRef": ("Account",),
                "Line[].AccountBasedExpenseLineDetail.AccountRef": ("Account",),
                "Line[].ItemBasedExpenseLineDetail.ItemRef": ("Item",),
                "Line[].ItemBasedExpenseLineDetail.CustomerRef": ("Customer",),
            },
            deletable=True,
        ),
        _build_purchase_order,
    )
    store._BUILDERS["Estimate"] = _build_estimate
    store._BUILDERS["Account"] = _build_account
    _register(
        EntitySpec(
            "TaxAgency",
            NAME_LIST,
            "TaxAgency",
            "DisplayName",
            max_lengths={"DisplayName": 100},
            required=("DisplayName",),
            cdc=False,
        ),
        _build_tax_agency,
    )
    _register(
        EntitySpec(
            "CompanyCurrency", NAME_LIST, "CompanyCurrency", "Code", required=("Code",), has_active=True
        ),
        _build_company_currency,
    )
    _register(
        EntitySpec(
            "CreditCardPayment",
            TRANSACTION,
            "txn",
            max_lengths={"PrivateNote": 4000, "Memo": 4000},
            refs={
                "CreditCardAccountRef": ("Account",),
                "BankAccountRef": ("Account",),
                "VendorRef": ("Vendor",),
            },
            deletable=True,
        ),
        _build_credit_card_payment,
    )
    _register(
        EntitySpec(
            "Attachable",
            TRANSACTION,
            "Attachable",
            max_lengths={"Note": 4000, "FileName": 1000},
            deletable=True,
        ),
        _build_attachable,
    )


install()

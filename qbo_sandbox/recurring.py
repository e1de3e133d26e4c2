"""RecurringTransaction and ExchangeRate (issue 15 item 2), entities whose wire shape differs from the rest.

RecurringTransaction (REF-recurringtransaction): a template wrapping one transaction,
`{"Invoice": {..., "RecurringInfo": {...}}}` in and out, for create, read, update, delete and query.
Stored flat (the template plus `TEMPLATE_KEY` naming its type) so the query engine can filter and
sort it; `wire()` wraps it again. The sandbox keeps templates only: it never runs a schedule.

ExchangeRate (REF-exchangerate): no Id; one rate per (SourceCurrencyCode, AsOfDate), read with
`GET /exchangerate?sourcecurrencycode=EUR&asofdate=YYYY-MM-DD`, set with `POST /exchangerate`,
queried like any entity. Only for multicurrency companies, like CompanyCurrency.

Budget is registered here too: read-only and empty (no seed has budgets).

What Intuit's reference leaves open, and the sandbox's choice, is listed in docs/sandbox.md.
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

from qbo_sandbox import clock, errors, more_entities, query, store
from qbo_sandbox.entities import BY_PATH, NAME_LIST, READ_ONLY, SPECS, TRANSACTION, EntitySpec

Obj = dict[str, Any]

# The transaction types a template may wrap (REF-recurringtransaction).
TEMPLATE_TYPES = (
    "Bill",
    "CreditMemo",
    "Deposit",
    "Estimate",
    "Invoice",
    "JournalEntry",
    "Purchase",
    "PurchaseOrder",
    "RefundReceipt",
    "SalesReceipt",
    "Transfer",
    "VendorCredit",
)
# Fields each template must carry (the wrapped type's own required fields).
_TEMPLATE_REQUIRED: dict[str, tuple[str, ...]] = {
    "Bill": ("VendorRef", "Line"),
    "CreditMemo": ("CustomerRef", "Line"),
    "Deposit": ("DepositToAccountRef", "Line"),
    "Estimate": ("CustomerRef", "Line"),
    "Invoice": ("CustomerRef", "Line"),
    "JournalEntry": ("Line",),
    "Purchase": ("AccountRef", "PaymentType", "Line"),
    "PurchaseOrder": ("VendorRef", "Line"),
    "RefundReceipt": ("Line",),
    "SalesReceipt": ("Line",),
    "Transfer": ("FromAccountRef", "ToAccountRef", "Amount"),
    "VendorCredit": ("VendorRef", "Line"),
}
RECUR_TYPES = ("Automated", "Reminded", "UnScheduled")
INTERVAL_TYPES = ("Daily", "Weekly", "Monthly", "Yearly")
TEMPLATE_KEY = "RecurDataType"
_COMPUTED = ("Id", "SyncToken", "MetaData", "domain", "sparse", TEMPLATE_KEY)


def wire(obj: Obj) -> Obj:
    """A stored template as QBO sends it: wrapped in its transaction type."""
    return {obj[TEMPLATE_KEY]: {k: v for k, v in obj.items() if k != TEMPLATE_KEY}}


def _unwrap(body: Any) -> tuple[str, Obj]:
    if not isinstance(body, dict):
        raise errors.bad_request("Request body must be a JSON object", "")
    kinds = [k for k in body if k in TEMPLATE_TYPES]
    others = [k for k in body if k not in TEMPLATE_TYPES and k not in ("sparse", "domain")]
    if len(kinds) != 1 or others:
        named = ", ".join(sorted(set(body) - {"sparse", "domain"})) or "nothing"
        raise errors.bad_request(
            f"A RecurringTransaction wraps exactly one of {', '.join(TEMPLATE_TYPES)}; got {named}",
            "RecurringTransaction",
        )
    inner = body[kinds[0]]
    if not isinstance(inner, dict):
        raise errors.bad_request(f"{kinds[0]} must be an object", kinds[0])
    return kinds[0], copy.deepcopy(inner)


def _whole(value: Any, element: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
        raise errors.bad_request(f"{element} must be a whole number", element)
    number = int(value)
    if number < minimum:
        raise errors.bad_request(f"{element} must be at least {minimum}", element)
    return number


def _date(value: Any, element: str) -> str:
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return date.fromisoformat(value[:10]).isoformat()
    except ValueError:
        raise errors.bad_request(f"Invalid date {value} for {element}", element) from None


def _check_recurring_info(realm: store.Realm, obj: Obj) -> None:
    info = obj.get("RecurringInfo")
    if not isinstance(info, dict):
        raise errors.required("RecurringInfo")
    name = info.get("Name")
    if not isinstance(name, str) or not name.strip():
        raise errors.required("RecurringInfo.Name")
    if len(name) > 100:
        raise errors.too_long("RecurringInfo.Name", 100, len(name))
    for other in realm.data["RecurringTransaction"].values():
        other_name = str(other.get("RecurringInfo", {}).get("Name", ""))
        if other_name.strip().casefold() == name.strip().casefold() and other["Id"] != obj.get("Id"):
            raise errors.business(f"A recurring template named {name.strip()} already exists", "Name")
    recur_type = info.setdefault("RecurType", "Automated")
    if recur_type not in RECUR_TYPES:
        raise errors.invalid_enum("RecurringInfo.RecurType", str(recur_type))
    active = info.setdefault("Active", True)
    if not isinstance(active, bool):
        raise errors.bad_request("RecurringInfo.Active must be true or false", "RecurringInfo.Active")
    schedule = info.get("ScheduleInfo")
    if schedule is None and recur_type == "UnScheduled":
        return
    if not isinstance(schedule, dict):
        raise errors.required("RecurringInfo.ScheduleInfo")
    interval = schedule.get("IntervalType")
    if interval in (None, ""):
        raise errors.required("ScheduleInfo.IntervalType")
    if interval not in INTERVAL_TYPES:
        raise errors.invalid_enum("ScheduleInfo.IntervalType", str(interval))
    schedule["NumInterval"] = _whole(schedule.get("NumInterval", 1), "ScheduleInfo.NumInterval", 1)
    for key, minimum in (("MaxOccurrences", 1), ("DaysBefore", 0), ("RemindDays", 0), ("DayOfMonth", 1)):
        if schedule.get(key) not in (None, ""):
            schedule[key] = _whole(schedule[key], f"ScheduleInfo.{key}", minimum)
    if isinstance(schedule.get("DayOfMonth"), int) and schedule["DayOfMonth"] > 31:
        raise errors.bad_request("ScheduleInfo.DayOfMonth must be 1 to 31", "ScheduleInfo.DayOfMonth")
    start = _date(schedule.get("StartDate") or clock.today(), "ScheduleInfo.StartDate")
    schedule["StartDate"] = start
    if schedule.get("EndDate") not in (None, ""):
        end = _date(schedule["EndDate"], "ScheduleInfo.EndDate")
        if end < start:
            raise errors.business("The end date of a schedule can't be before its start date", "EndDate")
        schedule["EndDate"] = end
    # The sandbox does not run schedules: the next date is the start date until a client changes it.
    schedule.setdefault("NextDate", start)


def _build(realm: store.Realm, kind: str, obj: Obj) -> None:
    spec = SPECS[kind]
    for key in _TEMPLATE_REQUIRED[kind]:
        if obj.get(key) in (None, "", []):
            raise errors.required(key)
    realm._check_strings(spec, obj)
    realm._check_refs(spec, obj)
    _check_recurring_info(realm, obj)
    lines = obj.get("Line")
    if isinstance(lines, list) and kind != "JournalEntry":
        total = 0.0
        for line in lines:
            if line.get("DetailType") in ("SubTotalLineDetail", "DiscountLineDetail"):
                continue
            amount = line.get("Amount", 0)
            if isinstance(amount, bool) or not isinstance(amount, int | float):
                raise errors.bad_request("Line.Amount must be a number", "Line.Amount")
            total += amount
        obj["TotalAmt"] = round(total, 2)


def _existing(realm: store.Realm, kind: str, inner: Obj) -> Obj:
    obj_id = inner.get("Id")
    if obj_id in (None, ""):
        raise errors.required("Id")
    existing = realm.get("RecurringTransaction", str(obj_id))
    if existing is None:
        raise errors.not_found(deleted=True)
    token = inner.get("SyncToken")
    if token in (None, ""):
        raise errors.required("SyncToken")
    if str(token) != existing.get("SyncToken", "0"):
        raise errors.stale()
    if existing[TEMPLATE_KEY] != kind:
        raise errors.business(f"Template {obj_id} is a {existing[TEMPLATE_KEY]}, not a {kind}", kind)
    return existing


def recurring_transaction(realm: store.Realm, op: str, ctx_rest: list[str], body: Any) -> Obj:
    """One RecurringTransaction call; returns the reply's `RecurringTransaction` object."""
    table = realm.data["RecurringTransaction"]
    if op == "read":
        if len(ctx_rest) < 2:
            raise errors.unsupported("GET /recurringtransaction without an Id")
        found = table.get(ctx_rest[1])
        if found is None:
            raise errors.not_found(deleted=True)
        return wire(found)
    kind, inner = _unwrap(body)
    if op == "create" and inner.get("Id") not in (None, ""):
        op = "update"  # the Id is inside the wrapper, where classify() does not look
    _, stamp = realm.stamp()
    if op == "delete":
        gone = _existing(realm, kind, inner)
        del table[gone["Id"]]
        return {kind: {"status": "Deleted", "domain": "QBO", "Id": gone["Id"]}}
    if op not in ("create", "update"):
        raise errors.unsupported(f"{op} for RecurringTransaction")
    existing = _existing(realm, kind, inner) if op == "update" else None
    if existing is not None and inner.get("sparse") in (True, "true", "True"):
        merged = {k: copy.deepcopy(v) for k, v in existing.items() if k not in _COMPUTED}
        merged.update({k: v for k, v in inner.items() if k not in _COMPUTED})
        inner = merged
    obj = {k: v for k, v in inner.items() if k not in _COMPUTED}
    obj["Id"] = existing["Id"] if existing else realm.next_id(SPECS["RecurringTransaction"].id_space)
    _build(realm, kind, obj)
    out: Obj = {
        "domain": "QBO",
        "sparse": False,
        "Id": obj["Id"],
        "SyncToken": str(int(existing["SyncToken"]) + 1) if existing else "0",
        "MetaData": (
            {**existing.get("MetaData", {}), "LastUpdatedTime": stamp}
            if existing
            else {"CreateTime": stamp, "LastUpdatedTime": stamp}
        ),
    }
    out.update({k: v for k, v in obj.items() if k not in out})
    out[TEMPLATE_KEY] = kind
    table[out["Id"]] = out
    return wire(out)


# ---------------------------------------------------------------- ExchangeRate (REF-exchangerate)


def _multicurrency(realm: store.Realm) -> str:
    """The home currency code; refuses companies without multicurrency (as for CompanyCurrency)."""
    if realm.pref("CurrencyPrefs", "MultiCurrencyEnabled") is not True:
        raise errors.business("Multicurrency is not enabled for this company", "SourceCurrencyCode")
    home = realm.pref("CurrencyPrefs", "HomeCurrency", {})
    return str(home.get("value", "USD")) if isinstance(home, dict) else "USD"


def _source_code(raw: Any, home: str) -> str:
    if raw in (None, ""):
        raise errors.required("SourceCurrencyCode")
    code = str(raw).upper()
    if code not in more_entities.ISO_CURRENCIES:
        raise errors.invalid_enum("SourceCurrencyCode", str(raw))
    if code == home:
        raise errors.business(f"{code} is the home currency: its rate is always 1", "SourceCurrencyCode")
    return code


def _rate_on(realm: store.Realm, code: str, as_of: str) -> Obj | None:
    """The rate in force on `as_of`: set for that day, else the latest set before it."""
    best: Obj | None = None
    for rate in realm.data["ExchangeRate"].values():
        in_force = rate["SourceCurrencyCode"] == code and rate["AsOfDate"] <= as_of
        if in_force and (best is None or rate["AsOfDate"] > best["AsOfDate"]):
            best = rate
    return best


def exchange_rate(realm: store.Realm, op: str, params: dict[str, str], body: Any) -> Obj:
    """`GET /exchangerate?sourcecurrencycode=&asofdate=` or `POST /exchangerate`; the reply's object."""
    home = _multicurrency(realm)
    if op == "read":
        code = _source_code(params.get("sourcecurrencycode"), home)
        as_of = _date(params.get("asofdate") or clock.today(), "asofdate")
        found = _rate_on(realm, code, as_of)
        if found is None:
            # QBO fills rates from a market feed; the sandbox has none, only the rates clients set.
            raise errors.not_found(deleted=False)
        return {**found, "AsOfDate": as_of} if found["AsOfDate"] != as_of else found
    if op not in ("create", "update") or not isinstance(body, dict):
        raise errors.unsupported(f"{op} for ExchangeRate")
    code = _source_code(body.get("SourceCurrencyCode"), home)
    target = str(body.get("TargetCurrencyCode") or home).upper()
    if target != home:
        raise errors.business(f"TargetCurrencyCode must be the home currency {home}", "TargetCurrencyCode")
    as_of = _date(body.get("AsOfDate") or clock.today(), "AsOfDate")
    rate = body.get("Rate")
    if rate in (None, ""):
        raise errors.required("Rate")
    if isinstance(rate, bool) or not isinstance(rate, int | float | str):
        raise errors.bad_request("Rate must be a number", "Rate")
    try:
        value = float(rate)
    except ValueError:
        raise errors.bad_request("Rate must be a number", "Rate") from None
    if not value > 0 or value >= 1e9:
        raise errors.bad_request("Rate must be a positive number", "Rate")
    key = f"{code}:{as_of}"
    table = realm.data["ExchangeRate"]
    existing = table.get(key)
    token = body.get("SyncToken")
    if existing is not None and token not in (None, "") and str(token) != existing["SyncToken"]:
        raise errors.stale()
    _, stamp = realm.stamp()
    out: Obj = {
        "SourceCurrencyCode": code,
        "TargetCurrencyCode": home,
        "Rate": value,
        "AsOfDate": as_of,
        "domain": "QBO",
        "sparse": False,
        "SyncToken": str(int(existing["SyncToken"]) + 1) if existing else "0",
        "MetaData": {"LastUpdatedTime": stamp},
    }
    table[key] = out
    return out


def handle(
    realm: store.Realm, entity: str, op: str, ctx_rest: list[str], params: dict[str, str], body: Any
) -> Obj:
    if entity == "RecurringTransaction":
        return recurring_transaction(realm, op, ctx_rest, body)
    return exchange_rate(realm, op, params, body)


HANDLED = ("RecurringTransaction", "ExchangeRate")


def install() -> None:
    for spec in (
        # Templates share the transactions' Id sequence (unverified), are not in CDC or webhooks.
        EntitySpec("RecurringTransaction", TRANSACTION, "txn", cdc=False),
        # Ordered by currency code, then by date (insertion order) when no ORDERBY is given.
        EntitySpec("ExchangeRate", NAME_LIST, "ExchangeRate", "SourceCurrencyCode", cdc=False),
        # Budget (REF-budget): queryable, not writable through the API; no seed has budgets, so a
        # query answers an empty QueryResponse (node-quickbooks' findBudgets test).
        EntitySpec("Budget", READ_ONLY, "Budget", "Name", creatable=False, cdc=False, has_active=True),
    ):
        SPECS[spec.name] = spec
        BY_PATH[spec.path] = spec
    query.SHAPERS["RecurringTransaction"] = wire


install()

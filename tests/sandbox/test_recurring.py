"""RecurringTransaction and ExchangeRate (issue 15 item 2; qbo_sandbox/recurring.py; docs/sandbox.md)."""

from __future__ import annotations

from typing import Any

from .conftest import Api, customer_body, invoice_body


def recurring_invoice(customer_id: str, name: str, amount: float = 120.0, **info: Any) -> dict[str, Any]:
    body = invoice_body(customer_id, amount)
    body["RecurringInfo"] = {
        "Name": name,
        "RecurType": "Automated",
        "Active": True,
        "ScheduleInfo": {
            "IntervalType": "Monthly",
            "NumInterval": 1,
            "DayOfMonth": 1,
            "StartDate": "2027-01-01",
        },
        **info,
    }
    return {"Invoice": body}


def test_recurring_invoice_crud_and_query(sample: Api) -> None:
    cust = sample.create("Customer", customer_body("Recurring Co"))
    invoices_before = sample.query("select count(*) from Invoice")["totalCount"]
    balance_before = sample.read("Customer", cust["Id"])["Balance"]

    made = sample.create("RecurringTransaction", recurring_invoice(cust["Id"], "Monthly retainer"))
    template = made["Invoice"]
    assert set(made) == {"Invoice"}
    assert template["SyncToken"] == "0" and template["TotalAmt"] == 120.0
    assert template["CustomerRef"] == {"value": cust["Id"], "name": "Recurring Co"}
    assert template["RecurringInfo"]["ScheduleInfo"]["NextDate"] == "2027-01-01"
    assert "RecurDataType" not in template

    # A template is not a transaction: no invoice appears and no balance moves.
    assert sample.query("select count(*) from Invoice")["totalCount"] == invoices_before
    assert sample.read("Customer", cust["Id"])["Balance"] == balance_before

    read = sample.get(f"/recurringtransaction/{template['Id']}").json()["RecurringTransaction"]
    assert read == made

    found = sample.query("select * from RecurringTransaction")
    assert found["RecurringTransaction"] == [made]
    assert sample.query("select count(*) from RecurringTransaction")["totalCount"] == 1
    named = sample.query("select * from RecurringTransaction where RecurringInfo.Name = 'Monthly retainer'")
    assert named["RecurringTransaction"][0]["Invoice"]["Id"] == template["Id"]

    template["RecurringInfo"]["ScheduleInfo"]["IntervalType"] = "Weekly"
    resp = sample.post("/recurringtransaction", {"Invoice": template})
    updated = resp.json()["RecurringTransaction"]["Invoice"]
    assert (
        updated["SyncToken"] == "1" and updated["RecurringInfo"]["ScheduleInfo"]["IntervalType"] == "Weekly"
    )
    stale = sample.post("/recurringtransaction", {"Invoice": template})
    assert sample.fault(stale)["code"] == "5010"

    resp = sample.post(
        "/recurringtransaction",
        {"Invoice": {"Id": updated["Id"], "SyncToken": "1"}},
        params={"operation": "delete"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["RecurringTransaction"]["Invoice"]["status"] == "Deleted"
    assert sample.fault(sample.get(f"/recurringtransaction/{updated['Id']}"))["code"] == "610"
    assert sample.query("select * from RecurringTransaction") == {}


def test_recurring_transaction_rules(sample: Api) -> None:
    cust = sample.create("Customer", customer_body("Rules Co"))
    post = sample.post
    # Exactly one transaction type inside.
    assert sample.fault(post("/recurringtransaction", {"Payment": {}}))["code"] == "2010"
    two = {**recurring_invoice(cust["Id"], "A"), "Bill": {}}
    assert sample.fault(post("/recurringtransaction", two))["code"] == "2010"
    # RecurringInfo and its name are required; names are unique.
    bare = {"Invoice": invoice_body(cust["Id"])}
    assert sample.fault(post("/recurringtransaction", bare))["element"] == "RecurringInfo"
    nameless = recurring_invoice(cust["Id"], "")
    assert sample.fault(post("/recurringtransaction", nameless))["element"] == "RecurringInfo.Name"
    sample.create("RecurringTransaction", recurring_invoice(cust["Id"], "Twice"))
    assert (
        sample.fault(post("/recurringtransaction", recurring_invoice(cust["Id"], " twice ")))["code"]
        == "6000"
    )
    # Enumerations and the schedule.
    bad_type = recurring_invoice(cust["Id"], "B", RecurType="Sometimes")
    assert sample.fault(post("/recurringtransaction", bad_type))["code"] == "2170"
    bad_interval = recurring_invoice(cust["Id"], "C", ScheduleInfo={"IntervalType": "Hourly"})
    assert sample.fault(post("/recurringtransaction", bad_interval))["code"] == "2170"
    backwards = recurring_invoice(
        cust["Id"],
        "D",
        ScheduleInfo={"IntervalType": "Daily", "StartDate": "2027-02-01", "EndDate": "2027-01-01"},
    )
    assert sample.fault(post("/recurringtransaction", backwards))["code"] == "6000"
    no_schedule = recurring_invoice(cust["Id"], "E", ScheduleInfo=None)
    assert sample.fault(post("/recurringtransaction", no_schedule))["element"] == "RecurringInfo.ScheduleInfo"
    unscheduled = sample.create(
        "RecurringTransaction", recurring_invoice(cust["Id"], "E", RecurType="UnScheduled", ScheduleInfo=None)
    )
    assert unscheduled["Invoice"]["RecurringInfo"]["RecurType"] == "UnScheduled"
    # The wrapped transaction's own rules: required fields and references.
    no_customer = recurring_invoice(cust["Id"], "F")
    del no_customer["Invoice"]["CustomerRef"]
    assert sample.fault(post("/recurringtransaction", no_customer))["element"] == "CustomerRef"
    ghost = recurring_invoice("999999", "G")
    assert sample.fault(post("/recurringtransaction", ghost))["code"] == "2500"
    # Nothing refused was stored.
    names = sorted(
        r["Invoice"]["RecurringInfo"]["Name"]
        for r in sample.query("select * from RecurringTransaction")["RecurringTransaction"]
    )
    assert names == ["E", "Twice"]


def test_recurring_bill_template(sample: Api) -> None:
    vendor = sample.create("Vendor", {"DisplayName": "Rent Landlord"})
    bill = {
        "VendorRef": {"value": vendor["Id"]},
        "Line": [
            {
                "DetailType": "AccountBasedExpenseLineDetail",
                "Amount": 1500,
                "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "7"}},
            }
        ],
        "RecurringInfo": {
            "Name": "Rent",
            "RecurType": "Reminded",
            "ScheduleInfo": {"IntervalType": "Monthly", "DayOfMonth": 1, "RemindDays": 5},
        },
    }
    made = sample.create("RecurringTransaction", {"Bill": bill})["Bill"]
    assert made["TotalAmt"] == 1500 and made["RecurringInfo"]["Active"] is True
    assert made["RecurringInfo"]["ScheduleInfo"]["NumInterval"] == 1
    assert sample.query(f"select * from Bill where VendorRef = '{vendor['Id']}'") == {}


def _multicurrency(api: Api) -> None:
    prefs = api.get("/preferences").json()["Preferences"]
    prefs["CurrencyPrefs"]["MultiCurrencyEnabled"] = True
    assert api.post("/preferences", prefs).status_code == 200


def test_exchange_rate_set_read_query(api: Api) -> None:
    refused = api.fault(api.post("/exchangerate", {"SourceCurrencyCode": "EUR", "Rate": 1.1}))
    assert refused["code"] == "6000" and "Multicurrency" in refused["Detail"]
    _multicurrency(api)
    params = {"sourcecurrencycode": "EUR", "asofdate": "2026-11-02"}
    assert api.fault(api.get("/exchangerate", params=params))["code"] == "610"

    set_rate = api.post(
        "/exchangerate", {"SourceCurrencyCode": "EUR", "Rate": 1.08, "AsOfDate": "2026-11-02"}
    )
    assert set_rate.status_code == 200, set_rate.text
    rate = set_rate.json()["ExchangeRate"]
    assert rate["SourceCurrencyCode"] == "EUR" and rate["TargetCurrencyCode"] == "USD"
    assert rate["Rate"] == 1.08 and rate["AsOfDate"] == "2026-11-02" and rate["SyncToken"] == "0"

    read = api.get("/exchangerate", params=params).json()["ExchangeRate"]
    assert read == rate
    # A later day without its own rate gets the last rate set before it.
    later = api.get("/exchangerate", params={"sourcecurrencycode": "eur", "asofdate": "2026-11-09"})
    assert later.json()["ExchangeRate"]["Rate"] == 1.08
    assert later.json()["ExchangeRate"]["AsOfDate"] == "2026-11-09"
    # An earlier day has none.
    before = api.get("/exchangerate", params={"sourcecurrencycode": "EUR", "asofdate": "2026-11-01"})
    assert api.fault(before)["code"] == "610"

    changed = api.post("/exchangerate", {**rate, "Rate": 1.09}).json()["ExchangeRate"]
    assert changed["Rate"] == 1.09 and changed["SyncToken"] == "1"
    assert api.fault(api.post("/exchangerate", {**rate, "Rate": 1.2}))["code"] == "5010"
    api.post("/exchangerate", {"SourceCurrencyCode": "GBP", "Rate": 1.27, "AsOfDate": "2026-11-02"})

    rows = api.query("select * from ExchangeRate where AsOfDate = '2026-11-02'")["ExchangeRate"]
    assert [(r["SourceCurrencyCode"], r["Rate"]) for r in rows] == [("EUR", 1.09), ("GBP", 1.27)]
    only = api.query("select * from ExchangeRate where SourceCurrencyCode = 'GBP'")["ExchangeRate"]
    assert [r["Rate"] for r in only] == [1.27]


def test_exchange_rate_rules(api: Api) -> None:
    _multicurrency(api)
    assert api.fault(api.post("/exchangerate", {"Rate": 1.1}))["element"] == "SourceCurrencyCode"
    assert api.fault(api.post("/exchangerate", {"SourceCurrencyCode": "XXX", "Rate": 1.1}))["code"] == "2170"
    assert api.fault(api.post("/exchangerate", {"SourceCurrencyCode": "USD", "Rate": 1}))["code"] == "6000"
    assert api.fault(api.post("/exchangerate", {"SourceCurrencyCode": "EUR"}))["element"] == "Rate"
    for bad in (0, -1, "abc", True):
        assert (
            api.fault(api.post("/exchangerate", {"SourceCurrencyCode": "EUR", "Rate": bad}))["element"]
            == "Rate"
        )
    wrong_target = {"SourceCurrencyCode": "EUR", "Rate": 1.1, "TargetCurrencyCode": "GBP"}
    assert api.fault(api.post("/exchangerate", wrong_target))["element"] == "TargetCurrencyCode"
    bad_date = {"SourceCurrencyCode": "EUR", "Rate": 1.1, "AsOfDate": "yesterday"}
    assert api.fault(api.post("/exchangerate", bad_date))["element"] == "AsOfDate"
    assert api.fault(api.get("/exchangerate"))["element"] == "SourceCurrencyCode"
    assert api.query("select * from ExchangeRate") == {}


def test_budget_is_queryable_and_read_only(sample: Api) -> None:
    assert sample.query("select * from Budget") == {}
    assert sample.query("select count(*) from Budget") == {"totalCount": 0}
    assert sample.fault(sample.post("/budget", {"Name": "2027"}))["code"] == "500"
    assert sample.fault(sample.get("/budget/1"))["code"] == "610"

"""qbo-api.md §9.3 (CDC) and the sample-company seed (data README)."""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta

from qbo_sandbox import clock

from .conftest import Api, customer_body, invoice_body


def _cdc(api: Api, entities: str, since: str):
    return api.get("/cdc", params={"entities": entities, "changedSince": since})


def test_cdc_returns_changes_and_tombstones(api: Api) -> None:
    since = clock.meta_stamp(clock.now() - timedelta(seconds=2))
    cust = api.create("Customer", customer_body("Changed"))
    keep = api.create("Invoice", invoice_body(cust["Id"]))
    gone = api.create("Invoice", invoice_body(cust["Id"]))
    api.post("/invoice", {"Id": gone["Id"], "SyncToken": "0"}, params={"operation": "delete"})
    resp = _cdc(api, "Customer,Invoice,Payment", since)
    assert resp.status_code == 200
    data = resp.json()
    assert set(data) == {"CDCResponse", "time"}
    assert clock.parse_stamp(data["time"]) is not None
    (block,) = data["CDCResponse"]
    # One QueryResponse per requested entity; Payment had no changes: {} (qbo-api.md §9.4).
    customers, invoices_group, payments = block["QueryResponse"]
    assert payments == {}
    assert [c["Id"] for c in customers["Customer"]] == [cust["Id"]]
    assert (customers["totalCount"], customers["startPosition"], customers["maxResults"]) == (1, 1, 1)
    invoices = {i["Id"]: i for i in invoices_group["Invoice"]}
    assert invoices[keep["Id"]]["TotalAmt"] == 100.0  # full payload, not a delta
    tomb = invoices[gone["Id"]]
    assert tomb == {
        "Id": gone["Id"],
        "status": "Deleted",
        "domain": "QBO",
        "MetaData": {"LastUpdatedTime": tomb["MetaData"]["LastUpdatedTime"]},
    }
    assert clock.parse_stamp(tomb["MetaData"]["LastUpdatedTime"]) >= clock.parse_stamp(since)
    assert (invoices_group["totalCount"], invoices_group["maxResults"]) == (2, 2)


def test_cdc_answers_each_entity_in_the_order_asked(api: Api) -> None:
    since = clock.meta_stamp(clock.now() - timedelta(seconds=2))
    cust = api.create("Customer", customer_body("Ordered"))
    data = _cdc(api, "Invoice,customer,Payment,Customer", since).json()
    # Names are matched in any case and asked once; unchanged Invoice and Payment are {}.
    assert data["CDCResponse"] == [
        {
            "QueryResponse": [
                {},
                {"Customer": [cust], "startPosition": 1, "maxResults": 1, "totalCount": 1},
                {},
            ]
        }
    ]


def test_cdc_includes_deactivated_names(api: Api) -> None:
    cust = api.create("Customer", customer_body("Deactivated"))
    since = cust["MetaData"]["LastUpdatedTime"]
    api.create("Customer", {"Id": cust["Id"], "SyncToken": "0", "sparse": True, "Active": False})
    got = _cdc(api, "Customer", since).json()["CDCResponse"][0]["QueryResponse"][0]["Customer"]
    assert got[0]["Active"] is False


def test_cdc_reports_preferences_payment_methods_classes_and_departments(api: Api) -> None:
    """The lists the app keeps between runs (practice/quickbooks/sync/realm_facts.py): CDC is
    supported for all but JournalCode, TaxAgency, TimeActivity, TaxCode and TaxRate (§9.3)."""
    time.sleep(1.1)  # past the second the sample company was seeded in (whole-second stamps)
    since = clock.meta_stamp(clock.now())
    entities = "Preferences,PaymentMethod,Class,Department"
    assert _cdc(api, entities, since).json()["CDCResponse"] == [{"QueryResponse": [{}, {}, {}, {}]}]
    prefs = api.get("/preferences").json()["Preferences"]
    sales = {**prefs["SalesFormsPrefs"], "CustomTxnNumbers": True}
    api.create("Preferences", {"Id": prefs["Id"], "SyncToken": prefs["SyncToken"], "SalesFormsPrefs": sales})
    method = api.create("PaymentMethod", {"Name": "Wire"})
    klass = api.create("Class", {"Name": "Audit"})
    department = api.create("Department", {"Name": "Harbor Office"})
    (block,) = _cdc(api, entities, since).json()["CDCResponse"]
    got = {
        name: objs
        for group in block["QueryResponse"]
        for name, objs in group.items()
        if isinstance(objs, list)
    }
    assert [p["SalesFormsPrefs"]["CustomTxnNumbers"] for p in got["Preferences"]] == [True]
    assert [m["Id"] for m in got["PaymentMethod"]] == [method["Id"]]
    assert [c["Id"] for c in got["Class"]] == [klass["Id"]]
    assert [d["Id"] for d in got["Department"]] == [department["Id"]]


def test_cdc_empty_shape(api: Api) -> None:
    since = clock.meta_stamp(clock.now() + timedelta(minutes=1))
    assert _cdc(api, "Customer", since).json()["CDCResponse"] == [{"QueryResponse": [{}]}]
    assert _cdc(api, "Customer,Invoice", since).json()["CDCResponse"] == [{"QueryResponse": [{}, {}]}]


def test_cdc_window_and_parameters(api: Api) -> None:
    old = clock.meta_stamp(clock.now() - timedelta(days=31))
    err = api.fault(_cdc(api, "Customer", old))
    assert err["code"] == "4001"
    ok = clock.meta_stamp(clock.now() - timedelta(days=29))
    assert _cdc(api, "Customer", ok).status_code == 200
    assert api.fault(api.get("/cdc", params={"changedSince": ok}))["code"] == "2020"
    assert api.fault(api.get("/cdc", params={"entities": "Customer"}))["code"] == "2020"
    assert api.fault(_cdc(api, "TaxCode", ok))["code"] == "4001"
    assert api.fault(_cdc(api, "Customer", "yesterday"))["code"] == "4001"


def test_cdc_caps_at_1000_objects(api: Api, limits) -> None:
    limits(cdc_max_results=10)
    since = clock.meta_stamp(clock.now() - timedelta(seconds=2))
    api.server.bulk_insert(api.realm_id, "Customer", [{"DisplayName": f"N{i}"} for i in range(15)])
    groups = _cdc(api, "Customer", since).json()["CDCResponse"][0]["QueryResponse"]
    assert groups[0]["maxResults"] == 10 and groups[0]["totalCount"] == 10
    assert [c["DisplayName"] for c in groups[0]["Customer"]] == [f"N{i}" for i in range(10)]


# ---------------------------------------------------------------- sample company


def test_sample_company_ids_and_names(sample: Api) -> None:
    assert sample.read("Customer", "1")["DisplayName"] == "Amy's Bird Sanctuary"
    assert sample.read("Item", "10")["Name"] == "Pest Control"
    assert sample.read("Account", "86")["Name"].startswith("Discounts given")
    assert sample.read("Employee", "55")["DisplayName"] == "Emily Platt"
    assert sample.read("Vendor", "30")["Id"] == "30"
    assert sample.query("select count(*) from Customer")["totalCount"] == 29
    assert sample.query("select count(*) from Invoice")["totalCount"] == 31


def test_sample_company_dates_are_shifted_to_now(sample: Api) -> None:
    created = datetime.fromisoformat(sample.read("Customer", "1")["MetaData"]["CreateTime"]).date()
    assert (
        created == date.today() - timedelta(days=34)
        or abs((created - (date.today() - timedelta(days=34))).days) <= 1
    )
    stamps = [
        i["MetaData"]["LastUpdatedTime"]
        for i in sample.query("select * from Invoice maxresults 100")["Invoice"]
    ]
    assert max(stamps) <= clock.meta_stamp(clock.now())
    dues = [i["DueDate"] for i in sample.query("select * from Invoice maxresults 100")["Invoice"]]
    assert max(dues) > (date.today() - timedelta(days=10)).isoformat()


def test_sample_company_gaps_are_filled(sample: Api) -> None:
    types = sample.query("select * from CustomerType")["CustomerType"]
    assert "Individual" in {t["Name"] for t in types if t["Active"]}
    classes = sample.query("select * from Class")["Class"]
    assert any(c["SubClass"] for c in classes)
    assert sample.query("select count(*) from Department")["totalCount"] >= 1
    prefs = sample.get("/preferences").json()["Preferences"]
    assert "BookCloseDate" not in prefs["AccountingInfoPrefs"]


def test_sample_company_balances_are_consistent(sample: Api) -> None:
    invoices = sample.query("select * from Invoice maxresults 1000")["Invoice"]
    customers = sample.query("select * from Customer maxresults 1000")["Customer"]
    total_open = round(sum(i["Balance"] for i in invoices), 2)
    assert total_open == 5281.52
    assert round(sum(c["Balance"] for c in customers), 2) == total_open


def test_sample_company_new_ids_continue_sequences(sample: Api) -> None:
    assert sample.create("Customer", customer_body("Brand New"))["Id"] == "58"
    inv = sample.create("Invoice", invoice_body("1"))
    assert int(inv["Id"]) > 144 and inv["DocNumber"] == "1038"


def test_sample_payment_updates_seeded_invoice(sample: Api) -> None:
    open_inv = next(
        i for i in sample.query("select * from Invoice maxresults 1000")["Invoice"] if i["Balance"] > 0
    )
    cid = open_inv["CustomerRef"]["value"]
    before = sample.read("Customer", cid)["Balance"]
    sample.create(
        "Payment",
        {
            "CustomerRef": {"value": cid},
            "TotalAmt": open_inv["Balance"],
            "Line": [
                {
                    "Amount": open_inv["Balance"],
                    "LinkedTxn": [{"TxnId": open_inv["Id"], "TxnType": "Invoice"}],
                }
            ],
        },
    )
    after = sample.read("Invoice", open_inv["Id"])
    assert after["Balance"] == 0
    assert round(sample.read("Customer", cid)["Balance"], 2) == round(before - open_inv["Balance"], 2)


def test_empty_seed_has_what_a_company_needs(api: Api) -> None:
    accounts = api.query("select * from Account")["Account"]
    subtypes = {a["AccountSubType"] for a in accounts}
    assert {
        "UndepositedFunds",
        "AccountsReceivable",
        "Checking",
        "ServiceFeeIncome",
        "BankCharges",
    } <= subtypes
    assert api.query("select count(*) from Customer") == {"totalCount": 0}
    assert api.read("Item", "1")["Name"] == "Services"

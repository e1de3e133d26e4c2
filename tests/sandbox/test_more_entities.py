"""Issue 15 item 2: entities client libraries use beyond the app's own, with QBO's rules."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import Api, customer_body


def vendor(api: Api, name: str = "Paper Co", **extra: Any) -> str:
    return api.create("Vendor", {"DisplayName": name, **extra})["Id"]


def expense_line(amount: float, account: str = "11") -> dict[str, Any]:
    return {
        "DetailType": "AccountBasedExpenseLineDetail",
        "Amount": amount,
        "AccountBasedExpenseLineDetail": {"AccountRef": {"value": account}},
    }


def count(api: Api, entity: str) -> int:
    return api.server.query(api.realm_id, f"select count(*) from {entity}")["totalCount"]


# ---------------------------------------------------------------- Bill


def test_bill_totals_balance_and_due_date_from_terms(api: Api) -> None:
    vid = vendor(api, TermRef={"value": "3"})  # Net 30 in the empty seed
    bill = api.create(
        "Bill",
        {"VendorRef": {"value": vid}, "TxnDate": "2026-11-02", "Line": [expense_line(40), expense_line(2.5)]},
    )
    assert bill["TotalAmt"] == 42.5 and bill["Balance"] == 42.5
    assert bill["VendorRef"] == {"value": vid, "name": "Paper Co"}
    assert bill["DueDate"] == "2026-12-02"
    found = api.query("select * from Bill where TotalAmt = '42.5'")["Bill"]
    assert [b["Id"] for b in found] == [bill["Id"]]


VENDOR = {"value": "<vendor>"}


@pytest.mark.parametrize(
    ("body", "code", "element"),
    [
        ({"Line": [expense_line(10)]}, "2020", "VendorRef"),
        ({"VendorRef": VENDOR, "Line": []}, "2020", "Line"),
        (
            {
                "VendorRef": VENDOR,
                "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 1, "SalesItemLineDetail": {}}],
            },
            "2170",
            "Line.DetailType",
        ),
        (
            {"VendorRef": VENDOR, "Line": [{"DetailType": "AccountBasedExpenseLineDetail", "Amount": 1}]},
            "2020",
            "Line.AccountBasedExpenseLineDetail",
        ),
        (
            {"VendorRef": VENDOR, "Line": [expense_line(10, account="999")]},
            "2500",
            "Line.AccountBasedExpenseLineDetail.AccountRef",
        ),
        (
            {"VendorRef": VENDOR, "Line": [expense_line(10)], "APAccountRef": {"value": "3"}},
            "6000",
            "APAccountRef",
        ),
    ],
)
def test_bill_rules(api: Api, body: dict, code: str, element: str) -> None:
    vid = vendor(api)
    if "VendorRef" in body:
        body = {**body, "VendorRef": {"value": vid}}
    err = api.fault(api.post("/bill", body))
    assert err["code"] == code, err
    assert err.get("element") == element, err
    assert count(api, "Bill") == 0


# ---------------------------------------------------------------- Deposit


def test_deposit_needs_account_and_line_accounts(api: Api) -> None:
    line = {
        "Amount": 75,
        "DetailType": "DepositLineDetail",
        "DepositLineDetail": {"AccountRef": {"value": "1"}},
    }
    ok = api.create(
        "Deposit", {"DepositToAccountRef": {"value": "3"}, "Line": [line, {**line, "Amount": 25}]}
    )
    assert ok["TotalAmt"] == 100
    err = api.fault(api.post("/deposit", {"Line": [line]}))
    assert err["code"] == "2020" and err["element"] == "DepositToAccountRef"
    err = api.fault(api.post("/deposit", {"DepositToAccountRef": {"value": "7"}, "Line": [line]}))
    assert err["code"] == "6000" and err["element"] == "DepositToAccountRef"  # an expense account
    bare = {"Amount": 5, "DetailType": "DepositLineDetail", "DepositLineDetail": {}}
    err = api.fault(api.post("/deposit", {"DepositToAccountRef": {"value": "3"}, "Line": [bare]}))
    assert err["code"] == "2020" and err["element"] == "Line.DepositLineDetail.AccountRef"
    assert count(api, "Deposit") == 1


# ---------------------------------------------------------------- PurchaseOrder, Estimate


def test_purchase_order_addresses_and_status(api: Api) -> None:
    vid = vendor(api)
    po = api.create(
        "PurchaseOrder",
        {
            "VendorRef": {"value": vid},
            "Line": [expense_line(30)],
            "VendorAddr": {"Line1": "1 Paper Way", "City": "Tacoma"},
            "ShipAddr": {"Line1": "2 Office St", "City": "Seattle"},
        },
    )
    assert po["POStatus"] == "Open" and po["TotalAmt"] == 30
    assert po["VendorAddr"]["Id"] and po["ShipAddr"]["Id"] and po["VendorAddr"]["Id"] != po["ShipAddr"]["Id"]
    updated = api.create(
        "PurchaseOrder", {**po, "POStatus": "Closed", "ShipAddr": {**po["ShipAddr"], "City": "Everett"}}
    )
    assert updated["ShipAddr"]["Id"] == po["ShipAddr"]["Id"] and updated["POStatus"] == "Closed"
    err = api.fault(
        api.post(
            "/purchaseorder", {"VendorRef": {"value": vid}, "Line": [expense_line(1)], "POStatus": "Maybe"}
        )
    )
    assert err["code"] == "2170" and err["element"] == "POStatus"
    err = api.fault(api.post("/purchaseorder", {"Line": [expense_line(1)]}))
    assert err["element"] == "VendorRef"


def test_estimate_status_and_dates(api: Api) -> None:
    cid = api.create("Customer", customer_body("Estimating Ltd"))["Id"]
    line = {
        "DetailType": "SalesItemLineDetail",
        "Amount": 80,
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": 80},
    }
    est = api.create(
        "Estimate", {"CustomerRef": {"value": cid}, "Line": [line], "ExpirationDate": "2027-01-31"}
    )
    assert est["TxnStatus"] == "Pending" and est["TotalAmt"] == 80
    err = api.fault(
        api.post("/estimate", {"CustomerRef": {"value": cid}, "Line": [line], "TxnStatus": "Won"})
    )
    assert err["element"] == "TxnStatus"
    err = api.fault(
        api.post("/estimate", {"CustomerRef": {"value": cid}, "Line": [line], "ExpirationDate": "soon"})
    )
    assert err["element"] == "ExpirationDate"


def test_sales_receipt_void(api: Api) -> None:
    cid = api.create("Customer", customer_body("Cash Buyer"))["Id"]
    line = {
        "DetailType": "SalesItemLineDetail",
        "Amount": 60,
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 2, "UnitPrice": 30},
    }
    sr = api.create("SalesReceipt", {"CustomerRef": {"value": cid}, "Line": [line], "PrivateNote": "cash"})
    resp = api.post(
        "/salesreceipt", {"Id": sr["Id"], "SyncToken": sr["SyncToken"]}, params={"operation": "void"}
    )
    assert resp.status_code == 200, resp.text
    voided = resp.json()["SalesReceipt"]
    assert voided["TotalAmt"] == 0 and voided["PrivateNote"] == "Voided - cash"
    assert voided["SyncToken"] == "1"
    assert api.read("SalesReceipt", sr["Id"])["TotalAmt"] == 0


# ---------------------------------------------------------------- Account, TaxAgency, CompanyCurrency


def test_account_number_rules(api: Api) -> None:
    first = api.create("Account", {"Name": "Petty Cash", "AccountType": "Bank", "AcctNum": "1010"})
    assert first["AcctNum"] == "1010" and first["Classification"] == "Asset"
    dup = api.fault(api.post("/account", {"Name": "Till", "AccountType": "Bank", "AcctNum": "1010"}))
    assert dup["code"] == "6000" and dup["element"] == "AcctNum"
    colon = api.fault(api.post("/account", {"Name": "Till", "AccountType": "Bank", "AcctNum": "10:1"}))
    assert colon["element"] == "AcctNum"
    long = api.fault(api.post("/account", {"Name": "Till", "AccountType": "Bank", "AcctNum": "12345678"}))
    assert long["code"] == "2050" and long["element"] == "AcctNum"
    quote = api.fault(api.post("/account", {"Name": 'The "Till"', "AccountType": "Bank"}))
    assert quote["element"] == "Name"
    # Its own number again on update is fine.
    again = api.create("Account", {**first, "Description": "cash box"})
    assert again["AcctNum"] == "1010" and again["SyncToken"] == "1"


def test_tax_agency_create_and_query(api: Api) -> None:
    agency = api.create("TaxAgency", {"DisplayName": "Washington DOR"})
    assert agency["TaxTrackedOnSales"] is True and agency["TaxTrackedOnPurchases"] is False
    dup = api.fault(api.post("/taxagency", {"DisplayName": "washington dor"}))
    assert dup["code"] == "6240"
    assert api.fault(api.post("/taxagency", {}))["element"] == "DisplayName"
    found = api.query("select * from TaxAgency where DisplayName like 'Wash%'")
    assert [a["Id"] for a in found["TaxAgency"]] == [agency["Id"]]


def test_company_currency_needs_multicurrency(api: Api) -> None:
    off = api.fault(api.post("/companycurrency", {"Code": "EUR"}))
    assert off["code"] == "6000" and "Multicurrency" in off["Detail"]
    prefs = api.get("/preferences").json()["Preferences"]
    prefs["CurrencyPrefs"]["MultiCurrencyEnabled"] = True
    assert api.post("/preferences", prefs).status_code == 200
    eur = api.create("CompanyCurrency", {"Code": "eur"})
    assert eur["Code"] == "EUR" and eur["Name"] == "Euro" and eur["Active"] is True
    assert api.fault(api.post("/companycurrency", {"Code": "EUR"}))["element"] == "Code"
    assert api.fault(api.post("/companycurrency", {"Code": "USD"}))["element"] == "Code"
    assert api.fault(api.post("/companycurrency", {"Code": "XXX"}))["code"] == "2170"
    assert api.query("select * from CompanyCurrency")["CompanyCurrency"][0]["Code"] == "EUR"


# ---------------------------------------------------------------- CreditCardPayment, Attachable


def test_credit_card_payment(api: Api) -> None:
    card = api.create("Account", {"Name": "Visa", "AccountType": "Credit Card"})["Id"]
    body = {"CreditCardAccountRef": {"value": card}, "BankAccountRef": {"value": "3"}, "Amount": "125.50"}
    paid = api.create("CreditCardPayment", body)
    assert paid["Amount"] == 125.5 and paid["TxnDate"]
    assert paid["CreditCardAccountRef"]["name"] == "Visa"
    swapped = {**body, "CreditCardAccountRef": {"value": "3"}, "BankAccountRef": {"value": card}}
    assert api.fault(api.post("/creditcardpayment", swapped))["element"] == "CreditCardAccountRef"
    assert api.fault(api.post("/creditcardpayment", {**body, "Amount": 0}))["element"] == "Amount"
    assert api.fault(api.post("/creditcardpayment", {**body, "Amount": "lots"}))["element"] == "Amount"
    missing = {k: v for k, v in body.items() if k != "BankAccountRef"}
    assert api.fault(api.post("/creditcardpayment", missing))["element"] == "BankAccountRef"
    assert [p["Id"] for p in api.query("select * from CreditCardPayment")["CreditCardPayment"]] == [
        paid["Id"]
    ]


def test_attachable_note_linked_to_a_customer(api: Api) -> None:
    cid = api.create("Customer", customer_body("Noted Inc"))["Id"]
    note = api.create(
        "Attachable",
        {
            "Note": "Signed engagement letter on file",
            "AttachableRef": [{"EntityRef": {"type": "Customer", "value": cid}}],
        },
    )
    assert note["Id"] and note["Note"].startswith("Signed")
    assert api.read("Attachable", note["Id"])["AttachableRef"][0]["EntityRef"]["value"] == cid
    assert api.fault(api.post("/attachable", {"AttachableRef": []}))["element"] == "Note"
    bad = {"Note": "x", "AttachableRef": [{"EntityRef": {"type": "Customer", "value": "999"}}]}
    assert api.fault(api.post("/attachable", bad))["code"] == "2500"
    wrong = {"Note": "x", "AttachableRef": [{"EntityRef": {"type": "Widget", "value": "1"}}]}
    assert api.fault(api.post("/attachable", wrong))["code"] == "2170"
    deleted = api.post("/attachable", {"Id": note["Id"], "SyncToken": "0"}, params={"operation": "delete"})
    assert deleted.json()["Attachable"]["status"] == "Deleted"


# ---------------------------------------------------------------- TaxService, upload


def test_tax_service_creates_a_code_with_new_and_existing_rates(api: Api) -> None:
    agency = api.create("TaxAgency", {"DisplayName": "State DOR"})["Id"]
    first = api.post(
        "/taxservice/taxcode",
        {
            "TaxCode": "County Combo",
            "TaxRateDetails": [
                {
                    "TaxRateName": "State 6",
                    "RateValue": "6",
                    "TaxAgencyId": agency,
                    "TaxApplicableOn": "Sales",
                },
                {"TaxRateName": "County 1.5", "RateValue": 1.5, "TaxAgencyId": agency},
            ],
        },
    )
    assert first.status_code == 200, first.text
    made = first.json()
    assert made["TaxCode"] == "County Combo" and made["TaxCodeId"]
    assert [(d["TaxRateName"], d["RateValue"], d["TaxApplicableOn"]) for d in made["TaxRateDetails"]] == [
        ("State 6", 6.0, "Sales"),
        ("County 1.5", 1.5, "Sales"),
    ]
    code = api.read("TaxCode", made["TaxCodeId"])
    rates = [d["TaxRateRef"]["value"] for d in code["SalesTaxRateList"]["TaxRateDetail"]]
    assert rates == [d["TaxRateId"] for d in made["TaxRateDetails"]] and code["TaxGroup"] is True
    assert api.read("TaxRate", rates[0])["AgencyRef"] == {"value": agency}
    reuse = api.post(
        "/taxservice/taxcode", {"TaxCode": "State only", "TaxRateDetails": [{"TaxRateId": rates[0]}]}
    )
    assert reuse.json()["TaxRateDetails"][0]["TaxRateId"] == rates[0]
    rates_before = api.query("select count(*) from TaxRate")["totalCount"]
    for body, element in [
        ({"TaxRateDetails": [{"TaxRateId": rates[0]}]}, "TaxCode"),
        ({"TaxCode": "county combo", "TaxRateDetails": [{"TaxRateId": rates[0]}]}, None),
        ({"TaxCode": "X", "TaxRateDetails": []}, "TaxRateDetails"),
        ({"TaxCode": "X", "TaxRateDetails": [{"TaxRateId": "999"}]}, "TaxRateDetails.TaxRateId"),
        (
            {
                "TaxCode": "X",
                "TaxRateDetails": [{"TaxRateName": "New", "RateValue": 5, "TaxAgencyId": "999"}],
            },
            "TaxRateDetails.TaxAgencyId",
        ),
        (
            {
                "TaxCode": "X",
                "TaxRateDetails": [{"TaxRateName": "New", "RateValue": 500, "TaxAgencyId": agency}],
            },
            "RateValue",
        ),
    ]:
        err = api.fault(api.post("/taxservice/taxcode", body))
        if element is None:
            assert err["code"] == "6240"
        else:
            assert err["element"] == element, err
    assert api.query("select count(*) from TaxRate")["totalCount"] == rates_before


def test_upload_attaches_a_file_to_an_invoice_customer(api: Api) -> None:
    cid = api.create("Customer", customer_body("Upload Co"))["Id"]
    content = bytes(range(256)) * 4
    meta = {"AttachableRef": [{"EntityRef": {"type": "Customer", "value": cid}}], "Note": "W-9"}
    resp = api.http.post(
        "/upload",
        files={
            "file_metadata_01": (None, json.dumps(meta), "application/json"),
            "file_content_01": ("w9.pdf", content, "application/pdf"),
        },
    )
    assert resp.status_code == 200, resp.text
    [entry] = resp.json()["AttachableResponse"]
    att = entry["Attachable"]
    assert (att["FileName"], att["ContentType"], att["Size"]) == ("w9.pdf", "application/pdf", 1024)
    assert att["AttachableRef"][0]["EntityRef"]["value"] == cid
    assert api.read("Attachable", att["Id"])["Size"] == 1024
    found = api.query(f"select * from Attachable where Id = '{att['Id']}'")["Attachable"]
    assert found[0]["FileName"] == "w9.pdf"
    # A second file pointing nowhere gets its own Fault; the good one is still stored.
    bad_meta = {"AttachableRef": [{"EntityRef": {"type": "Customer", "value": "999"}}]}
    resp = api.http.post(
        "/upload",
        files={
            "file_metadata_01": (None, json.dumps(meta), "application/json"),
            "file_content_01": ("a.txt", b"a", "text/plain"),
            "file_metadata_02": (None, json.dumps(bad_meta), "application/json"),
            "file_content_02": ("b.txt", b"b", "text/plain"),
        },
    )
    entries = resp.json()["AttachableResponse"]
    assert entries[0]["Attachable"]["FileName"] == "a.txt"
    assert entries[1]["Fault"]["Error"][0]["code"] == "2500"
    assert count(api, "Attachable") == 2
    not_multipart = api.post("/upload", {"FileName": "x"})
    assert api.fault(not_multipart)["element"] == "Content-Type"

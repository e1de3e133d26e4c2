"""qbo-api.md §2 and checklist §11.2: create/read/update rules of name lists."""

from __future__ import annotations

import pytest

from .conftest import Api, customer_body


def test_customer_create_defaults(api: Api) -> None:
    cust = api.create(
        "Customer",
        {"DisplayName": "King's Groceries", "CompanyName": "King Groceries", "BillAddr": {"Line1": "1 Main"}},
    )
    assert cust["FullyQualifiedName"] == "King's Groceries"
    assert cust["PrintOnCheckName"] == "King Groceries"
    assert cust["Active"] is True and cust["Job"] is False
    assert cust["Balance"] == 0 and cust["BalanceWithJobs"] == 0
    assert cust["CurrencyRef"]["value"] == "USD"
    assert cust["BillAddr"]["Id"]


def test_customer_display_name_generated_from_name_parts(api: Api) -> None:
    cust = api.create("Customer", {"GivenName": "James", "FamilyName": "King"})
    assert cust["DisplayName"] == "James King"


def test_customer_without_any_name_is_2020(api: Api) -> None:
    err = api.fault(api.post("/customer", {"CompanyName": "No Name Inc"}))
    assert err["code"] == "2020"
    assert err["element"] == "DisplayName"


def test_read_missing_object_is_610(api: Api) -> None:
    err = api.fault(api.get("/customer/424242"))
    assert err["code"] == "610"


@pytest.mark.parametrize("field", ["DisplayName", "GivenName", "FamilyName", "Title", "Suffix"])
@pytest.mark.parametrize("bad", [":", "\t", "\n"])
def test_forbidden_characters_in_name_fields(api: Api, field: str, bad: str) -> None:
    body = {"DisplayName": "Okay Name", field: f"A{bad}B"}
    err = api.fault(api.post("/customer", body))
    assert err["code"] == "6000"
    assert err["element"] == field


def test_max_length_is_2050_with_element(api: Api) -> None:
    err = api.fault(api.post("/customer", {"DisplayName": "x" * 501}))
    assert err["code"] == "2050" and err["element"] == "DisplayName"
    assert "Max:500" in err["Detail"] and "Supplied length: 501" in err["Detail"]
    err = api.fault(api.post("/customer", {"DisplayName": "ok", "Notes": "n" * 2001}))
    assert err["element"] == "Notes"
    assert api.create("Customer", {"DisplayName": "y" * 500})["DisplayName"] == "y" * 500


def test_invalid_email(api: Api) -> None:
    err = api.fault(api.post("/customer", {"DisplayName": "Mail", "PrimaryEmailAddr": {"Address": "nobody"}}))
    assert err["code"] == "6000"


def test_display_name_unique_across_customers_vendors_employees(api: Api) -> None:
    api.create("Customer", customer_body("Shared Name"))
    for entity in ("Customer", "Vendor", "Employee"):
        body = {"DisplayName": "Shared Name", "GivenName": "Shared"}
        err = api.fault(api.post(f"/{entity.lower()}", body))
        assert err["code"] == "6240", entity
        assert err["Message"] == "Duplicate Name Exists Error"


def test_display_name_uniqueness_ignores_case_and_whitespace(api: Api) -> None:
    api.create("Vendor", {"DisplayName": "Smith Family Store"})
    assert api.fault(api.post("/customer", {"DisplayName": "  smith family STORE "}))["code"] == "6240"


def test_inactive_names_still_block_reuse(api: Api) -> None:
    cust = api.create("Customer", customer_body("Gone Co"))
    api.create(
        "Customer", {"Id": cust["Id"], "SyncToken": cust["SyncToken"], "sparse": True, "Active": False}
    )
    assert api.fault(api.post("/customer", customer_body("Gone Co")))["code"] == "6240"


def test_sparse_update_changes_only_given_fields(api: Api) -> None:
    cust = api.create("Customer", {"DisplayName": "Sparse", "GivenName": "A", "Notes": "keep"})
    resp = api.post("/customer", {"Id": cust["Id"], "SyncToken": "0", "sparse": True, "MiddleName": "Mark"})
    updated = resp.json()["Customer"]
    assert updated["MiddleName"] == "Mark" and updated["Notes"] == "keep" and updated["GivenName"] == "A"
    assert updated["SyncToken"] == "1"
    assert updated["MetaData"]["CreateTime"] == cust["MetaData"]["CreateTime"]


def test_full_update_nulls_omitted_fields(api: Api) -> None:
    cust = api.create("Customer", {"DisplayName": "Full", "Notes": "gone after full update"})
    updated = api.create("Customer", {"Id": cust["Id"], "SyncToken": "0", "DisplayName": "Full 2"})
    assert "Notes" not in updated
    assert updated["DisplayName"] == "Full 2" and updated["SyncToken"] == "1"


def test_sparse_update_cannot_remove_display_name(api: Api) -> None:
    cust = api.create("Customer", {"DisplayName": "Keeper"})
    updated = api.create("Customer", {"Id": cust["Id"], "SyncToken": "0", "sparse": True, "DisplayName": ""})
    assert updated["DisplayName"] == "Keeper"


def test_stale_sync_token_is_5010(api: Api) -> None:
    cust = api.create("Customer", customer_body("Stale"))
    api.create("Customer", {"Id": cust["Id"], "SyncToken": "0", "sparse": True, "Notes": "first"})
    err = api.fault(
        api.post("/customer", {"Id": cust["Id"], "SyncToken": "0", "sparse": True, "Notes": "second"})
    )
    assert err["code"] == "5010" and err["Message"] == "Stale Object Error"


def test_update_requires_sync_token(api: Api) -> None:
    cust = api.create("Customer", customer_body("NoToken"))
    err = api.fault(api.post("/customer", {"Id": cust["Id"], "sparse": True, "Notes": "x"}))
    assert err["code"] == "2020" and err["element"] == "SyncToken"


def test_update_of_missing_object_is_610(api: Api) -> None:
    err = api.fault(api.post("/customer", {"Id": "98765", "SyncToken": "0", "sparse": True, "Notes": "x"}))
    assert err["code"] == "610"


def test_soft_delete_hides_from_default_query(api: Api) -> None:
    cust = api.create("Customer", customer_body("Soft"))
    api.create("Customer", {"Id": cust["Id"], "SyncToken": "0", "sparse": True, "Active": False})
    assert api.query("select * from Customer where DisplayName = 'Soft'") == {}
    found = api.query("select * from Customer where DisplayName = 'Soft' and Active = false")
    assert found["Customer"][0]["Active"] is False
    assert api.read("Customer", cust["Id"])["Active"] is False


def test_name_lists_cannot_be_hard_deleted(api: Api) -> None:
    cust = api.create("Customer", customer_body("Hard"))
    resp = api.post("/customer", {"Id": cust["Id"], "SyncToken": "0"}, params={"operation": "delete"})
    assert api.fault(resp)["code"] == "500"


def test_sub_customer_hierarchy(api: Api) -> None:
    parent = api.create("Customer", customer_body("Parent Co"))
    child = api.create(
        "Customer", {"DisplayName": "Job 1", "ParentRef": {"value": parent["Id"]}, "Job": True}
    )
    assert child["FullyQualifiedName"] == "Parent Co:Job 1"
    assert child["Level"] == 1 and child["Job"] is True
    assert child["ParentRef"]["value"] == parent["Id"]


def test_customer_type_is_read_only(api: Api) -> None:
    types = api.query("select * from CustomerType")["CustomerType"]
    assert any(t["Name"] == "Individual" for t in types)
    assert api.fault(api.post("/customertype", {"Name": "New"}))["code"] == "500"
    cust = api.create("Customer", {"DisplayName": "Typed", "CustomerTypeRef": {"value": types[0]["Id"]}})
    assert cust["CustomerTypeRef"]["value"] == types[0]["Id"]


def test_invalid_reference_is_2500(api: Api) -> None:
    err = api.fault(api.post("/customer", {"DisplayName": "Bad Term", "SalesTermRef": {"value": "999"}}))
    assert err["code"] == "2500" and err["element"] == "SalesTermRef"


def test_inactive_reference_is_2500(api: Api) -> None:
    term = api.create("Term", {"Name": "Net 7", "DueDays": 7})
    api.create("Term", {"Id": term["Id"], "SyncToken": "0", "sparse": True, "Active": False})
    err = api.fault(api.post("/customer", {"DisplayName": "Old Term", "SalesTermRef": {"value": term["Id"]}}))
    assert err["code"] == "2500"


def test_vendor_and_employee(api: Api) -> None:
    vendor = api.create("Vendor", {"DisplayName": "Paper Co", "PrimaryEmailAddr": {"Address": "a@b.co"}})
    assert vendor["Active"] is True and vendor["Balance"] == 0
    emp = api.create("Employee", {"GivenName": "Emily", "FamilyName": "Platt"})
    assert emp["DisplayName"] == "Emily Platt"
    assert api.fault(api.post("/employee", {"Notes": "x"}))["code"] == "2020"


def test_item_rules(api: Api) -> None:
    err = api.fault(api.post("/item", {"Name": "Consulting", "Type": "Service"}))
    assert err["code"] == "2020" and err["element"] == "IncomeAccountRef"
    assert api.fault(api.post("/item", {"Type": "Service"}))["element"] == "Name"
    err = api.fault(api.post("/item", {"Name": "X", "Type": "Gizmo", "IncomeAccountRef": {"value": "1"}}))
    assert err["code"] == "2170"
    item = api.create("Item", {"Name": "Consulting", "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    assert item["IncomeAccountRef"]["name"] == "Services" and item["FullyQualifiedName"] == "Consulting"
    dup = api.post("/item", {"Name": "consulting", "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    assert api.fault(dup)["code"] == "6240"


def test_account_rules(api: Api) -> None:
    assert api.fault(api.post("/account", {"Name": 'Bad "quote"', "AccountType": "Bank"}))["code"] == "6000"
    assert api.fault(api.post("/account", {"Name": "Bad:colon", "AccountType": "Bank"}))["code"] == "6000"
    assert api.fault(api.post("/account", {"Name": "No type"}))["element"] == "AccountType"
    assert (
        api.fault(api.post("/account", {"Name": "Num", "AccountType": "Bank", "AcctNum": "12345678"}))["code"]
        == "2050"
    )
    acc = api.create("Account", {"Name": "Stripe Clearing", "AccountSubType": "Checking"})
    assert acc["AccountType"] == "Bank" and acc["Classification"] == "Asset"
    sub = api.create("Account", {"Name": "Sub", "AccountType": "Bank", "ParentRef": {"value": acc["Id"]}})
    assert sub["SubAccount"] is True and sub["FullyQualifiedName"] == "Stripe Clearing:Sub"
    assert (
        api.fault(api.post("/account", {"Name": "stripe clearing", "AccountType": "Bank"}))["code"] == "6240"
    )


def test_class_and_department(api: Api) -> None:
    cls = api.create("Class", {"Name": "Tax"})
    sub = api.create("Class", {"Name": "Returns", "ParentRef": {"value": cls["Id"]}})
    assert sub["SubClass"] is True and sub["FullyQualifiedName"] == "Tax:Returns"
    dep = api.create("Department", {"Name": "Berlin"})
    assert dep["SubDepartment"] is False and dep["Active"] is True
    assert api.fault(api.post("/class", {}))["code"] == "2020"
    assert api.fault(api.post("/class", {"Name": "x" * 101}))["code"] == "2050"


def test_term_and_payment_method(api: Api) -> None:
    term = api.create("Term", {"Name": "Net 45", "DueDays": 45})
    assert term["Type"] == "STANDARD"
    pm = api.create("PaymentMethod", {"Name": "Stripe", "Type": "CREDIT_CARD"})
    assert pm["Active"] is True
    assert api.fault(api.post("/paymentmethod", {"Name": "Cash"}))["code"] == "6240"


def test_tax_code_and_rate_are_read_only(sample: Api) -> None:
    codes = sample.query("select * from TaxCode")["TaxCode"]
    assert {"TAX", "NON"} <= {c["Id"] for c in codes}
    assert sample.fault(sample.post("/taxcode", {"Name": "X"}))["code"] == "500"
    assert sample.read("TaxRate", "3")["Name"]

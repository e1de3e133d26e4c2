"""Issue 15 item 1: the query grammar as QBO accepts it from other people's client libraries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Api, invoice_body


@pytest.fixture(scope="module")
def books(sandbox) -> Iterator[Api]:
    realm = sandbox.create_realm()
    api = Api(sandbox, realm, sandbox.issue_tokens(realm)["access_token"])
    sandbox.bulk_insert(
        realm,
        "Customer",
        [
            {"DisplayName": "Zed Zoo", "CompanyName": "Acme", "Balance": 5},
            {"DisplayName": "amy apples", "CompanyName": "Beta", "Balance": 5},
            {"DisplayName": "Bob Books", "CompanyName": "Acme", "Balance": 7},
            {"DisplayName": "Carl Cars", "CompanyName": "Beta", "Balance": 1},
            {"DisplayName": "Old Oak", "Active": False},
        ],
    )
    sandbox.bulk_insert(
        realm,
        "Item",
        [
            {"Name": "Widget", "Type": "Service", "Sku": "W-1", "IncomeAccountRef": {"value": "1"}},
            {"Name": "Gadget", "Type": "Service", "IncomeAccountRef": {"value": "1"}},
        ],
    )
    yield api
    api.http.close()


def names(resp: dict) -> list[str]:
    return [c["DisplayName"] for c in resp.get("Customer", [])]


def test_star_with_extra_fields_returns_on_request_properties(books: Api) -> None:
    plain = books.query("select * from Item where Name = 'Widget'")["Item"][0]
    assert "Sku" not in plain and plain["Name"] == "Widget"
    asked = books.query("SELECT *, Sku FROM Item WHERE Name = 'Widget'")["Item"][0]
    assert asked["Sku"] == "W-1"
    assert {k: v for k, v in asked.items() if k != "Sku"} == plain
    # Sku named alone (QBO has no projections: every other property still comes back).
    alone = books.query("select Sku, Name from Item where Name = 'Widget'")["Item"][0]
    assert alone == asked
    # Read by Id is not a query: the stored object as is.
    assert books.read("Item", plain["Id"])["Sku"] == "W-1"


def test_explicit_field_list_returns_whole_objects(books: Api) -> None:
    listed = books.query("select Id, DisplayName, MetaData.LastUpdatedTime from Customer")
    everything = books.query("select * from Customer")
    assert listed == everything
    err = books.fault(books.get("/query", params={"query": "select Id, Nonsense from Customer"}))
    assert err["code"] == "4001" and "'Nonsense' is not a property of Customer" in err["Detail"]


def test_count_in_any_case(books: Api) -> None:
    assert books.query("Select Count(*) From Customer") == {"totalCount": 4}
    assert books.query("SELECT COUNT(*) FROM Customer WHERE Active IN (true, false)") == {"totalCount": 5}


def test_keywords_are_case_insensitive(books: Api) -> None:
    resp = books.query(
        "sElEcT * fRoM Customer wHeRe CompanyName iN ('Acme', 'Beta') oRdErBy DisplayName DeSc "
        "sTaRtPoSiTiOn 2 MaXrEsUlTs 2"
    )
    assert names(resp) == ["Carl Cars", "Bob Books"]
    assert resp["startPosition"] == 2 and resp["maxResults"] == 2


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("CompanyName, DisplayName", ["Bob Books", "Zed Zoo", "amy apples", "Carl Cars"]),
        ("CompanyName ASC, DisplayName DESC", ["Zed Zoo", "Bob Books", "Carl Cars", "amy apples"]),
        ("CompanyName DESC, Balance DESC", ["amy apples", "Carl Cars", "Bob Books", "Zed Zoo"]),
        ("Balance, DisplayName DESC", ["Carl Cars", "Zed Zoo", "amy apples", "Bob Books"]),
    ],
)
def test_order_by_several_fields_each_with_its_direction(books: Api, order: str, expected: list[str]) -> None:
    assert names(books.query(f"select * from Customer orderby {order}")) == expected
    assert names(books.query(f"select * from Customer ORDER BY {order}")) == expected


def test_in_with_strings_and_numbers(books: Api) -> None:
    resp = books.query("select * from Customer where Balance in (5, 1) orderby DisplayName")
    assert names(resp) == ["amy apples", "Carl Cars", "Zed Zoo"]
    resp = books.query("select * from Customer where DisplayName in ('ZED ZOO', 'Nobody')")
    assert names(resp) == ["Zed Zoo"]


def test_like_forms(books: Api) -> None:
    assert names(books.query("select * from Customer where DisplayName like 'b%'")) == ["Bob Books"]
    assert names(books.query("select * from Customer where DisplayName like '%S'")) == [
        "amy apples",
        "Bob Books",
        "Carl Cars",
    ]
    assert names(books.query("select * from Customer where DisplayName like 'Carl Cars'")) == ["Carl Cars"]
    # `_` is not a wildcard in QBO (only `%` is, QRY).
    assert books.query("select * from Customer where DisplayName like 'Carl_Cars'") == {}


def test_paging_in_either_order(books: Api) -> None:
    a = books.query("select * from Customer startposition 3 maxresults 2")
    b = books.query("select * from Customer MAXRESULTS 2 STARTPOSITION 3")
    assert names(a) == names(b) == ["Carl Cars", "Zed Zoo"]
    assert a["startPosition"] == 3 and a["maxResults"] == 2
    twice = "select * from Customer maxresults 2 maxresults 3"
    err = books.fault(books.get("/query", params={"query": twice}))
    assert err["code"] == "4000"


def test_default_order_name_lists_by_name_transactions_by_numeric_id(books: Api, api: Api) -> None:
    assert names(books.query("select * from Customer")) == ["amy apples", "Bob Books", "Carl Cars", "Zed Zoo"]
    holder = api.create("Customer", {"DisplayName": "Holder"})["Id"]
    # Eleven invoices so that Id "10" and "11" must sort after "9" (numeric, not text, order).
    api.server.bulk_insert(api.realm_id, "Invoice", [invoice_body(holder, amount=10 + n) for n in range(11)])
    ids = [int(i["Id"]) for i in api.query("select * from Invoice")["Invoice"]]
    assert len(ids) == 11 and ids == sorted(ids) and ids[-1] >= 10
    assert api.query("select count(*) from Invoice where TotalAmt >= '15'") == {"totalCount": 6}
    desc = [int(i["Id"]) for i in api.query("select * from Invoice orderby Id desc")["Invoice"]]
    assert desc == sorted(ids, reverse=True)


def test_where_with_metadata_and_mixed_keywords_in_batch(books: Api) -> None:
    resp = books.post(
        "/batch",
        {
            "BatchItemRequest": [
                {"bId": "a", "Query": "Select *, Sku From Item OrderBy Name"},
                {"bId": "b", "Query": "select count(*) from Item"},
            ]
        },
    )
    assert resp.status_code == 200, resp.text
    items = resp.json()["BatchItemResponse"]
    # The empty seed has the items Hours and Services too.
    found = items[0]["QueryResponse"]["Item"]
    assert [i["Name"] for i in found] == ["Gadget", "Hours", "Services", "Widget"]
    assert found[3]["Sku"] == "W-1"
    assert items[1]["QueryResponse"] == {"totalCount": 4}


def test_entity_names_in_any_case_as_node_quickbooks_sends_them(sample: Api, limits: Any) -> None:
    # node-quickbooks' find* methods send `select * from account`, `from billPayment` (issue 15 item 3).
    exact = sample.query("select * from Account")["Account"]
    assert sample.query("select * from account")["Account"] == exact
    count = sample.query("select count(*) from BillPayment")
    assert sample.query("select count(*) from billPayment") == count
    assert sample.query("SELECT * FROM ACCOUNT WHERE Name = 'Checking'")["Account"][0]["Name"] == "Checking"
    limits(query_entity_case_sensitive=True)
    resp = sample.get("/query", params={"query": "select * from account"})
    assert sample.fault(resp)["code"] == "4001"

"""qbo-api.md §3: the query language and its response shapes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import Api, customer_body


@pytest.fixture(scope="module")
def people(sandbox) -> Iterator[Api]:
    """One realm for the read-only query tests of this module."""
    realm = sandbox.create_realm()
    api = Api(sandbox, realm, sandbox.issue_tokens(realm)["access_token"])
    api.server.bulk_insert(
        api.realm_id,
        "Customer",
        [
            {"DisplayName": "Adam's Candy Shop", "GivenName": "Adam", "Balance": 10},
            {"DisplayName": "Bravo Bikes", "GivenName": "Bea", "Balance": 250.5},
            {"DisplayName": "Charlie Cafe", "GivenName": "Carl", "CompanyName": "Cafe LLC"},
            {"DisplayName": "delta dental", "GivenName": "Dee"},
            {"DisplayName": "Echo Events", "GivenName": "Ed", "Active": False},
        ],
    )
    yield api
    api.http.close()


def names(resp: dict) -> list[str]:
    return [c["DisplayName"] for c in resp.get("Customer", [])]


def test_select_all_shape(people: Api) -> None:
    resp = people.query("SELECT * FROM Customer")
    assert resp["startPosition"] == 1 and resp["maxResults"] == 4
    assert names(resp) == ["Adam's Candy Shop", "Bravo Bikes", "Charlie Cafe", "delta dental"]


def test_count(people: Api) -> None:
    assert people.query("select count(*) from Customer") == {"totalCount": 4}
    assert people.query("select count(*) from Customer where Active in (true, false)") == {"totalCount": 5}


def test_empty_result_is_empty_query_response(people: Api) -> None:
    resp = people.get("/query", params={"query": "select * from Customer where DisplayName = 'Nobody'"})
    assert resp.json()["QueryResponse"] == {}


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("DisplayName = 'Bravo Bikes'", ["Bravo Bikes"]),
        ("DisplayName = 'BRAVO bikes'", ["Bravo Bikes"]),
        ("DisplayName != 'Bravo Bikes'", ["Adam's Candy Shop", "Charlie Cafe", "delta dental"]),
        ("Balance > '100'", ["Bravo Bikes"]),
        ("Balance >= 10", ["Adam's Candy Shop", "Bravo Bikes"]),
        ("Balance < 10", ["Charlie Cafe", "delta dental"]),
        ("Balance <= '10.00'", ["Adam's Candy Shop", "Charlie Cafe", "delta dental"]),
        ("DisplayName IN ('Charlie Cafe', 'delta dental', 'Zulu')", ["Charlie Cafe", "delta dental"]),
        ("DisplayName LIKE 'B%'", ["Bravo Bikes"]),
        ("DisplayName LIKE '%a%e%'", ["Bravo Bikes", "Charlie Cafe", "delta dental"]),
        ("DisplayName LIKE 'D%'", ["delta dental"]),
        ("DisplayName = 'Adam\\'s Candy Shop'", ["Adam's Candy Shop"]),
        ("GivenName = 'Carl' AND CompanyName = 'Cafe LLC'", ["Charlie Cafe"]),
        ("GivenName = 'Carl' and CompanyName = 'Other'", []),
        ("Active = false", ["Echo Events"]),
        ("CompanyName = ' '", ["Adam's Candy Shop", "Bravo Bikes", "delta dental"]),
    ],
)
def test_where_operators(people: Api, where: str, expected: list[str]) -> None:
    assert names(people.query(f"select * from Customer where {where}")) == expected


def test_keywords_are_case_insensitive(people: Api) -> None:
    resp = people.query("select * from Customer where displayname like '%bikes' orderby DisplayName desc")
    assert names(resp) == ["Bravo Bikes"]


def test_orderby_and_paging(people: Api) -> None:
    resp = people.query("select * from Customer orderby GivenName DESC startposition 2 maxresults 2")
    assert names(resp) == ["Charlie Cafe", "Bravo Bikes"]
    assert resp["startPosition"] == 2 and resp["maxResults"] == 2
    resp = people.query("select * from Customer ORDERBY Balance DESC, DisplayName")
    assert names(resp)[0] == "Bravo Bikes"
    assert people.query("select * from Customer startposition 10") == {}


def test_default_page_is_100_and_cap_is_1000(api: Api) -> None:
    api.server.bulk_insert(api.realm_id, "Customer", [{"DisplayName": f"C{i:04d}"} for i in range(1005)])
    assert api.query("select * from Customer")["maxResults"] == 100
    assert api.query("select * from Customer maxresults 1000")["maxResults"] == 1000
    assert api.query("select * from Customer maxresults 5000")["maxResults"] == 1000
    page = api.query("select * from Customer startposition 1001 maxresults 1000")
    assert page["maxResults"] == 5 and page["startPosition"] == 1001


def test_maxresults_over_cap_can_be_an_error(api: Api, limits) -> None:
    limits(max_results_error=True)
    resp = api.get("/query", params={"query": "select * from Customer maxresults 1001"})
    assert api.fault(resp)["code"] == "4001"


def test_nested_fields_metadata_and_refs(api: Api) -> None:
    cust = api.create("Customer", customer_body("Nested"))
    api.create(
        "Invoice",
        {
            "CustomerRef": {"value": cust["Id"]},
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": 5,
                    "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
                }
            ],
        },
    )
    stamp = cust["MetaData"]["CreateTime"]
    resp = api.query(f"select * from Customer where MetaData.LastUpdatedTime >= '{stamp}'")
    assert names(resp) == ["Nested"]
    resp = api.query(f"select * from Customer where Metadata.LastUpdatedTime > '{stamp}'")
    assert resp == {}
    assert api.query("select * from Customer where MetaData.CreateTime > '2000-01-01'")["maxResults"] >= 1
    invoices = api.query(f"select * from Invoice where CustomerRef = '{cust['Id']}'")["Invoice"]
    assert len(invoices) == 1
    resp = api.query(
        f"SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime >= '{stamp}' ORDERBY MetaData.LastUpdatedTime "
        "STARTPOSITION 1 MAXRESULTS 1000"
    )
    assert resp["maxResults"] == 1


def test_post_form_with_application_text(people: Api) -> None:
    resp = people.http.post(
        "/query",
        content="select * from Customer where GivenName = 'Bea'",
        headers={"Content-Type": "application/text"},
    )
    assert names(resp.json()["QueryResponse"]) == ["Bravo Bikes"]


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("", "QueryParserError: The query provided was empty"),
        ("select * from Customer where DisplayName = 'a' OR DisplayName = 'b'", 'Encountered " <OR> "OR ""'),
        ("select * from Customer where DisplayName = 'Adam's'", "QueryParserError: Encountered"),
        ("select DisplayName, from Customer", "QueryParserError: Encountered"),
        ("select from Customer", "QueryParserError: Encountered"),
        ("select * from Customer where DisplayName = 'open", "Lexical error"),
    ],
)
def test_parse_errors_are_4000(people: Api, text: str, detail: str) -> None:
    resp = people.get("/query", params={"query": text})
    err = people.fault(resp)
    assert err["code"] == "4000" and err["Message"] == "Error parsing query"
    assert detail in err["Detail"]


def test_unknown_entity_and_line_fields_are_4001(people: Api) -> None:
    assert people.fault(people.get("/query", params={"query": "select * from Widget"}))["code"] == "4001"
    resp = people.get("/query", params={"query": "select * from Invoice where Line.Amount > '5'"})
    assert people.fault(resp)["code"] == "4001"
    resp = people.get("/query", params={"query": "select * from Purchase where AccountRef = '35'"})
    err = people.fault(resp)
    assert err["code"] == "4001" and "not queryable" in err["Detail"]


def test_name_lists_have_implicit_active_filter_but_taxcode_does_not(sample: Api) -> None:
    assert sample.query("select count(*) from CustomerType")["totalCount"] == 4
    assert sample.query("select count(*) from CustomerType where Active in (true,false)")["totalCount"] == 5


def test_companyinfo_and_preferences_are_queryable(api: Api) -> None:
    assert api.query("select * from CompanyInfo")["CompanyInfo"][0]["Id"] == "1"
    assert len(api.query("select * from Preferences")["Preferences"]) == 1


def test_transactions_by_date(sample: Api) -> None:
    invoices = sample.query("select * from Invoice maxresults 1000")["Invoice"]
    dates = sorted(i["TxnDate"] for i in invoices)
    mid = dates[len(dates) // 2]
    later = sample.query(f"select count(*) from Invoice where TxnDate >= '{mid}'")["totalCount"]
    assert later == sum(1 for d in dates if d >= mid)

"""qbo-api.md §4 (batch) and §5 (requestid idempotency)."""

from __future__ import annotations

import time
import uuid

from .conftest import Api, customer_body, invoice_body


def test_batch_mixed_items_partial_failure(api: Api) -> None:
    existing = api.create("Customer", customer_body("Smith Family Store"))
    inv = api.create("Invoice", invoice_body(existing["Id"]))
    body = {
        "BatchItemRequest": [
            {"bId": "bid1", "operation": "create", "Vendor": {"DisplayName": "Smith Family Store"}},
            {"bId": "bid2", "operation": "delete", "Invoice": {"Id": "99999", "SyncToken": "0"}},
            {
                "bId": "bid3",
                "operation": "update",
                "Invoice": {"Id": inv["Id"], "SyncToken": "7", "sparse": True},
            },
            {"bId": "bid4", "Query": "select * from Customer where DisplayName = 'Smith Family Store'"},
            {"bId": "bid5", "operation": "create", "Customer": {"DisplayName": "Fresh"}},
        ]
    }
    resp = api.post("/batch", body)
    assert resp.status_code == 200
    items = {i["bId"]: i for i in resp.json()["BatchItemResponse"]}
    assert items["bid1"]["Fault"]["Error"][0]["code"] == "6240"
    assert items["bid1"]["Fault"]["type"] == "ValidationFault"
    assert items["bid2"]["Fault"]["Error"][0]["code"] == "610"
    assert items["bid3"]["Fault"]["Error"][0]["code"] == "5010"
    assert items["bid4"]["QueryResponse"]["Customer"][0]["Id"] == existing["Id"]
    assert items["bid5"]["Customer"]["DisplayName"] == "Fresh"
    assert api.query("select count(*) from Customer where DisplayName = 'Fresh'") == {"totalCount": 1}
    counters = api.server.counters(api.realm_id)
    assert counters["batch_calls"] == 1 and counters["batch_items"] == 5


def test_batch_void_delete_and_duplicate_docnumber_option(api: Api) -> None:
    cid = api.create("Customer", customer_body("Batchy"))["Id"]
    a = api.create("Invoice", invoice_body(cid, DocNumber="B-1"))
    b = api.create("Invoice", invoice_body(cid))
    resp = api.post(
        "/batch",
        {
            "BatchItemRequest": [
                {
                    "bId": "1",
                    "operation": "update",
                    "optionsData": "void",
                    "Invoice": {"Id": a["Id"], "SyncToken": "0"},
                },
                {"bId": "2", "operation": "delete", "Invoice": {"Id": b["Id"], "SyncToken": "0"}},
                {"bId": "3", "operation": "create", "Invoice": invoice_body(cid, DocNumber="B-1")},
                {
                    "bId": "4",
                    "operation": "create",
                    "optionsData": "allowduplicatedocnumber",
                    "Invoice": invoice_body(cid, DocNumber="B-1"),
                },
            ]
        },
    )
    items = {i["bId"]: i for i in resp.json()["BatchItemResponse"]}
    assert items["1"]["Invoice"]["PrivateNote"] == "Voided"
    assert items["2"]["Invoice"]["status"] == "Deleted"
    assert items["3"]["Fault"]["Error"][0]["code"] == "6140"
    assert items["4"]["Invoice"]["DocNumber"] == "B-1"


def test_batch_limits(api: Api) -> None:
    too_many = {"BatchItemRequest": [{"bId": str(i), "Query": "select * from Term"} for i in range(31)]}
    err = api.fault(api.post("/batch", too_many))
    assert err["code"] == "1040"
    thirty = {"BatchItemRequest": [{"bId": str(i), "Query": "select * from Term"} for i in range(30)]}
    assert len(api.post("/batch", thirty).json()["BatchItemResponse"]) == 30
    dup = {"BatchItemRequest": [{"bId": "x", "Query": "select * from Term"}] * 2}
    assert api.fault(api.post("/batch", dup))["code"] == "2010"
    no_bid = {"BatchItemRequest": [{"Query": "select * from Term"}]}
    assert api.fault(api.post("/batch", no_bid))["code"] == "2020"


def test_batch_bad_operation_is_item_fault(api: Api) -> None:
    resp = api.post(
        "/batch", {"BatchItemRequest": [{"bId": "1", "operation": "merge", "Customer": {"Id": "1"}}]}
    )
    assert resp.json()["BatchItemResponse"][0]["Fault"]["Error"][0]["code"] == "2170"


def test_requestid_replays_the_original_response(api: Api) -> None:
    rid = str(uuid.uuid4())
    first = api.post("/customer", customer_body("Once Only"), params={"requestid": rid})
    again = api.post("/customer", customer_body("Once Only"), params={"requestid": rid})
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    assert api.query("select count(*) from Customer where DisplayName = 'Once Only'") == {"totalCount": 1}
    assert api.server.counters(api.realm_id)["replays"] == 1
    posts = [e for e in api.server.requests(api.realm_id) if e["requestid"] == rid]
    assert [e["replayed"] for e in posts] == [False, True]


def test_requestid_replays_faults_too(api: Api) -> None:
    rid = uuid.uuid4().hex
    first = api.post("/customer", {"CompanyName": "no name"}, params={"requestid": rid})
    assert first.status_code == 400
    # Same id, now a valid body: the stored fault comes back, nothing is created.
    again = api.post("/customer", customer_body("Valid Now"), params={"requestid": rid})
    assert again.status_code == 400 and again.content == first.content


def test_requestid_mismatch_can_answer_600(api: Api, limits) -> None:
    limits(requestid_mismatch_fault=True)
    rid = uuid.uuid4().hex
    api.post("/customer", customer_body("First"), params={"requestid": rid})
    err = api.fault(api.post("/customer", customer_body("Second"), params={"requestid": rid}))
    assert err["code"] == "600"


def test_requestid_is_per_realm(api: Api, sandbox) -> None:
    rid = uuid.uuid4().hex
    api.post("/customer", customer_body("Realm A"), params={"requestid": rid})
    other = sandbox.create_realm()
    token = sandbox.issue_tokens(other)["access_token"]
    with sandbox.api(other, token) as client:
        resp = client.post("/customer", json=customer_body("Realm A"), params={"requestid": rid})
        assert resp.status_code == 200
        assert resp.json()["Customer"]["DisplayName"] == "Realm A"


def test_requestid_max_lengths(api: Api) -> None:
    err = api.fault(api.post("/customer", customer_body("Long"), params={"requestid": "r" * 51}))
    assert err["code"] == "2050"
    assert api.post("/customer", customer_body("Fifty"), params={"requestid": "r" * 50}).status_code == 200
    batch = {"BatchItemRequest": [{"bId": "1", "Query": "select * from Term"}]}
    assert api.fault(api.post("/batch", batch, params={"requestid": "b" * 37}))["code"] == "2050"
    long_bid = {"BatchItemRequest": [{"bId": "b" * 11, "Query": "select * from Term"}]}
    assert api.fault(api.post("/batch", long_bid, params={"requestid": "b" * 36}))["code"] == "2050"


def test_requestid_batch_replay(api: Api) -> None:
    rid = uuid.uuid4().hex[:30]
    body = {
        "BatchItemRequest": [{"bId": "1", "operation": "create", "Customer": {"DisplayName": "Batch Once"}}]
    }
    first = api.post("/batch", body, params={"requestid": rid})
    again = api.post("/batch", body, params={"requestid": rid})
    assert first.content == again.content
    assert api.query("select count(*) from Customer where DisplayName = 'Batch Once'") == {"totalCount": 1}


def test_requestid_retention_window(api: Api, limits) -> None:
    limits(requestid_retention_seconds=0.0)
    rid = uuid.uuid4().hex
    api.post("/customer", customer_body("Forgotten"), params={"requestid": rid})
    err = api.fault(api.post("/customer", customer_body("Forgotten"), params={"requestid": rid}))
    assert err["code"] == "6240"  # executed again, so the name now collides


def test_throttled_requests_are_not_cached(api: Api) -> None:
    rid = uuid.uuid4().hex
    api.server.inject_fault(api.realm_id, "429", operation="create")
    first = api.post("/customer", customer_body("After 429"), params={"requestid": rid})
    assert first.status_code == 429
    retry = api.post("/customer", customer_body("After 429"), params={"requestid": rid})
    assert retry.status_code == 200


def test_get_with_requestid_just_executes(api: Api) -> None:
    resp = api.get(f"/companyinfo/{api.realm_id}", params={"requestid": "r1"})
    assert resp.status_code == 200


def test_batch_items_do_not_see_each_other(api: Api, limits) -> None:
    body = {
        "BatchItemRequest": [
            {"bId": "c", "operation": "create", "Customer": {"DisplayName": "Batch Parent"}},
            {"bId": "q", "Query": "select * from Customer where DisplayName = 'Batch Parent'"},
        ]
    }
    items = {i["bId"]: i for i in api.post("/batch", body).json()["BatchItemResponse"]}
    new_id = items["c"]["Customer"]["Id"]
    assert items["q"]["QueryResponse"] == {}
    follow = {
        "BatchItemRequest": [
            {"bId": "c2", "operation": "create", "Customer": {"DisplayName": "Second"}},
            {"bId": "i", "operation": "create", "Invoice": invoice_body(str(int(new_id) + 1))},
        ]
    }
    items = {i["bId"]: i for i in api.post("/batch", follow).json()["BatchItemResponse"]}
    assert items["i"]["Fault"]["Error"][0]["code"] == "2500"
    # After the batch, the objects are ordinary.
    assert api.create("Invoice", invoice_body(items["c2"]["Customer"]["Id"]))["TotalAmt"] == 100.0
    limits(batch_items_isolated=False)
    again = {
        "BatchItemRequest": [
            {"bId": "c3", "operation": "create", "Customer": {"DisplayName": "Third"}},
            {"bId": "q", "Query": "select * from Customer where DisplayName = 'Third'"},
        ]
    }
    items = {i["bId"]: i for i in api.post("/batch", again).json()["BatchItemResponse"]}
    assert items["q"]["QueryResponse"]["maxResults"] == 1


def test_requestid_cache_forgets_oldest_beyond_its_size(api: Api, limits) -> None:
    limits(requestid_max_entries=2)
    for i in range(3):
        api.post("/customer", customer_body(f"Cached {i}"), params={"requestid": f"cap-{i}"})
    newest = api.post("/customer", customer_body("Cached 2"), params={"requestid": "cap-2"})
    assert newest.status_code == 200  # still replayed
    oldest = api.post("/customer", customer_body("Cached 0"), params={"requestid": "cap-0"})
    assert api.fault(oldest)["code"] == "6240"  # forgotten, so executed again


def test_requestid_replay_can_carry_a_new_time(api: Api, limits) -> None:
    limits(requestid_replay_new_time=True)
    rid = uuid.uuid4().hex
    first = api.post("/customer", customer_body("Fresh Time"), params={"requestid": rid}).json()
    time.sleep(0.01)
    again = api.post("/customer", customer_body("Fresh Time"), params={"requestid": rid}).json()
    assert again["Customer"] == first["Customer"] and again["time"] != first["time"]

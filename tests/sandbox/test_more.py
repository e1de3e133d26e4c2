"""Smaller behaviours: renames, send/PDF, token expiry through the API, replays across restarts."""

from __future__ import annotations

import uuid

from qbo_sandbox.config import SandboxConfig
from qbo_sandbox.testing import SandboxServer

from .conftest import Api, customer_body, invoice_body


def test_parent_rename_updates_children_fully_qualified_name(api: Api) -> None:
    parent = api.create("Customer", customer_body("Old Parent"))
    child = api.create("Customer", {"DisplayName": "Kid", "ParentRef": {"value": parent["Id"]}, "Job": True})
    grandchild = api.create(
        "Customer", {"DisplayName": "Grand", "ParentRef": {"value": child["Id"]}, "Job": True}
    )
    api.create(
        "Customer", {"Id": parent["Id"], "SyncToken": "0", "sparse": True, "DisplayName": "New Parent"}
    )
    assert api.read("Customer", child["Id"])["FullyQualifiedName"] == "New Parent:Kid"
    assert api.read("Customer", grandchild["Id"])["FullyQualifiedName"] == "New Parent:Kid:Grand"


def test_sub_customer_depth_limit(api: Api) -> None:
    parent_id = api.create("Customer", customer_body("L0"))["Id"]
    for level in range(1, 5):
        parent_id = api.create("Customer", {"DisplayName": f"L{level}", "ParentRef": {"value": parent_id}})[
            "Id"
        ]
    too_deep = api.post("/customer", {"DisplayName": "L5", "ParentRef": {"value": parent_id}})
    assert api.fault(too_deep)["code"] == "6000"


def test_deactivating_customer_with_balance_fails(api: Api) -> None:
    cust = api.create("Customer", customer_body("Owes"))
    api.create("Invoice", invoice_body(cust["Id"]))
    resp = api.post("/customer", {"Id": cust["Id"], "SyncToken": "0", "sparse": True, "Active": False})
    err = api.fault(resp)
    assert err["code"] == "6000" and "Delete List Has Balance" in err["Detail"]


def test_send_invoice_and_pdf(api: Api) -> None:
    cust = api.create("Customer", customer_body("Mailme"))
    inv = api.create("Invoice", invoice_body(cust["Id"]))
    assert api.fault(api.post(f"/invoice/{inv['Id']}/send"))["code"] == "2020"
    resp = api.post(f"/invoice/{inv['Id']}/send", params={"sendTo": "ap@example.com"})
    sent = resp.json()["Invoice"]
    assert sent["EmailStatus"] == "EmailSent" and sent["BillEmail"]["Address"] == "ap@example.com"
    assert sent["DeliveryInfo"]["DeliveryType"] == "Email" and sent["SyncToken"] == "1"
    pdf = api.get(f"/invoice/{inv['Id']}/pdf", headers={"Accept": "application/pdf"})
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and pdf.content.rstrip().endswith(b"%%EOF")


def test_expired_access_token_is_401(api: Api) -> None:
    oauth = api.server.sandbox.oauth
    oauth.advance_clock(3601)
    try:
        resp = api.get("/term/1")
        assert resp.status_code == 401
        assert resp.json()["fault"]["error"][0]["detail"] == "Token expired"
    finally:
        oauth.advance_clock(-3601)
    assert api.get("/term/1").status_code == 200


def test_revoked_via_control_plane(api: Api) -> None:
    api.server._call("POST", f"/_sandbox/realms/{api.realm_id}/revoke", json={})
    assert api.get("/term/1").status_code == 401


def test_requestid_replay_survives_restart(tmp_path) -> None:
    state = str(tmp_path / "state.json")
    rid = str(uuid.uuid4())
    with SandboxServer(SandboxConfig(throttling_enabled=False), state_file=state) as first:
        realm = first.create_realm()
        token = first.issue_tokens(realm)["access_token"]
        with first.api(realm, token) as client:
            original = client.post("/customer", json=customer_body("Once"), params={"requestid": rid})
    second = SandboxServer(SandboxConfig(throttling_enabled=False), state_file=state)
    with second, second.api(realm, token) as client:
        replay = client.post("/customer", json=customer_body("Once"), params={"requestid": rid})
        assert replay.content == original.content
        count = client.get("/query", params={"query": "select count(*) from Customer"}).json()
        assert count["QueryResponse"]["totalCount"] == 1


def test_many_realms_are_independent(sandbox: SandboxServer) -> None:
    realms = [sandbox.create_realm() for _ in range(5)]
    for realm in realms:
        with sandbox.api(realm, sandbox.issue_tokens(realm)["access_token"]) as client:
            assert client.post("/customer", json=customer_body("Same Name Everywhere")).status_code == 200


def test_deposited_payment_cannot_change(sample: Api) -> None:
    pay = sample.read("Payment", "31")  # on Deposit 102 in the sample company
    resp = sample.post(
        "/payment", {"Id": "31", "SyncToken": pay["SyncToken"], "sparse": True, "PrivateNote": "x"}
    )
    err = sample.fault(resp)
    assert err["code"] == "6540"
    resp = sample.post(
        "/payment", {"Id": "31", "SyncToken": pay["SyncToken"]}, params={"operation": "delete"}
    )
    assert sample.fault(resp)["code"] == "6540"


def test_closed_books_lock_old_transactions(api: Api) -> None:
    cust = api.create("Customer", customer_body("Closed Books"))
    old = api.create("Invoice", invoice_body(cust["Id"], TxnDate="2026-01-15"))
    prefs = api.get("/preferences").json()["Preferences"]
    body = {
        "Id": prefs["Id"],
        "SyncToken": prefs["SyncToken"],
        "sparse": True,
        "AccountingInfoPrefs": {**prefs["AccountingInfoPrefs"], "BookCloseDate": "2026-01-31"},
    }
    assert api.post("/preferences", body).status_code == 200
    err = api.fault(api.post("/invoice", invoice_body(cust["Id"], TxnDate="2026-01-20")))
    assert err["code"] == "6210"
    resp = api.post("/invoice", {"Id": old["Id"], "SyncToken": "0"}, params={"operation": "delete"})
    assert api.fault(resp)["code"] == "6210"
    assert api.create("Invoice", invoice_body(cust["Id"], TxnDate="2026-02-01"))["TxnDate"] == "2026-02-01"

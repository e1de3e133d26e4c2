"""Merges (qbo_sandbox/merge.py): QBO merges name-list records only in its own UI; the sandbox offers
them on the control plane and the CLI. What moves, what is refused, and how CDC shows it."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from qbo_sandbox import clock
from qbo_sandbox.config import SandboxConfig
from qbo_sandbox.store import Realm
from qbo_sandbox.testing import SandboxServer

from .conftest import Api, customer_body, invoice_body


def _merge(api: Api, entity: str, from_id: str, into_id: str) -> Any:
    return api.server.client.post(
        f"/_sandbox/realms/{api.realm_id}/merge",
        json={"entity": entity, "from_id": from_id, "into_id": into_id},
    )


def _pay(api: Api, customer_id: str, invoice_id: str, amount: float) -> dict[str, Any]:
    return api.create(
        "Payment",
        {
            "CustomerRef": {"value": customer_id},
            "TotalAmt": amount,
            "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}],
        },
    )


def test_merge_moves_transactions_and_deletes_the_loser(api: Api) -> None:
    loser = api.create("Customer", customer_body("Acme Ltd"))
    keep = api.create("Customer", customer_body("Acme Limited"))
    inv_a = api.create("Invoice", invoice_body(loser["Id"], 100.0))
    pay_a = _pay(api, loser["Id"], inv_a["Id"], 40.0)
    inv_b = api.create("Invoice", invoice_body(keep["Id"], 50.0))
    assert api.read("Customer", loser["Id"])["Balance"] == 60.0
    # CDC stamps carry whole seconds: start the window after everything above.
    time.sleep(1.05)
    since = clock.meta_stamp(clock.now())

    result = api.server.merge(api.realm_id, "Customer", loser["Id"], keep["Id"])

    assert result["entity"] == "Customer" and result["deleted_id"] == loser["Id"]
    inv_a_before = api.server.read(api.realm_id, "Invoice", inv_a["Id"])
    assert sorted((m["entity"], m["Id"]) for m in result["moved"]) == sorted(
        [("Invoice", inv_a["Id"]), ("Payment", pay_a["Id"])]
    )
    survivor = api.read("Customer", keep["Id"])
    assert survivor == result["survivor"]
    assert (survivor["Balance"], survivor["BalanceWithJobs"]) == (110.0, 110.0)
    assert survivor["SyncToken"] == str(int(keep["SyncToken"]) + 1)
    # The loser's invoice and payment now belong to the survivor, under its name.
    moved_inv = api.read("Invoice", inv_a["Id"])
    assert moved_inv == inv_a_before
    assert moved_inv["CustomerRef"] == {"value": keep["Id"], "name": "Acme Limited"}
    assert (moved_inv["Balance"], moved_inv["SyncToken"]) == (60.0, "2")  # 0, payment applied, merge
    moved_pay = api.read("Payment", pay_a["Id"])
    assert moved_pay["CustomerRef"] == {"value": keep["Id"], "name": "Acme Limited"}
    assert moved_pay["SyncToken"] == "1"
    assert api.read("Invoice", inv_b["Id"])["SyncToken"] == "0"  # the survivor's own: untouched
    # The loser is gone: reads answer 610, no query finds it, not even among inactive records.
    gone = api.fault(api.get(f"/customer/{loser['Id']}"))
    assert gone["code"] == "610"
    assert api.query(f"select * from Customer where Id = '{loser['Id']}'") == {}
    inactive = api.query("select * from Customer where Active = false")
    assert loser["Id"] not in [c["Id"] for c in inactive.get("Customer", [])]
    assert api.query(f"select * from Invoice where CustomerRef = '{loser['Id']}'") == {}
    # CDC: the loser comes back as deleted (reported, qbo-api.md §9.4), the survivor and the moved
    # transactions as changed.
    cdc = api.get("/cdc", params={"entities": "Customer,Invoice,Payment", "changedSince": since}).json()
    customers, invoices, payments = cdc["CDCResponse"][0]["QueryResponse"]
    by_id = {c["Id"]: c for c in customers["Customer"]}
    assert by_id[keep["Id"]] == survivor
    assert by_id[loser["Id"]] == {
        "Id": loser["Id"],
        "status": "Deleted",
        "domain": "QBO",
        "MetaData": {"LastUpdatedTime": survivor["MetaData"]["LastUpdatedTime"]},
    }
    assert [i["Id"] for i in invoices["Invoice"]] == [inv_a["Id"]]
    assert [p["Id"] for p in payments["Payment"]] == [pay_a["Id"]]
    # Its name is free again (in QBO the loser took the survivor's name to merge).
    assert api.create("Customer", customer_body("Acme Ltd"))["DisplayName"] == "Acme Ltd"


def test_merge_moves_sub_customers_and_their_balances(api: Api) -> None:
    parent = api.create("Customer", customer_body("Old Parent"))
    child = api.create("Customer", customer_body("Job", ParentRef={"value": parent["Id"]}))
    grandchild = api.create("Customer", customer_body("Phase", ParentRef={"value": child["Id"]}))
    api.create("Invoice", invoice_body(grandchild["Id"], 30.0))
    keep = api.create("Customer", customer_body("New Parent"))
    assert api.read("Customer", parent["Id"])["BalanceWithJobs"] == 30.0

    api.server.merge(api.realm_id, "Customer", parent["Id"], keep["Id"])

    moved = api.read("Customer", child["Id"])
    assert moved["ParentRef"] == {"value": keep["Id"], "name": "New Parent"}
    assert (moved["FullyQualifiedName"], moved["Level"]) == ("New Parent:Job", 1)
    deeper = api.read("Customer", grandchild["Id"])
    assert (deeper["FullyQualifiedName"], deeper["Level"]) == ("New Parent:Job:Phase", 2)
    survivor = api.read("Customer", keep["Id"])
    assert (survivor["Balance"], survivor["BalanceWithJobs"]) == (0, 30.0)


def test_merge_items_and_accounts_moves_their_references(api: Api) -> None:
    cust = api.create("Customer", customer_body("Item Buyer"))
    old_item = api.create(
        "Item", {"Name": "Bookkeeping (old)", "Type": "Service", "IncomeAccountRef": {"value": "1"}}
    )
    inv = api.create("Invoice", invoice_body(cust["Id"], 20.0, item_id=old_item["Id"]))
    api.server.merge(api.realm_id, "Item", old_item["Id"], "1")
    line = api.read("Invoice", inv["Id"])["Line"][0]["SalesItemLineDetail"]
    assert line["ItemRef"] == {"value": "1", "name": "Services"}
    assert api.fault(api.get(f"/item/{old_item['Id']}"))["code"] == "610"

    income = api.create(
        "Account", {"Name": "Fees (old)", "AccountType": "Income", "AccountSubType": "ServiceFeeIncome"}
    )
    item = api.create(
        "Item", {"Name": "Audit", "Type": "Service", "IncomeAccountRef": {"value": income["Id"]}}
    )
    api.server.merge(api.realm_id, "Account", income["Id"], "1")
    moved = api.read("Item", item["Id"])
    assert moved["IncomeAccountRef"]["value"] == "1"
    assert moved["SyncToken"] == "1"


@pytest.mark.parametrize(
    ("case", "field", "message"),
    [
        ("itself", "into_id", "a customer can't be merged into itself"),
        ("unknown_from", "from_id", "there is no Customer 999999"),
        ("unknown_into", "into_id", "there is no Customer 999999"),
        ("inactive_into", "into_id", "is inactive; make it active before merging into it"),
        ("into_own_job", "into_id", "is a sub-customer of Customer"),
        ("invoice", "entity", "Invoice can't be merged; QuickBooks merges Customer, Vendor, Employee, Item"),
        ("already", "from_id", "was already merged into Customer"),
        ("account_type", "into_id", "accounts of different type can't be merged (Bank and Income)"),
        ("item_type", "into_id", "items of different type can't be merged (NonInventory and Service)"),
        ("missing", "into_id", "say which customer to keep (into_id)"),
    ],
)
def test_merge_refusals_change_nothing(api: Api, case: str, field: str, message: str) -> None:
    a = api.create("Customer", customer_body(f"A {case}"))
    b = api.create("Customer", customer_body(f"B {case}"))
    entity, from_id, into_id = "Customer", a["Id"], b["Id"]
    if case == "itself":
        into_id = a["Id"]
    elif case == "unknown_from":
        from_id = "999999"
    elif case == "unknown_into":
        into_id = "999999"
    elif case == "inactive_into":
        api.create("Customer", {"Id": b["Id"], "SyncToken": "0", "sparse": True, "Active": False})
    elif case == "into_own_job":
        into_id = api.create("Customer", customer_body(f"Job {case}", ParentRef={"value": a["Id"]}))["Id"]
    elif case == "invoice":
        entity, from_id = "Invoice", api.create("Invoice", invoice_body(a["Id"]))["Id"]
    elif case == "already":
        api.server.merge(api.realm_id, "Customer", a["Id"], b["Id"])
    elif case == "account_type":
        entity, from_id, into_id = "Account", "3", "1"  # Checking into Services income
    elif case == "item_type":
        entity, into_id = "Item", "1"
        from_id = api.create(
            "Item", {"Name": f"Box {case}", "Type": "NonInventory", "IncomeAccountRef": {"value": "1"}}
        )["Id"]
    elif case == "missing":
        into_id = ""
    before = json.dumps(api.server.sandbox.realms[api.realm_id].data, sort_keys=True)
    resp = _merge(api, entity, from_id, into_id)
    assert resp.status_code == 400, resp.text
    assert resp.json()["field"] == field
    assert message in resp.json()["error"]
    assert json.dumps(api.server.sandbox.realms[api.realm_id].data, sort_keys=True) == before


def test_merge_endpoint_checks_its_body(api: Api) -> None:
    client = api.server.client
    assert client.post("/_sandbox/realms/1/merge", json={}).status_code == 404
    bad = client.post(f"/_sandbox/realms/{api.realm_id}/merge", json={"entity": "Customer", "from_id": ["1"]})
    assert bad.status_code == 400 and bad.json()["field"] == "from_id"
    not_json = client.post(f"/_sandbox/realms/{api.realm_id}/merge", content=b"merge please")
    assert not_json.status_code == 400


def test_merge_with_a_control_token() -> None:
    with SandboxServer(SandboxConfig(throttling_enabled=False), control_token="s3cret") as server:
        realm = server.create_realm()
        ids = server.bulk_insert(realm, "Customer", [{"DisplayName": "T1"}, {"DisplayName": "T2"}])
        import httpx

        refused = httpx.post(
            f"{server.url}/_sandbox/realms/{realm}/merge",
            json={"entity": "Customer", "from_id": ids[0], "into_id": ids[1]},
        )
        assert refused.status_code == 401
        assert server.merge(realm, "Customer", ids[0], ids[1])["deleted_id"] == ids[0]


def test_cli_merge(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    from qbo_sandbox import cli

    a = api.create("Customer", customer_body("CLI loser"))
    b = api.create("Customer", customer_body("CLI keeper"))
    cli.main(
        ["merge", "--realm", api.realm_id, "--from", a["Id"], "--into", b["Id"], "--url", api.server.url]
    )
    out = json.loads(capsys.readouterr().out)
    assert (out["deleted_id"], out["survivor"]["Id"]) == (a["Id"], b["Id"])
    with pytest.raises(SystemExit) as again:
        cli.main(
            ["merge", "--realm", api.realm_id, "--from", a["Id"], "--into", b["Id"], "--url", api.server.url]
        )
    assert "400" in str(again.value) and "already merged" in str(again.value)


def test_merged_records_survive_a_snapshot(api: Api) -> None:
    a = api.create("Customer", customer_body("Snap loser"))
    b = api.create("Customer", customer_body("Snap keeper"))
    api.server.merge(api.realm_id, "Customer", a["Id"], b["Id"])
    realm = api.server.sandbox.realms[api.realm_id]
    again = Realm.from_dict(json.loads(json.dumps(realm.to_dict())), realm.config)
    assert again.merged == {"Customer": {a["Id"]: b["Id"]}}
    assert again.tombstones["Customer"][a["Id"]]["status"] == "Deleted"

"""Faults aimed at one item of a batch (issue 8 item 13; qbo_sandbox/batch_faults.py)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from qbo_sandbox import cli
from qbo_sandbox.testing import SandboxServer

from .conftest import Api


def _batch(*names: str) -> dict[str, Any]:
    return {
        "BatchItemRequest": [
            {"bId": f"b{i}", "operation": "create", "Customer": {"DisplayName": name}}
            for i, name in enumerate(names, 1)
        ]
    }


def _send(api: Api, body: dict[str, Any], requestid: str | None = None) -> dict[str, dict[str, Any]]:
    params = {"minorversion": "75", **({"requestid": requestid} if requestid else {})}
    resp = api.post("/batch", body, params=params)
    assert resp.status_code == 200, resp.text
    return {a["bId"]: a for a in resp.json()["BatchItemResponse"]}


def _count(api: Api, name: str) -> int:
    return int(
        api.server.query(api.realm_id, f"select count(*) from Customer where DisplayName = '{name}'")[
            "totalCount"
        ]
    )


def test_validation_fault_on_one_item_by_position(api: Api) -> None:
    api.server.inject_batch_item_fault(api.realm_id, "item_fault", item=2, code="6240")
    answers = _send(api, _batch("Alpha", "Beta", "Gamma"))
    assert set(answers) == {"b1", "b2", "b3"}
    assert answers["b1"]["Customer"]["DisplayName"] == "Alpha"
    fault = answers["b2"]["Fault"]
    assert fault["type"] == "ValidationFault"
    assert fault["Error"][0]["code"] == "6240"
    assert fault["Error"][0]["Message"] == "Duplicate Name Exists Error"
    assert answers["b3"]["Customer"]["DisplayName"] == "Gamma"
    assert (_count(api, "Alpha"), _count(api, "Beta"), _count(api, "Gamma")) == (1, 0, 1)
    # count=1: the next batch is untouched.
    again = _send(api, _batch("Delta", "Beta"))
    assert again["b2"]["Customer"]["DisplayName"] == "Beta"
    assert api.server.counters(api.realm_id)["faults_injected"] == 1


def test_system_fault_by_bid_not_committed_then_retry_with_same_requestid_runs_it_once(api: Api) -> None:
    api.server.inject_batch_item_fault(api.realm_id, "item_500", bid="b1")
    rid = str(uuid.uuid4())
    body = _batch("Kilo", "Lima")
    first = _send(api, body, rid)
    assert first["b1"]["Fault"]["type"] == "SystemFault"
    assert first["b1"]["Fault"]["Error"][0]["code"] == "10000"
    assert first["b2"]["Customer"]["DisplayName"] == "Lima"
    assert (_count(api, "Kilo"), _count(api, "Lima")) == (0, 1)
    # The same batch and requestid again: the item that never ran runs now; Lima is not re-created.
    second = _send(api, body, rid)
    assert second["b1"]["Customer"]["DisplayName"] == "Kilo"
    assert second["b2"] == first["b2"]
    third = _send(api, body, rid)
    assert third["b1"] == second["b1"]
    assert (_count(api, "Kilo"), _count(api, "Lima")) == (1, 1)


def test_unanswered_but_committed_item_is_the_dangerous_case(api: Api) -> None:
    api.server.inject_batch_item_fault(api.realm_id, "item_unanswered", item=1, committed=True)
    rid = str(uuid.uuid4())
    body = _batch("Mike", "November")
    first = _send(api, body, rid)
    assert set(first) == {"b2"}  # b1 is missing from BatchItemResponse
    assert _count(api, "Mike") == 1  # ... yet it was written
    # The same requestid learns the real outcome and writes nothing more.
    replay = _send(api, body, rid)
    assert replay["b1"]["Customer"]["DisplayName"] == "Mike"
    assert replay["b2"] == first["b2"]
    assert (_count(api, "Mike"), _count(api, "November")) == (1, 1)
    # A client that re-sends under a new requestid duplicates nothing only thanks to 6240 for customers.
    fresh = _send(api, _batch("Mike"), str(uuid.uuid4()))
    assert fresh["b1"]["Fault"]["Error"][0]["code"] == "6240"


def test_unanswered_not_committed_item_is_not_written(api: Api) -> None:
    api.server.inject_batch_item_fault(api.realm_id, "item_unanswered", bid="b2")
    first = _send(api, _batch("Oscar", "Papa"))
    assert set(first) == {"b1"}
    assert (_count(api, "Oscar"), _count(api, "Papa")) == (1, 0)
    log = api.server.requests(api.realm_id)[-1]
    assert log["operation"] == "batch" and log["status"] == 200


def test_committed_system_fault_and_count_over_several_batches(api: Api) -> None:
    api.server.inject_batch_item_fault(api.realm_id, "item_500", item=1, committed=True, count=2)
    a = _send(api, _batch("Quebec"))
    b = _send(api, _batch("Romeo"))
    c = _send(api, _batch("Sierra"))
    assert a["b1"]["Fault"]["type"] == "SystemFault" and b["b1"]["Fault"]["type"] == "SystemFault"
    assert c["b1"]["Customer"]["DisplayName"] == "Sierra"
    assert (_count(api, "Quebec"), _count(api, "Romeo"), _count(api, "Sierra")) == (1, 1, 1)


def test_item_filters_on_entity_and_operation(api: Api) -> None:
    api.server.inject_batch_item_fault(
        api.realm_id, "item_fault", item=1, code="6000", entity="Invoice", operation="create"
    )
    answers = _send(api, _batch("Tango"))
    assert answers["b1"]["Customer"]["DisplayName"] == "Tango"  # not an Invoice: untouched
    faults = api.server.client.get(f"/_sandbox/realms/{api.realm_id}/faults").json()["faults"]
    assert [(f["kind"], f["item"], f["count"]) for f in faults] == [("item_fault", 1, 1)]


def test_item_faults_leave_plain_requests_alone(api: Api) -> None:
    api.server.inject_batch_item_fault(api.realm_id, "item_500", item=1)
    assert api.create("Customer", {"DisplayName": "Uniform"})["DisplayName"] == "Uniform"
    assert _send(api, _batch("Victor"))["b1"]["Fault"]["type"] == "SystemFault"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"kind": "item_500"}, "item"),
        ({"kind": "item_500", "item": 1, "bid": "x"}, "item"),
        ({"kind": "item_500", "item": 0}, "item"),
        ({"kind": "item_500", "item": "first"}, "item"),
        ({"kind": "item_fault", "item": 1, "committed": True}, "committed"),
        ({"kind": "item_unanswered", "bid": "b1", "committed": "maybe"}, "committed"),
        ({"kind": "503", "item": 1}, "item"),
        ({"kind": "item_500", "item": 1, "count": "many"}, "count"),
        ({"kind": "item_explode", "item": 1}, "kind"),
    ],
)
def test_bad_item_fault_specs_name_the_field(
    sandbox: SandboxServer, spec: dict[str, Any], field: str
) -> None:
    realm = sandbox.create_realm()
    resp = httpx.post(f"{sandbox.url}/_sandbox/realms/{realm}/faults", json=spec)
    assert resp.status_code == 400
    assert resp.json()["field"] == field
    assert sandbox.client.get(f"/_sandbox/realms/{realm}/faults").json()["faults"] == []


def test_cli_injects_a_batch_item_fault(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    url = api.server.url
    cli.main(
        [
            "fault",
            "--realm",
            api.realm_id,
            "--kind",
            "item_unanswered",
            "--bid",
            "b1",
            "--committed",
            "--url",
            url,
        ]
    )
    rule = json.loads(capsys.readouterr().out)
    assert (rule["kind"], rule["bid"], rule["committed"], rule["item"]) == (
        "item_unanswered",
        "b1",
        True,
        None,
    )
    assert _send(api, _batch("Whiskey", "Xray")).keys() == {"b2"}
    assert _count(api, "Whiskey") == 1
    cli.main(
        [
            "fault",
            "--realm",
            api.realm_id,
            "--kind",
            "item_fault",
            "--item",
            "1",
            "--code",
            "6140",
            "--url",
            url,
        ]
    )
    capsys.readouterr()
    assert _send(api, _batch("Yankee"))["b1"]["Fault"]["Error"][0]["code"] == "6140"


def test_pending_items_survive_a_snapshot_restart(tmp_path: Any) -> None:
    state = str(tmp_path / "state.json")
    rid = str(uuid.uuid4())
    body = _batch("Zulu", "Echo")
    with SandboxServer(state_file=state) as first:
        realm = first.create_realm()
        token = first.issue_tokens(realm)["access_token"]
        first.inject_batch_item_fault(realm, "item_500", item=1)
        api = Api(first, realm, token)
        assert _send(api, body, rid)["b1"]["Fault"]["type"] == "SystemFault"
        first.snapshot()
    with SandboxServer(state_file=state) as second:
        token = second.issue_tokens(realm)["access_token"]
        api = Api(second, realm, token)
        answers = _send(api, body, rid)
        assert answers["b1"]["Customer"]["DisplayName"] == "Zulu"
        assert (_count(api, "Zulu"), _count(api, "Echo")) == (1, 1)

"""Control plane under /_sandbox/, snapshots across restarts, the CLI, and webhook hand-off."""

from __future__ import annotations

import json

import httpx
import pytest

from qbo_sandbox import cli
from qbo_sandbox.config import SandboxConfig
from qbo_sandbox.testing import SandboxServer

from .conftest import Api, customer_body


def test_realm_lifecycle(sandbox: SandboxServer) -> None:
    realm = sandbox.create_realm(seed="empty", name="Lifecycle Co")
    listed = sandbox._call("GET", "/_sandbox/realms")["realms"]
    entry = next(r for r in listed if r["realm_id"] == realm)
    assert entry["company_name"] == "Lifecycle Co" and entry["seed"] == "empty"
    token = sandbox.issue_tokens(realm)["access_token"]
    with sandbox.api(realm, token) as client:
        assert client.get(f"/companyinfo/{realm}").json()["CompanyInfo"]["CompanyName"] == "Lifecycle Co"
        client.post("/customer", json=customer_body("Temp"))
        sandbox.reset_realm(realm)
        count = client.get("/query", params={"query": "select count(*) from Customer"}).json()
        assert count["QueryResponse"]["totalCount"] == 0
        sandbox.delete_realm(realm)
        assert client.get(f"/companyinfo/{realm}").status_code in (401, 403)
    with pytest.raises(RuntimeError):
        sandbox.create_realm(seed="nope")


def test_explicit_realm_id(sandbox: SandboxServer) -> None:
    assert sandbox.create_realm(realm_id="4620816365000000001") == "4620816365000000001"


def test_bulk_insert_validates_like_the_api(api: Api) -> None:
    resp = api.server.client.post(
        f"/_sandbox/realms/{api.realm_id}/bulk/Customer",
        json=[customer_body("B1"), {"CompanyName": "nameless"}, customer_body("b1"), customer_body("B2")],
    )
    data = resp.json()
    assert data["created"] == 2
    assert [(e["index"], e["Fault"]["Error"][0]["code"]) for e in data["errors"]] == [
        (1, "2020"),
        (2, "6240"),
    ]
    assert api.server.counters(api.realm_id)["operations"] == 0  # not metered
    with pytest.raises(RuntimeError):
        api.server.bulk_insert(api.realm_id, "Customer", [customer_body("B1")])


def test_bulk_insert_is_fast_enough_for_thousands(api: Api) -> None:
    ids = api.server.bulk_insert(
        api.realm_id, "Customer", [{"DisplayName": f"Bulk {i}"} for i in range(3000)]
    )
    assert len(ids) == 3000
    assert api.query("select count(*) from Customer")["totalCount"] == 3000


def test_config_endpoint(sandbox: SandboxServer, limits) -> None:
    cfg = sandbox.set_config(requests_per_minute=7)
    assert cfg["requests_per_minute"] == 7
    resp = sandbox.client.post("/_sandbox/config", json={"no_such_knob": 1})
    assert resp.status_code == 400
    assert sandbox.client.get("/_sandbox/config").json()["requests_per_minute"] == 7


def test_request_log(api: Api) -> None:
    api.post("/customer", customer_body("Logged"), params={"requestid": "log-1"})
    api.get("/customer/999")
    entries = api.server.requests(api.realm_id)[-2:]
    assert [(e["method"], e["operation"], e["entity"], e["status"]) for e in entries] == [
        ("POST", "create", "Customer", 200),
        ("GET", "read", "Customer", 400),
    ]
    assert entries[0]["requestid"] == "log-1" and entries[0]["tid"]


def test_app_registration_and_tokens_for_it(sandbox: SandboxServer) -> None:
    client_id, secret = sandbox.register_app(redirect_uris=["http://localhost/cb"], webhook_url=None)
    assert client_id and secret
    realm = sandbox.create_realm()
    tokens = sandbox.issue_tokens(realm, client_id=client_id)
    assert {"access_token", "refresh_token", "expires_in", "x_refresh_token_expires_in"} <= set(tokens)
    with sandbox.api(realm, tokens["access_token"]) as api:
        assert api.get("/preferences").status_code == 200


def test_snapshot_survives_restart(tmp_path) -> None:
    state = str(tmp_path / "state.json")
    config = SandboxConfig(throttling_enabled=False)
    with SandboxServer(config, state_file=state) as first:
        realm = first.create_realm(seed="sample-us")
        tokens = first.issue_tokens(realm)
        with first.api(realm, tokens["access_token"]) as api:
            cust = api.post("/customer", json=customer_body("Persisted")).json()["Customer"]
            inv = api.post(
                "/invoice",
                json={
                    "CustomerRef": {"value": cust["Id"]},
                    "Line": [
                        {
                            "DetailType": "SalesItemLineDetail",
                            "Amount": 9,
                            "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
                        }
                    ],
                },
            ).json()["Invoice"]
            api.post("/invoice", json={"Id": inv["Id"], "SyncToken": "0"}, params={"operation": "delete"})
    with SandboxServer(SandboxConfig(throttling_enabled=False), state_file=state) as second:
        with second.api(realm, tokens["access_token"]) as api:
            assert api.get(f"/customer/{cust['Id']}").json()["Customer"]["DisplayName"] == "Persisted"
            assert (
                api.post("/customer", json=customer_body("persisted")).json()["Fault"]["Error"][0]["code"]
                == "6240"
            )
            assert int(api.post("/customer", json=customer_body("Next")).json()["Customer"]["Id"]) > int(
                cust["Id"]
            )
            assert api.get(f"/invoice/{inv['Id']}").status_code == 400
        second.snapshot()
    with open(state) as fh:
        assert json.load(fh)["realms"][realm]["realm_id"] == realm


def test_writes_are_handed_to_webhooks(api: Api) -> None:
    seen: list[tuple] = []
    dispatcher = api.server.sandbox.webhooks
    original = dispatcher.entity_changed
    dispatcher.entity_changed = lambda *a: seen.append(a)  # type: ignore[method-assign]
    try:
        cust = api.create("Customer", customer_body("Hooked"))
        api.create("Customer", {"Id": cust["Id"], "SyncToken": "0", "sparse": True, "Notes": "x"})
        api.create("Customer", {"Id": cust["Id"], "SyncToken": "1", "sparse": True, "Active": False})
        inv = api.create(
            "Invoice",
            {
                "CustomerRef": {"value": api.create("Customer", customer_body("H2"))["Id"]},
                "Line": [
                    {
                        "DetailType": "SalesItemLineDetail",
                        "Amount": 1,
                        "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
                    }
                ],
            },
        )
        api.post("/invoice", {"Id": inv["Id"], "SyncToken": "0"}, params={"operation": "void"})
        api.post("/invoice", {"Id": inv["Id"], "SyncToken": "1"}, params={"operation": "delete"})
    finally:
        dispatcher.entity_changed = original  # type: ignore[method-assign]
    ops = [(e[1], e[3]) for e in seen if e[0] == api.realm_id]
    assert ops == [
        ("Customer", "Create"),
        ("Customer", "Update"),
        ("Customer", "Delete"),
        ("Customer", "Create"),
        ("Invoice", "Create"),
        ("Invoice", "Void"),
        ("Invoice", "Delete"),
    ]
    assert all(e[4] for e in seen)


def test_cli_commands(sandbox: SandboxServer, capsys) -> None:
    cli.main(["realm", "create", "--seed", "sample-us", "--name", "CLI Co", "--url", sandbox.url])
    realm = json.loads(capsys.readouterr().out)["realm_id"]
    cli.main(["app", "create", "--redirect-uri", "http://localhost/cb", "--url", sandbox.url])
    app = json.loads(capsys.readouterr().out)
    assert app["client_id"] and app["client_secret"]
    cli.main(["token", "--realm", realm, "--url", sandbox.url])
    tokens = json.loads(capsys.readouterr().out)
    assert {"access_token", "refresh_token", "expires_in", "x_refresh_token_expires_in"} <= set(tokens)
    cli.main(["token", "--realm", realm, "--client-id", app["client_id"], "--url", sandbox.url])
    assert json.loads(capsys.readouterr().out)["client_id"] == app["client_id"]
    resp = httpx.get(
        f"{sandbox.url}/v3/company/{realm}/customer/1",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert resp.json()["Customer"]["DisplayName"] == "Amy's Bird Sanctuary"
    with pytest.raises(SystemExit):
        cli.main(["token", "--realm", "nope", "--url", sandbox.url])


def test_control_plane_rejects_bad_bodies(sandbox: SandboxServer) -> None:
    assert sandbox.client.post("/_sandbox/realms", content=b"{nope").status_code == 400
    assert sandbox.client.post("/_sandbox/realms", json=["list"]).status_code == 400
    realm = sandbox.create_realm()
    assert sandbox.client.post(f"/_sandbox/realms/{realm}/bulk/Customer", json={"x": 1}).status_code == 400
    assert sandbox.client.post(f"/_sandbox/realms/{realm}/bulk/Widget", json=[]).status_code == 404
    assert (
        sandbox.client.post(
            f"/_sandbox/realms/{realm}/faults", json={"kind": "429", "count": "x"}
        ).status_code
        == 400
    )
    assert sandbox.client.get("/_sandbox/realms/nope/counters").status_code == 404


def test_peek_query_and_read_are_not_metered(api: Api) -> None:
    cust = api.create("Customer", customer_body("Peeked"))
    before = api.server.counters(api.realm_id)
    found = api.server.query(api.realm_id, "select * from Customer where DisplayName = 'peeked'")
    assert found["Customer"][0]["Id"] == cust["Id"]
    assert api.server.read(api.realm_id, "Customer", cust["Id"])["DisplayName"] == "Peeked"
    assert api.server.read(api.realm_id, "customer", "99999") is None
    assert api.server.counters(api.realm_id) == before
    with pytest.raises(RuntimeError):
        api.server.query(api.realm_id, "select * from Customer where")


def test_cli_fault_counters_config(sandbox: SandboxServer, capsys, limits) -> None:
    realm = sandbox.create_realm()
    cli.main(
        [
            "fault",
            "--realm",
            realm,
            "--kind",
            "503",
            "--count",
            "2",
            "--entity",
            "Customer",
            "--url",
            sandbox.url,
        ]
    )
    assert json.loads(capsys.readouterr().out)["kind"] == "503"
    cli.main(["counters", "--realm", realm, "--url", sandbox.url])
    assert json.loads(capsys.readouterr().out)["requests"] == 0
    cli.main(
        ["config", "--set", "requests_per_minute=42", "--set", "throttle_body=json", "--url", sandbox.url]
    )
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["requests_per_minute"] == 42 and cfg["throttle_body"] == "json"
    cli.main(["config", "--url", sandbox.url])
    assert json.loads(capsys.readouterr().out)["requests_per_minute"] == 42


def test_request_log_limit_must_be_a_number(sandbox: SandboxServer) -> None:
    realm = sandbox.create_realm(seed="empty")
    response = httpx.get(f"{sandbox.url}/_sandbox/realms/{realm}/requests", params={"limit": "ten"})
    assert response.status_code == 400
    assert response.json()["field"] == "limit"

"""Issue 12 items 4 and 9: the sandbox as a network service must not hang or 500 on hostile input."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from qbo_sandbox.config import SandboxConfig
from qbo_sandbox.testing import SandboxServer

from .conftest import Api, customer_body


def test_like_with_many_wildcards_answers_quickly(api: Api) -> None:
    # Names of 45-47 "C"s against C%C%…%CX: the old regex (^C.*C.*…CX$) backtracked through
    # ~C(46, 8) splits per name, about 20 s in all on this machine, with every realm blocked meanwhile.
    api.server.bulk_insert(api.realm_id, "Customer", [customer_body("C" * n) for n in (45, 46, 47)])
    api.create("Customer", customer_body("CCX"))
    statement = "select * from Customer where DisplayName like '" + "C%" * 8 + "CX'"
    started = time.monotonic()
    resp = api.get("/query", params={"query": statement}, timeout=60)
    elapsed = time.monotonic() - started
    assert resp.status_code == 200, resp.text
    assert resp.json()["QueryResponse"] == {}
    assert elapsed < 2.0, f"pathological LIKE took {elapsed:.1f} s"
    # The same matcher still finds what it should.
    hits = api.query("select * from Customer where DisplayName like 'C%C%C%X'")
    assert hits == {}
    hits = api.query("select * from Customer where DisplayName like '%CC%C%'")
    assert sorted(len(c["DisplayName"]) for c in hits["Customer"]) == [45, 46, 47]


def test_like_backslash_percent_is_a_literal_percent(api: Api) -> None:
    api.create("Customer", customer_body("50% Off Shop"))
    api.create("Customer", customer_body("500 Off Shop"))
    found = api.query(r"select * from Customer where DisplayName like '50\%%'")
    assert [c["DisplayName"] for c in found["Customer"]] == ["50% Off Shop"]
    found = api.query("select * from Customer where DisplayName like '50%'")
    assert [c["DisplayName"] for c in found["Customer"]] == ["50% Off Shop", "500 Off Shop"]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ('{"DisplayName": "x", "Notes": ' + "[" * 5000 + "]" * 5000 + "}", "Unable to parse"),
        ('{"DisplayName": "x", "Notes": ' + "[" * 40 + "]" * 40 + "}", "nested deeper than 32"),
        ('{"DisplayName": "A\\ud800B"}', "unpaired UTF-16 surrogate"),
        ('{"DisplayName": "x", "\\udfff": 1}', "unpaired UTF-16 surrogate"),
    ],
    ids=["deep-5000", "deep-40", "lone-surrogate-value", "lone-surrogate-key"],
)
def test_hostile_json_is_a_400_fault_and_stores_nothing(api: Api, body: str, detail: str) -> None:
    resp = api.http.post("/customer", content=body, headers={"Content-Type": "application/json"})
    err = api.fault(resp)
    assert err["code"] == "2010"
    assert detail in err["Detail"]
    assert api.server.query(api.realm_id, "select count(*) from Customer")["totalCount"] == 0


def test_paired_surrogates_are_ordinary_text(api: Api) -> None:
    body = '{"DisplayName": "Smile \\ud83d\\ude00"}'
    resp = api.http.post("/customer", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["Customer"]["DisplayName"] == "Smile \U0001f600"


def test_hostile_batch_item_is_a_400(api: Api) -> None:
    item = '{"bId": "1", "operation": "create", "Customer": {"DisplayName": "\\ud800"}}'
    body = '{"BatchItemRequest": [' + item + "]}"
    resp = api.http.post("/batch", content=body, headers={"Content-Type": "application/json"})
    assert api.fault(resp)["code"] == "2010"


@pytest.mark.parametrize(
    ("tail", "detail"),
    [
        ("MAXRESULTS -1", "MAXRESULTS must be a whole number from 1 to 2147483647, not -1"),
        ("MAXRESULTS 0", "MAXRESULTS must be a whole number from 1"),
        ("MAXRESULTS 99999999999999999999", "not 99999999999999999999"),
        ("STARTPOSITION 0", "STARTPOSITION must be a whole number from 1"),
        ("STARTPOSITION -5 MAXRESULTS 10", "STARTPOSITION must be"),
        ("STARTPOSITION 99999999999999999999", "STARTPOSITION must be"),
        ("ORDERBY NoSuchField", "ORDERBY property 'NoSuchField' is not a property of Customer"),
        ("ORDERBY DisplayName, Nope DESC", "ORDERBY property 'Nope'"),
    ],
)
def test_bad_paging_and_ordering_are_4001(api: Api, tail: str, detail: str) -> None:
    api.create("Customer", customer_body("Alpha"))
    resp = api.get("/query", params={"query": f"select * from Customer {tail}"})
    err = api.fault(resp)
    assert err["code"] == "4001" and err["Message"] == "Invalid query"
    assert detail in err["Detail"]
    assert resp.json()["time"]


def test_largest_paging_numbers_are_accepted(api: Api) -> None:
    api.create("Customer", customer_body("Alpha"))
    assert api.query("select * from Customer STARTPOSITION 2147483647 MAXRESULTS 2147483647") == {}
    page = api.query("select * from Customer MAXRESULTS 2147483647")
    assert page["maxResults"] == 1


def test_body_over_the_size_limit_is_refused_before_it_is_read(api: Api, limits) -> None:
    limits(max_body_bytes=2000)
    small = api.post("/customer", customer_body("Fits", Notes="n" * 1500))
    assert small.status_code == 200, small.text
    resp = api.post("/customer", customer_body("Too big", Notes="n" * 3000))
    err = api.fault(resp, 413)
    assert err["code"] == "2010" and "larger than the limit of 2000 bytes" in err["Detail"]

    def chunks():  # no Content-Length: the limit applies while streaming too
        yield b'{"DisplayName": "Streamed", "Notes": "'
        for _ in range(10):
            yield b"n" * 500
        yield b'"}'

    streamed = api.http.post("/customer", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    names = api.server.query(api.realm_id, "select * from Customer")["Customer"]
    assert [c["DisplayName"] for c in names] == ["Fits"]


@pytest.mark.parametrize(
    ("knobs", "field"),
    [
        ({"time_scale": "abc"}, "time_scale"),
        ({"time_scale": -1}, "time_scale"),
        ({"time_scale": 0}, "time_scale"),
        ({"requests_per_minute": -5}, "requests_per_minute"),
        ({"requests_per_minute": 1.5}, "requests_per_minute"),
        ({"max_body_bytes": None}, "max_body_bytes"),
        ({"throttling_enabled": "maybe"}, "throttling_enabled"),
        ({"throttle_body": "html"}, "throttle_body"),
        ({"latency_seconds": 0.0, "time_scale": "nan"}, "time_scale"),
    ],
)
def test_config_refuses_bad_values_naming_the_field(sandbox: SandboxServer, knobs: dict, field: str) -> None:
    before = sandbox.client.get("/_sandbox/config").json()
    resp = sandbox.client.post("/_sandbox/config", json=knobs)
    assert resp.status_code == 400, resp.text
    assert resp.json()["field"] == field
    assert field in resp.json()["error"]
    assert sandbox.client.get("/_sandbox/config").json() == before  # nothing half-applied


def test_config_accepts_string_forms_of_numbers_and_booleans(sandbox: SandboxServer, limits) -> None:
    knobs = {"request_log_size": "500", "retry_after_header": "true"}
    resp = sandbox.client.post("/_sandbox/config", json=knobs)
    assert resp.status_code == 200, resp.text
    assert resp.json()["request_log_size"] == 500 and resp.json()["retry_after_header"] is True


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("faults", {"kind": "503", "count": -1}, "count"),
        ("faults", {"kind": "503", "count": "two"}, "count"),
        ("faults", {"kind": "timeout", "seconds": -3}, "seconds"),
        ("faults", {"kind": 503}, "kind"),
        ("revoke", {"client_id": 7}, "client_id"),
    ],
)
def test_control_plane_bodies_are_checked(api: Api, path: str, body: dict, field: str) -> None:
    resp = api.server.client.post(f"/_sandbox/realms/{api.realm_id}/{path}", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["field"] == field
    assert api.server.client.get(f"/_sandbox/realms/{api.realm_id}/faults").json() == {"faults": []}


def test_control_plane_rejects_non_json_and_hostile_json(sandbox: SandboxServer) -> None:
    for content in (b"not json", b"[" * 5000, b'{"name": "\\ud800"}', b'{"seed": ["x"]}'):
        resp = sandbox.client.post("/_sandbox/realms", content=content)
        assert resp.status_code == 400, (content[:20], resp.text)
    resp = sandbox.client.post("/_sandbox/realms", json={"realm_id": "../etc"})
    assert resp.status_code == 400 and resp.json()["field"] == "realm_id"
    resp = sandbox.client.post("/_sandbox/webhooks/flush", json={"wait": -1})
    assert resp.status_code == 400 and resp.json()["field"] == "wait"


def test_control_plane_token_when_set() -> None:
    with SandboxServer(SandboxConfig(throttling_enabled=False), control_token="s3cret-token") as server:
        realm = server.create_realm()  # the helper sends the token
        bare = httpx.get(f"{server.url}/_sandbox/realms/{realm}")
        assert bare.status_code == 401 and "token" in bare.json()["error"]
        wrong = httpx.post(f"{server.url}/_sandbox/realms", headers={"Authorization": "Bearer nope"}, json={})
        assert wrong.status_code == 401
        assert len(server.sandbox.realms) == 1
        ok = httpx.get(f"{server.url}/_sandbox/realms/{realm}", headers={"X-Sandbox-Token": "s3cret-token"})
        assert ok.status_code == 200
        # The API itself keeps QBO's OAuth: the control token is not an API credential.
        tokens = server.issue_tokens(realm)
        api = server.api(realm, tokens["access_token"])
        assert api.get("/companyinfo/" + realm).status_code == 200
        api.close()


def test_serve_beyond_loopback_makes_a_control_token(capsys, monkeypatch) -> None:
    from qbo_sandbox import cli

    seen: dict = {}

    def fake_run(app, **kw):  # uvicorn.run would block; capture what serve built instead
        seen["app"] = app
        seen.update(kw)

    import uvicorn

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.delenv("QBO_SANDBOX_CONTROL_TOKEN", raising=False)
    cli.main(["serve", "--host", "0.0.0.0", "--port", "1"])
    err = capsys.readouterr().err
    assert "Authorization: Bearer " in err
    token = err.split("Authorization: Bearer ")[1].split()[0]
    assert len(token) >= 24
    assert _health_status(seen["app"]) == 401
    assert _health_status(seen["app"], {"Authorization": f"Bearer {token}"}) == 200
    cli.main(["serve", "--host", "127.0.0.1", "--port", "1"])
    assert capsys.readouterr().err == ""
    assert _health_status(seen["app"]) == 200


def _health_status(app: Any, headers: dict[str, str] | None = None) -> int:
    """GET /_sandbox/health straight into the ASGI app (no lifespan: only routing and the guard)."""

    async def call() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
            return (await client.get("/_sandbox/health", headers=headers or {})).status_code

    return asyncio.run(call())

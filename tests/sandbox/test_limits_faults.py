"""qbo-api.md §7 throttling (compressed with time_scale) and the fault-injection control plane."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from .conftest import Api, customer_body


def _get(api: Api) -> httpx.Response:
    return api.get("/term/1")


def test_requests_per_minute(api: Api, limits) -> None:
    limits(throttling_enabled=True, requests_per_minute=5, requests_per_second=0, time_scale=0.02)
    statuses = [_get(api).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    throttled = _get(api)
    assert throttled.status_code == 429
    assert throttled.headers["content-type"].startswith("application/xml")
    assert throttled.headers["intuit_tid"]
    assert "ThrottleExceeded; errorCode=003001; statusCode=429" in throttled.text
    assert '<Error code="3001">' in throttled.text
    assert "Retry-After" not in throttled.headers
    time.sleep(1.3)  # the scaled minute is 1.2 s
    assert _get(api).status_code == 200
    counters = api.server.counters(api.realm_id)
    assert counters["throttled"] == 2


def test_limits_are_per_realm(api: Api, sandbox, limits) -> None:
    limits(throttling_enabled=True, requests_per_minute=3, requests_per_second=0, time_scale=0.05)
    for _ in range(3):
        _get(api)
    assert _get(api).status_code == 429
    other = sandbox.create_realm()
    with sandbox.api(other, sandbox.issue_tokens(other)["access_token"]) as client:
        assert client.get("/term/1").status_code == 200


def test_requests_per_second(api: Api, limits) -> None:
    limits(throttling_enabled=True, requests_per_second=3, time_scale=0.5)
    statuses = [_get(api).status_code for _ in range(6)]
    assert 429 in statuses and statuses[:3] == [200, 200, 200]


def test_concurrent_requests(api: Api, limits) -> None:
    limits(throttling_enabled=True, max_concurrent=2, requests_per_second=0, latency_seconds=0.3)
    results: list[int] = []

    def call() -> None:
        with httpx.Client(headers=api.http.headers) as c:
            results.append(c.get(f"{api.server.url}/v3/company/{api.realm_id}/term/1").status_code)

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(200) >= 2 and results.count(429) >= 1


def test_batch_per_minute(api: Api, limits) -> None:
    limits(throttling_enabled=True, batch_per_minute=2, requests_per_second=0, time_scale=0.05)
    body = {"BatchItemRequest": [{"bId": "1", "Query": "select * from Term"}]}
    statuses = [api.post("/batch", body).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert _get(api).status_code == 200  # plain calls are still allowed


def test_json_body_and_retry_after_options(api: Api, limits) -> None:
    limits(
        throttling_enabled=True,
        requests_per_minute=1,
        requests_per_second=0,
        throttle_body="json",
        retry_after_header=True,
        time_scale=0.5,
    )
    _get(api)
    resp = _get(api)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "30"
    assert resp.json()["Fault"]["Error"][0]["code"] == "3001"


def test_batch_items_count_as_operations(api: Api) -> None:
    api.server.reset_counters(api.realm_id)
    body = {"BatchItemRequest": [{"bId": str(i), "Query": "select * from Term"} for i in range(7)]}
    api.post("/batch", body)
    _get(api)
    counters = api.server.counters(api.realm_id)
    assert counters["requests"] == 2 and counters["operations"] == 8 and counters["batch_calls"] == 1


# ---------------------------------------------------------------- fault injection


def test_injected_429_then_recovers(api: Api) -> None:
    api.server.inject_fault(api.realm_id, "429", count=2)
    assert [_get(api).status_code for _ in range(3)] == [429, 429, 200]
    assert api.server.counters(api.realm_id)["faults_injected"] == 2


@pytest.mark.parametrize("kind", ["500", "502", "503", "504"])
def test_injected_5xx_are_html(api: Api, kind: str) -> None:
    api.server.inject_fault(api.realm_id, kind)
    resp = _get(api)
    assert resp.status_code == int(kind)
    assert resp.headers["content-type"].startswith("text/html") and resp.headers["intuit_tid"]
    assert f"<title>{kind}" in resp.text


def test_injected_fault_matching(api: Api) -> None:
    api.server.inject_fault(api.realm_id, "503", entity="Invoice", operation="create")
    api.server.inject_fault(api.realm_id, "500", method="POST", path="/customer")
    assert _get(api).status_code == 200
    assert api.post("/customer", customer_body("M1")).status_code == 500
    assert api.post("/customer", customer_body("M1")).status_code == 200
    faults = api.server._call("GET", f"/_sandbox/realms/{api.realm_id}/faults")["faults"]
    assert [f["kind"] for f in faults] == ["503"]
    api.server.clear_faults(api.realm_id)
    assert api.server._call("GET", f"/_sandbox/realms/{api.realm_id}/faults")["faults"] == []


def test_injected_timeout_does_not_commit(api: Api) -> None:
    api.server.inject_fault(api.realm_id, "timeout", operation="create", seconds=0.6)
    with pytest.raises(httpx.ReadTimeout):
        api.post("/customer", customer_body("Slow"), timeout=0.2)
    time.sleep(0.5)
    assert api.query("select count(*) from Customer where DisplayName = 'Slow'") == {"totalCount": 0}


def test_dropped_response_after_commit(api: Api) -> None:
    api.server.inject_fault(api.realm_id, "drop", entity="Customer", operation="create")
    with pytest.raises(httpx.TransportError):
        api.post("/customer", customer_body("Committed"), params={"requestid": "drop-1"})
    assert api.query("select count(*) from Customer where DisplayName = 'Committed'") == {"totalCount": 1}
    # The retry with the same requestid gets the original answer, not a duplicate.
    retry = api.post("/customer", customer_body("Committed"), params={"requestid": "drop-1"})
    assert retry.status_code == 200 and retry.json()["Customer"]["DisplayName"] == "Committed"
    log = api.server.requests(api.realm_id)
    assert any(e["dropped"] for e in log)


def test_fault_inside_200(api: Api) -> None:
    api.server.inject_fault(api.realm_id, "fault_200")
    resp = _get(api)
    assert resp.status_code == 200
    assert resp.json()["Fault"]["Error"][0]["code"] == "6190"


def test_injected_401_and_revocation(api: Api) -> None:
    api.server.inject_fault(api.realm_id, "401")
    first = _get(api)
    assert first.status_code == 401 and first.json()["fault"]["type"] == "AUTHENTICATION"
    assert _get(api).status_code == 200
    api.server.inject_fault(api.realm_id, "revoke")
    assert _get(api).status_code == 401
    assert _get(api).status_code == 401  # the token stays revoked


def test_unknown_fault_kind_is_rejected(api: Api) -> None:
    with pytest.raises(RuntimeError):
        api.server.inject_fault(api.realm_id, "meteor")


def test_batch_per_minute_per_realm_across_apps(api: Api, sandbox, limits) -> None:
    limits(
        throttling_enabled=True,
        batch_per_minute=10,
        batch_per_minute_realm=2,
        requests_per_second=0,
        time_scale=0.05,
    )
    body = {"BatchItemRequest": [{"bId": "1", "Query": "select * from Term"}]}
    assert api.post("/batch", body).status_code == 200
    client_id, _ = sandbox.register_app()
    other_token = sandbox.issue_tokens(api.realm_id, client_id)["access_token"]
    with sandbox.api(api.realm_id, other_token) as other:
        assert other.post("/batch", json=body).status_code == 200
        assert other.post("/batch", json=body).status_code == 429


def test_xml_401_and_json_500_variants(api: Api) -> None:
    api.server.inject_fault(api.realm_id, "401_xml")
    resp = _get(api)
    assert resp.status_code == 401 and resp.headers["content-type"].startswith("application/xml")
    assert '<Fault type="AuthenticationFault"><Error code="100">' in resp.text
    api.server.inject_fault(api.realm_id, "500_json")
    resp = _get(api)
    assert resp.status_code == 500
    assert (
        resp.json()["Fault"]["type"] == "SystemFault" and resp.json()["Fault"]["Error"][0]["code"] == "10000"
    )

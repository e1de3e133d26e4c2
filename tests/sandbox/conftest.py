"""One sandbox server per test session (limits off); each test gets fresh realms and a signed-in client.

Tests that need QBO's limits switch them on with `limits` and get the defaults back afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from qbo_sandbox.config import SandboxConfig
from qbo_sandbox.testing import SandboxServer

BASE_CONFIG = {"throttling_enabled": False, "time_scale": 1.0, "timeout_fault_seconds": 0.5}


def pytest_report_header() -> str:
    # `make test-sandbox-wheel` runs these tests against the installed wheel: show which copy this is.
    import qbo_sandbox

    return f"qbo_sandbox {qbo_sandbox.__version__} from {qbo_sandbox.__file__}"


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(**BASE_CONFIG)) as server:
        yield server


class Api:
    """httpx client for one realm plus shortcuts that return parsed JSON."""

    def __init__(self, server: SandboxServer, realm_id: str, token: str) -> None:
        self.server = server
        self.realm_id = realm_id
        self.token = token
        self.http = server.api(realm_id, token)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        if body is not None:
            kw["json"] = body
        return self.http.post(path, **kw)

    def create(self, entity: str, body: dict[str, Any], **params: str) -> dict[str, Any]:
        resp = self.post(f"/{entity.lower()}", body, params={"minorversion": "75", **params})
        assert resp.status_code == 200, resp.text
        return resp.json()[entity]

    def read(self, entity: str, obj_id: str) -> dict[str, Any]:
        resp = self.get(f"/{entity.lower()}/{obj_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()[entity]

    def query(self, text: str) -> dict[str, Any]:
        resp = self.get("/query", params={"query": text, "minorversion": "75"})
        assert resp.status_code == 200, resp.text
        return resp.json()["QueryResponse"]

    def fault(self, resp: httpx.Response, status: int = 400) -> dict[str, Any]:
        assert resp.status_code == status, resp.text
        return resp.json()["Fault"]["Error"][0]


def _api(server: SandboxServer, seed: str) -> Api:
    realm = server.create_realm(seed=seed)
    tokens = server.issue_tokens(realm)
    return Api(server, realm, tokens["access_token"])


@pytest.fixture
def api(sandbox: SandboxServer) -> Iterator[Api]:
    client = _api(sandbox, "empty")
    yield client
    client.http.close()


@pytest.fixture
def sample(sandbox: SandboxServer) -> Iterator[Api]:
    client = _api(sandbox, "sample-us")
    yield client
    client.http.close()


@pytest.fixture
def limits(sandbox: SandboxServer) -> Iterator[Any]:
    """Call limits(**config) to change the running sandbox's knobs for this test only."""

    def apply(**kw: Any) -> None:
        sandbox.set_config(**kw)

    yield apply
    defaults = SandboxConfig(**BASE_CONFIG).to_dict()
    sandbox.set_config(**defaults)


def customer_body(name: str, **extra: Any) -> dict[str, Any]:
    return {"DisplayName": name, **extra}


def invoice_body(customer_id: str, amount: float = 100.0, item_id: str = "1", **extra: Any) -> dict[str, Any]:
    return {
        "CustomerRef": {"value": customer_id},
        "Line": [
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": amount,
                "SalesItemLineDetail": {"ItemRef": {"value": item_id}, "Qty": 1, "UnitPrice": amount},
            }
        ],
        **extra,
    }

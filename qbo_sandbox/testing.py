"""Run a sandbox inside a test process and drive its control plane over HTTP.

with SandboxServer(SandboxConfig(time_scale=0.01)) as sb:
    realm = sb.create_realm(seed="sample-us")
    tokens = sb.issue_tokens(realm)
    httpx.get(f"{sb.url}/v3/company/{realm}/customer/1",
              headers={"Authorization": f"Bearer {tokens['access_token']}", "Accept": "application/json"})
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from qbo_sandbox.app import create_app
from qbo_sandbox.config import SandboxConfig
from qbo_sandbox.state import Sandbox


class SandboxServer:
    """uvicorn serving the sandbox on a free 127.0.0.1 port, in a background thread."""

    def __init__(
        self,
        config: SandboxConfig | None = None,
        state_file: str | None = None,
        control_token: str | None = None,
    ) -> None:
        self.config = config or SandboxConfig()
        self.state_file = state_file
        self.control_token = control_token
        self.app = create_app(self.config, state_file, control_token=control_token)
        # Direct access for assertions in tests; mutate only through HTTP (the server thread owns it).
        self.sandbox: Sandbox = self.app.state.sandbox
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._client: httpx.Client | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> SandboxServer:
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="on", access_log=False, timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="qbo-sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("qbo_sandbox did not start")
            time.sleep(0.01)
        headers = {"Authorization": f"Bearer {self.control_token}"} if self.control_token else {}
        self._client = httpx.Client(base_url=self.url, timeout=30, headers=headers)
        return self

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._sock.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------- control plane

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            raise RuntimeError("SandboxServer is not started")
        return self._client

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        resp = self.client.request(method, path, **kw)
        if resp.status_code >= 400:
            raise RuntimeError(f"sandbox control plane {method} {path}: {resp.status_code} {resp.text}")
        return resp.json()

    def create_realm(self, seed: str = "empty", name: str | None = None, realm_id: str | None = None) -> str:
        body: dict[str, Any] = {"seed": seed}
        if name:
            body["name"] = name
        if realm_id:
            body["realm_id"] = realm_id
        return str(self._call("POST", "/_sandbox/realms", json=body)["realm_id"])

    def reset_realm(self, realm_id: str) -> None:
        self._call("POST", f"/_sandbox/realms/{realm_id}/reset")

    def delete_realm(self, realm_id: str) -> None:
        self._call("DELETE", f"/_sandbox/realms/{realm_id}")

    def register_app(
        self,
        redirect_uris: list[str] | tuple[str, ...] = (),
        webhook_url: str | None = None,
        verifier_token: str | None = None,
        **extra: Any,
    ) -> tuple[str, str]:
        body = {
            "redirect_uris": list(redirect_uris),
            "webhook_url": webhook_url,
            "verifier_token": verifier_token,
            **extra,
        }
        data = self._call("POST", "/_sandbox/apps", json=body)
        return data["client_id"], data["client_secret"]

    def issue_tokens(self, realm_id: str, client_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"realm_id": realm_id}
        if client_id:
            body["client_id"] = client_id
        return dict(self._call("POST", "/_sandbox/tokens", json=body))

    def inject_fault(self, realm_id: str, kind: str, count: int = 1, **match: Any) -> dict[str, Any]:
        """Queue a failure for the next `count` matching API requests of the realm.

        kind: 429, 500, 500_json, 502, 503, 504, timeout (seconds=), drop, fault_200 (code=), revoke, 401,
        401_xml, 403.
        match: method, path (substring), entity, operation (create/update/delete/void/read/query/batch/cdc).

        One item of a batch (`count` = batches affected): kind item_fault (ValidationFault, code=, detail=),
        item_500 (SystemFault element) or item_unanswered (left out of BatchItemResponse), aimed with
        item=N (1-based position) or bid="..."; entity/operation then filter on the item. The transient
        two take committed=True for "the write happened, only the answer was lost". See
        `inject_batch_item_fault`.
        """
        return dict(
            self._call(
                "POST", f"/_sandbox/realms/{realm_id}/faults", json={"kind": kind, "count": count, **match}
            )
        )

    def inject_batch_item_fault(
        self,
        realm_id: str,
        kind: str,
        *,
        item: int | None = None,
        bid: str | None = None,
        committed: bool = False,
        code: str | None = None,
        count: int = 1,
        **match: Any,
    ) -> dict[str, Any]:
        """Fault one item of the next `count` batches: `kind` is item_fault (a ValidationFault with
        `code`, default 6000), item_500 or item_unanswered; aim with `item` (1-based) or `bid`."""
        spec: dict[str, Any] = {"item": item, "bid": bid, "committed": committed, "code": code, **match}
        return self.inject_fault(
            realm_id, kind, count=count, **{k: v for k, v in spec.items() if v is not None}
        )

    def set_sales_tax(
        self,
        realm_id: str,
        enabled: bool = True,
        automated: bool = True,
        tax_code: str | None = None,
        rate: float | None = None,
    ) -> dict[str, Any]:
        """Switch a company's sales tax (TaxPrefs.UsingSalesTax / PartnerTaxEnabled): with `automated`
        QBO computes tax itself from the company's code (`tax_code`, or a new one at `rate` percent)
        whatever the app sends, unless the app sends an explicit TotalTax. Returns the new TaxPrefs."""
        body: dict[str, Any] = {"enabled": enabled, "automated": automated}
        if tax_code is not None:
            body["tax_code"] = tax_code
        if rate is not None:
            body["rate"] = rate
        return dict(self._call("POST", f"/_sandbox/realms/{realm_id}/sales-tax", json=body))

    def merge(self, realm_id: str, entity: str, from_id: str, into_id: str) -> dict[str, Any]:
        """Merge `from_id` into `into_id` (Customer, Vendor, Employee, Item, Account, Class) as
        QBO's own UI does; returns {"entity", "survivor", "deleted_id", "moved"}."""
        body = {"entity": entity, "from_id": from_id, "into_id": into_id}
        return dict(self._call("POST", f"/_sandbox/realms/{realm_id}/merge", json=body))

    def clear_faults(self, realm_id: str) -> None:
        self._call("DELETE", f"/_sandbox/realms/{realm_id}/faults")

    def counters(self, realm_id: str) -> dict[str, int]:
        return dict(self._call("GET", f"/_sandbox/realms/{realm_id}/counters"))

    def reset_counters(self, realm_id: str) -> None:
        self._call("POST", f"/_sandbox/realms/{realm_id}/counters/reset")

    def requests(self, realm_id: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/_sandbox/realms/{realm_id}/requests")["requests"])

    def clear_requests(self, realm_id: str) -> None:
        """Forget the realm's request log, so `requests` shows only what comes next."""
        self._call("DELETE", f"/_sandbox/realms/{realm_id}/requests")

    def bulk_insert(self, realm_id: str, entity: str, bodies: list[dict[str, Any]]) -> list[str]:
        data = self._call("POST", f"/_sandbox/realms/{realm_id}/bulk/{entity}", json=bodies)
        if data["errors"]:
            raise RuntimeError(f"bulk insert rejected {len(data['errors'])} bodies: {data['errors'][:3]}")
        return list(data["ids"])

    def query(self, realm_id: str, statement: str) -> dict[str, Any]:
        """The `QueryResponse` of a statement, read past the API: no token, not throttled, not counted."""
        data = self._call("GET", f"/_sandbox/realms/{realm_id}/query", params={"query": statement})
        return dict(data["QueryResponse"])

    def read(self, realm_id: str, entity: str, obj_id: str) -> dict[str, Any] | None:
        """One object as stored (None when missing or deleted), read past the API like `query`."""
        resp = self.client.get(f"/_sandbox/realms/{realm_id}/entities/{entity}/{obj_id}")
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        return dict(next(iter(resp.json().values())))

    def webhook_deliveries(
        self, realm_id: str | None = None, client_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Webhook deliveries made so far (oldest first, last 1000), each a ``Delivery.to_dict()``:
        ``delivery_id, client_id, url, format, realm_ids, events, status, created_at, signature,
        body`` (the raw JSON text sent) and ``attempts``. Filtered to one realm and/or app if given."""
        params = {k: v for k, v in (("realm", realm_id), ("client_id", client_id)) if v is not None}
        return list(self._call("GET", "/_sandbox/webhooks/deliveries", params=params))

    def flush_webhooks(self, wait: float = 0.0) -> dict[str, Any]:
        """Send buffered notifications now instead of after ``webhook_delay_seconds``. With ``wait``
        (seconds), return once every delivery is acknowledged or given up, or that time has passed;
        the answer's ``idle`` says which."""
        return dict(self._call("POST", "/_sandbox/webhooks/flush", json={"wait": wait}, timeout=wait + 30))

    def set_config(self, **kw: Any) -> dict[str, Any]:
        return dict(self._call("POST", "/_sandbox/config", json=kw))

    def snapshot(self, path: str | None = None) -> str:
        return str(self._call("POST", "/_sandbox/snapshot", json={"path": path} if path else {})["path"])

    # ---------------------------------------------------------------- API convenience

    def api(self, realm_id: str, access_token: str) -> httpx.Client:
        """An httpx client pointed at a realm's API base with auth and JSON headers set."""
        return httpx.Client(
            base_url=f"{self.url}/v3/company/{realm_id}",
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            params={"minorversion": "75"},
            timeout=30,
        )

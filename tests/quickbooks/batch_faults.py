"""A real HTTP hop between the app and qbo_sandbox that faults one item of a batch.

The sandbox can fault whole requests (`SandboxServer.inject_fault`) but not yet one item of a
batch (issue 8 item 13, on another branch). Until it can, this forwarder does it: every API
request goes to the sandbox unchanged, and for the next batch a rule changes what happens to
one item (by bId):

- "unanswered": the sandbox runs the item, its answer is left out of the reply (QBO must answer
  every bId; a missing one is an unknown outcome).
- "system_fault": the sandbox runs the item, its answer is replaced by a SystemFault (the worst
  case of a per-item transient fault: committed, yet reported as failed).
- "fault_not_run": the item is taken out of the request before it reaches the sandbox and
  answered with a SystemFault (a per-item transient fault that wrote nothing).
- "status_404": the whole batch is answered 404 with no body, and nothing reaches the sandbox.

Point the app's API at it with `settings.QBO_API_BASE_URL = proxy.url` (OAuth stays direct).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

SYSTEM_FAULT = {
    "type": "SystemFault",
    "Error": [
        {
            "Message": "An application error has occurred while processing your request",
            "Detail": "System Failure Error: An unexpected error occurred while saving your data",
            "code": "10000",
        }
    ],
}
_FORWARDED_HEADERS = ("authorization", "content-type", "accept")


class BatchItemFaults(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream.rstrip("/")
        self.http = httpx.Client(timeout=30)
        self.rules: list[tuple[str, str]] = []  # (mode, bId), one per coming batch
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def fault_next_batch(self, mode: str, bid: str = "") -> None:
        with self.lock:
            self.rules.append((mode, bid))

    def take_rule(self) -> tuple[str, str] | None:
        with self.lock:
            return self.rules.pop(0) if self.rules else None


class _Handler(BaseHTTPRequestHandler):
    server: BatchItemFaults

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def _forward(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        is_batch = self.command == "POST" and self.path.split("?")[0].endswith("/batch")
        rule = self.server.take_rule() if is_batch else None
        if rule and rule[0] == "status_404":
            self._answer(404, b"", {"content-type": "text/plain"})
            return
        if rule and rule[0] == "fault_not_run":
            request = json.loads(body)
            request["BatchItemRequest"] = [i for i in request["BatchItemRequest"] if i.get("bId") != rule[1]]
            if not request["BatchItemRequest"]:
                answer = {"BatchItemResponse": [{"bId": rule[1], "Fault": SYSTEM_FAULT}]}
                self._answer(200, json.dumps(answer).encode(), {"content-type": "application/json"})
                return
            body = json.dumps(request).encode()
        headers = {k: v for k, v in self.headers.items() if k.lower() in _FORWARDED_HEADERS}
        resp = self.server.http.request(
            self.command, self.server.upstream + self.path, headers=headers, content=body or None
        )
        content = resp.content
        if rule and resp.status_code == 200:
            data = json.loads(content)
            items = [i for i in data["BatchItemResponse"] if i.get("bId") != rule[1]]
            if rule[0] in ("system_fault", "fault_not_run"):
                items.append({"bId": rule[1], "Fault": SYSTEM_FAULT})
            data["BatchItemResponse"] = items
            content = json.dumps(data).encode()
        keep = {
            k: v
            for k, v in resp.headers.items()
            if k.lower() in ("content-type", "intuit_tid", "retry-after")
        }
        self._answer(resp.status_code, content, keep)

    def _answer(self, status: int, content: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)


@contextmanager
def batch_item_faults(upstream: str) -> Iterator[BatchItemFaults]:
    server = BatchItemFaults(upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        server.http.close()

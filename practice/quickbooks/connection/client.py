"""The one module that speaks HTTP to the QBO Accounting API v3.

- One pooled `httpx.Client` per process (`http.shared_http`), explicit timeouts on every call.
- JSON in and out, `minorversion=75` on every request (qbo-api.md §1.2).
- `requestid` on every write and batch (qbo-api.md §5): the caller passes a deterministic id and
  every retry of the same logical write here reuses it, so QBO replays instead of duplicating.
- Every answer is classified in one place (`errors.error_from_response`) into typed errors.
- Pacing under the per-realm limits (`pacing`), bounded back-off on 429 (Intuit: wait 60 s,
  §7) and on transient failures; a 401 triggers exactly one token refresh (§6.2, §8.4).
- Logs one structured line per request with ids only: never tokens, bodies or query text
  (query text contains customer names).

Settings (all optional): QBO_HTTP_TIMEOUT_SECONDS (60), QBO_HTTP_CONNECT_TIMEOUT_SECONDS (10),
QBO_RATE_LIMIT_RETRIES (2), QBO_RATE_LIMIT_WAIT_SECONDS (60, used when a 429 has no
Retry-After), QBO_BACKOFF_SCALE (1.0; multiplies every wait, tests shrink it),
QBO_TRANSIENT_RETRIES (1), QBO_TRANSIENT_BACKOFF_SECONDS (1.0), QBO_MINOR_VERSION (75).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import httpx
from django.conf import settings

from practice.quickbooks.connection import oauth, tokens
from practice.quickbooks.connection.errors import (
    CompanyUnavailable,
    QBOError,
    RateLimited,
    ReauthRequired,
    RecordRejected,
    Retriable,
    error_from_fault,
    error_from_response,
)
from practice.quickbooks.connection.http import http_timeout, shared_http
from practice.quickbooks.connection.pacing import pacer_for
from practice.quickbooks.models import Connection

__all__ = ["BATCH_MAX_ITEMS", "BatchOp", "BatchResult", "QBOClient", "quote"]

log = logging.getLogger("practice.quickbooks.client")

MINOR_VERSION = 75
# qbo-api.md §4: 30 items per batch; requestid ≤ 36 chars with batch, bId ≤ 10 chars then.
BATCH_MAX_ITEMS = 30
BATCH_REQUEST_ID_MAX = 36
BATCH_BID_MAX = 10
REQUEST_ID_MAX = 50

# Entity names as QBO spells them (request/response keys are case sensitive, paths lower-case).
_CANONICAL = {
    name.lower(): name
    for name in (
        "Account",
        "Bill",
        "BillPayment",
        "Class",
        "CompanyInfo",
        "CreditMemo",
        "Customer",
        "CustomerType",
        "Department",
        "Deposit",
        "Employee",
        "Estimate",
        "Invoice",
        "Item",
        "JournalEntry",
        "Payment",
        "PaymentMethod",
        "Preferences",
        "Purchase",
        "RefundReceipt",
        "SalesReceipt",
        "TaxCode",
        "Term",
        "Vendor",
    )
}
# Void is an update with include=void for these (qbo-api.md §1.1, PHP/PYQB); invoices use operation=void.
_VOID_AS_UPDATE = {"payment", "salesreceipt", "billpayment"}


def canonical_entity(entity: str) -> str:
    """QBO's spelling of an entity name; refuses anything that is not a bare identifier, since
    the name ends up in URL paths and query text."""
    if not entity.isidentifier():
        raise ValueError(f"not a QBO entity name: {entity!r}")
    return _CANONICAL.get(entity.lower(), entity)


def quote(value: str) -> str:
    """A QBO query string literal: backslash-escape `\\` and `'` (qbo-api.md §3.1)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def like_contains(text: str) -> str:
    """A quoted LIKE pattern matching names that contain `text` literally.

    `%` is QBO's one wildcard (qbo-api.md §3.1) and `_` is a wildcard in most SQL dialects, so
    both are backslash-escaped, QBO's escape for special characters (same section), as are
    `\\` and `'`. Unescaped, a typed "C%C%C%C%CX" is a pattern whose matching backtracks
    exponentially (issue 12), and "100%" would also match "1000 Main St".
    """
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("%", "\\%").replace("_", "\\_")
    return f"'%{escaped}%'"


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


# --------------------------------------------------------------------------------------------
# Batch types


@dataclass
class BatchOp:
    """One item of a batch. `bid` ≤ 10 chars (a requestid is always sent with batches)."""

    bid: str
    operation: Literal["create", "update", "delete", "query"]
    entity: str = ""
    body: dict[str, Any] | None = None
    query: str | None = None
    # Sent as `optionsData`, e.g. "void" (with operation="update") or "allowduplicatedocnumber".
    options: str | None = None


@dataclass
class BatchResult:
    """Outcome of one item: the entity, a query page, or the item's own error (not raised)."""

    bid: str
    entity: dict[str, Any] | None
    # CompanyUnavailable: QBO refused this item for the company's or the app's sake (6190,
    # 3100/3200); nothing of it was written, and the caller pauses rather than blame the record.
    error: RecordRejected | Retriable | CompanyUnavailable | None
    query_response: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# --------------------------------------------------------------------------------------------
# The client


@dataclass
class CDCPage:
    """One CDC answer: (entity, body) of every object in it, and QBO's clock (`time`)."""

    objects: list[tuple[str, dict[str, Any]]]
    time: str


class QBOClient:
    """Accounting API calls for one connection (realm). Cheap to create; thread-safe enough to
    share between threads as long as they accept seeing each other's token refreshes."""

    def __init__(self, connection: Connection, *, http: httpx.Client | None = None) -> None:
        self.connection = connection
        self._http = http or shared_http()
        self._env = oauth.environment(connection.environment or None)
        self._token_cache: tuple[int, str, str] | None = None  # (version, ciphertext, plaintext)
        self._refresh_lock = threading.Lock()
        # Called before every request and every few seconds while waiting (429 back-off, another
        # process's token refresh): the sync engine renews its realm lease here, and raises to
        # stop when it lost it. None outside engine runs.
        self.heartbeat: Callable[[], None] | None = None

    @property
    def realm_id(self) -> str:
        return self.connection.realm_id

    # -- public API ------------------------------------------------------------------------------

    def company_info(self) -> dict[str, Any]:
        data = self._send("GET", f"companyinfo/{self.realm_id}", op="read CompanyInfo")
        return self._unwrap(data, "CompanyInfo")

    def preferences(self) -> dict[str, Any]:
        return self._unwrap(self._send("GET", "preferences", op="read Preferences"), "Preferences")

    def read(self, entity: str, entity_id: str) -> dict[str, Any]:
        """The entity object (unwrapped from its envelope)."""
        name = canonical_entity(entity)
        data = self._send("GET", f"{name.lower()}/{entity_id}", op=f"read {name}")
        return self._unwrap(data, name)

    def query(self, statement: str, *, times: list[str] | None = None) -> dict[str, Any]:
        """One page: the raw `QueryResponse` object, e.g. {"Customer": [...], "startPosition": 1,
        "maxResults": n} or {} when nothing matched (qbo-api.md §3.2). `times`, when given, gets
        the answer's `time` (QBO's clock) appended: a reader that keeps a cursor moves it to QBO's
        time, never to ours."""
        # POST with a text body keeps customer names out of URLs and access logs (§1.1 allows it).
        data = self._send("POST", "query", text_body=statement, op="query")
        if times is not None:
            times.append(str(data.get("time") or ""))
        qr = data.get("QueryResponse")
        return dict(qr) if isinstance(qr, dict) else {}

    def query_all(
        self,
        entity: str,
        where: str = "",
        *,
        page_size: int = 1000,
        order_by: str = "Id",
        times: list[str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every matching entity, one query per page (STARTPOSITION is 1-based, ≤ 1000 per page)."""
        name = canonical_entity(entity)
        page_size = max(1, min(int(page_size), 1000))
        position = 1
        while True:
            # QBO's query language, not SQL; callers quote values with `quote()`.
            statement = f"SELECT * FROM {name}"  # noqa: S608
            if where:
                statement += f" WHERE {where}"
            if order_by:
                statement += f" ORDERBY {order_by}"
            statement += f" STARTPOSITION {position} MAXRESULTS {page_size}"
            page = self.query(statement, times=times)
            items: list[dict[str, Any]] = page.get(name) or next(
                (v for k, v in page.items() if k.lower() == name.lower()), []
            )
            yield from items
            if len(items) < page_size:
                return
            position += len(items)

    def count(self, entity: str, where: str = "") -> int:
        statement = f"SELECT COUNT(*) FROM {canonical_entity(entity)}"  # noqa: S608
        if where:
            statement += f" WHERE {where}"
        return int(self.query(statement).get("totalCount", 0))

    def create(
        self, entity: str, body: dict[str, Any], *, request_id: str, include: str = ""
    ) -> dict[str, Any]:
        """Create. `include`: QBO's `include` query option, e.g. "allowduplicatedocnum" (the
        single-request spelling of a batch item's optionsData)."""
        name = canonical_entity(entity)
        data = self._send(
            "POST",
            name.lower(),
            params={"include": include} if include else None,
            json_body=body,
            request_id=request_id,
            op=f"create {name}",
        )
        return self._unwrap(data, name)

    def update(
        self, entity: str, body: dict[str, Any], *, request_id: str, sparse: bool = True, include: str = ""
    ) -> dict[str, Any]:
        """Update; `body` carries Id and SyncToken. A stale SyncToken raises RecordRejected 5010."""
        name = canonical_entity(entity)
        payload = {**body, "sparse": sparse}
        data = self._send(
            "POST",
            name.lower(),
            params={"include": include} if include else None,
            json_body=payload,
            request_id=request_id,
            op=f"update {name}",
        )
        return self._unwrap(data, name)

    def delete(self, entity: str, entity_id: str, sync_token: str, *, request_id: str) -> dict[str, Any]:
        """Hard delete of a transaction; answers the entity with `"status": "Deleted"`."""
        name = canonical_entity(entity)
        data = self._send(
            "POST",
            name.lower(),
            params={"operation": "delete"},
            json_body={"Id": entity_id, "SyncToken": sync_token},
            request_id=request_id,
            op=f"delete {name}",
        )
        return self._unwrap(data, name)

    def void(self, entity: str, entity_id: str, sync_token: str, *, request_id: str) -> dict[str, Any]:
        name = canonical_entity(entity)
        body: dict[str, Any] = {"Id": entity_id, "SyncToken": sync_token}
        if name.lower() in _VOID_AS_UPDATE:
            params = {"operation": "update", "include": "void"}
            body["sparse"] = True
        else:
            params = {"operation": "void"}
        data = self._send(
            "POST", name.lower(), params=params, json_body=body, request_id=request_id, op=f"void {name}"
        )
        return self._unwrap(data, name)

    def cdc(self, entities: Sequence[str], changed_since: datetime) -> CDCPage:
        """Change data capture (qbo-api.md §9.3): every listed entity changed since `changed_since`
        (QBO keeps 30 days), full bodies, deleted ones as `{"Id", "status": "Deleted"}`, at most
        1,000 objects in all and no paging. One `QueryResponse` per entity, `{}` for one without
        changes, in any order (§9.4)."""
        data = self._send(
            "GET",
            "cdc",
            params={
                "entities": ",".join(canonical_entity(e) for e in entities),
                "changedSince": changed_since.isoformat(timespec="seconds"),
            },
            op="cdc",
        )
        objects: list[tuple[str, dict[str, Any]]] = []
        for response in data.get("CDCResponse") or []:
            for qr in (response or {}).get("QueryResponse") or []:
                for key, value in (qr or {}).items():
                    if isinstance(value, list):
                        name = canonical_entity(key)
                        objects.extend((name, body) for body in value if isinstance(body, dict))
        return CDCPage(objects=objects, time=str(data.get("time") or ""))

    def batch(self, ops: list[BatchOp], *, request_id: str) -> list[BatchResult]:
        """Up to 30 operations in one call; results in the order of `ops`.

        Item faults come back in `BatchResult.error`; a failure of the whole call is raised.
        Items are independent in QBO (no visibility between them, order not guaranteed, §4).
        """
        if not ops:
            return []
        if len(ops) > BATCH_MAX_ITEMS:
            raise ValueError(f"batch: at most {BATCH_MAX_ITEMS} operations, got {len(ops)}")
        if len(request_id) > BATCH_REQUEST_ID_MAX:
            raise ValueError(f"batch: request_id longer than {BATCH_REQUEST_ID_MAX} characters")
        seen: set[str] = set()
        items: list[dict[str, Any]] = []
        for op in ops:
            if not op.bid or len(op.bid) > BATCH_BID_MAX or op.bid in seen:
                raise ValueError(f"batch: bid {op.bid!r} must be unique and 1-{BATCH_BID_MAX} characters")
            seen.add(op.bid)
            item: dict[str, Any] = {"bId": op.bid}
            if op.operation == "query":
                if not op.query:
                    raise ValueError(f"batch: query op {op.bid!r} has no query")
                item["Query"] = op.query
            else:
                if not op.entity or op.body is None:
                    raise ValueError(f"batch: op {op.bid!r} needs entity and body")
                body = dict(op.body)
                if op.operation == "update":
                    body.setdefault("sparse", True)
                item["operation"] = op.operation
                item[canonical_entity(op.entity)] = body
            if op.options:
                item["optionsData"] = op.options
            items.append(item)
        data = self._send(
            "POST",
            "batch",
            json_body={"BatchItemRequest": items},
            request_id=request_id,
            batch=True,
            op=f"batch {len(items)}",
        )
        answers = data.get("BatchItemResponse")
        if not isinstance(answers, list):
            raise Retriable("QuickBooks sent a batch answer without items")
        by_bid = {str(a.get("bId")): a for a in answers if isinstance(a, dict)}
        return [self._batch_result(op, by_bid.get(op.bid)) for op in ops]

    # -- internals -------------------------------------------------------------------------------

    def _batch_result(self, op: BatchOp, answer: dict[str, Any] | None) -> BatchResult:
        if answer is None:
            # Not answered: it may or may not have run. Re-sending the batch under the same
            # requestid would replay this same incomplete answer, so the engine re-sends the
            # item alone under its own requestid, after looking for it (docs/adr/0007).
            return BatchResult(op.bid, None, Retriable(f"QuickBooks did not answer batch item {op.bid}"))
        fault = answer.get("Fault") or answer.get("fault")
        if isinstance(fault, dict):
            err = error_from_fault(fault)
            if isinstance(err, ReauthRequired):
                raise err
            if isinstance(err, CompanyUnavailable):
                # Returned, not raised: the batch's other items may have been written, and their
                # answers must be recorded (a batch is not a transaction, qbo-api.md §4).
                return BatchResult(op.bid, None, err)
            if not isinstance(err, RecordRejected | Retriable):
                err = RecordRejected(err.message, code=err.code)
            return BatchResult(op.bid, None, err)
        qr = answer.get("QueryResponse")
        if isinstance(qr, dict):
            return BatchResult(op.bid, None, None, query_response=dict(qr))
        entity = answer.get(canonical_entity(op.entity)) if op.entity else None
        if not isinstance(entity, dict):
            entity = next((v for k, v in answer.items() if k != "bId" and isinstance(v, dict)), None)
        return BatchResult(op.bid, entity, None)

    @staticmethod
    def _unwrap(data: dict[str, Any], name: str) -> dict[str, Any]:
        value = data.get(name)
        if not isinstance(value, dict):
            value = next(
                (v for k, v in data.items() if k.lower() == name.lower() and isinstance(v, dict)), None
            )
        if not isinstance(value, dict):
            raise Retriable(f"QuickBooks answered without a {name}")
        return value

    def _beat(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat()

    def _sleep(self, seconds: float) -> None:
        """Sleep `seconds`, calling the heartbeat every second so a long wait keeps the caller's
        lease (the heartbeat itself decides how often to write)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 1.0))
            self._beat()

    def _access_token(self) -> tuple[str, int]:
        conn = self.connection
        if conn.status != "connected":
            raise ReauthRequired("The QuickBooks connection needs to be reconnected")
        if conn.access_token_expires_within(oauth.refresh_margin_seconds()):
            with self._refresh_lock:
                if conn.access_token_expires_within(oauth.refresh_margin_seconds()):
                    oauth.refresh(conn, on_wait=self.heartbeat)
        cache = self._token_cache
        if cache is None or cache[0] != conn.token_version or cache[1] != conn.access_token_enc:
            cache = (conn.token_version, conn.access_token_enc, tokens.decrypt(conn.access_token_enc))
            self._token_cache = cache
        return cache[2], cache[0]

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        text_body: str | None = None,
        request_id: str | None = None,
        batch: bool = False,
        op: str = "",
    ) -> dict[str, Any]:
        if request_id is not None and not (0 < len(request_id) <= REQUEST_ID_MAX):
            raise ValueError(f"request_id must be 1-{REQUEST_ID_MAX} characters")
        if not self.realm_id:
            raise ReauthRequired("QuickBooks is not connected")
        url = f"{self._env.api_base}/v3/company/{self.realm_id}/{path}"
        query = dict(params or {})
        query["minorversion"] = str(int(getattr(settings, "QBO_MINOR_VERSION", MINOR_VERSION)))
        if request_id:
            query["requestid"] = request_id
        headers = {"Accept": "application/json"}
        content: bytes | None = None
        if text_body is not None:
            headers["Content-Type"] = "application/text"
            content = text_body.encode()
        elif json_body is not None:
            headers["Content-Type"] = "application/json"
        pacer = pacer_for(self.realm_id)
        scale = _setting("QBO_BACKOFF_SCALE", 1.0)
        rate_retries = int(_setting("QBO_RATE_LIMIT_RETRIES", 2))
        transient_retries = int(_setting("QBO_TRANSIENT_RETRIES", 1))
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            self._beat()
            token, version = self._access_token()
            headers["Authorization"] = f"Bearer {token}"
            started = time.monotonic()
            status: int | None = None
            tid: str | None = None
            err: QBOError | None
            data: Any = None
            with pacer.slot(batch=batch):
                try:
                    resp = self._http.request(
                        method,
                        url,
                        params=query,
                        headers=headers,
                        json=json_body if content is None else None,
                        content=content,
                        timeout=http_timeout(),
                    )
                except httpx.TimeoutException as exc:
                    err = Retriable(f"QuickBooks did not answer in time ({type(exc).__name__})")
                except httpx.HTTPError as exc:
                    # Includes a connection dropped after QBO committed the write: resending
                    # with the same requestid gets the original answer back (§5).
                    err = Retriable(f"Connection to QuickBooks failed ({type(exc).__name__})")
                else:
                    status = resp.status_code
                    tid = resp.headers.get("intuit_tid")
                    err, data = error_from_response(resp.status_code, resp.headers, resp.content)
            self._log(op, method, status, tid, request_id, started, attempt, err)
            if err is None:
                return data  # type: ignore[no-any-return]

            if isinstance(err, ReauthRequired):
                if err.status == 401 and not refreshed:
                    # The access token may have expired early or been replaced: one refresh, then
                    # the same request again with the same requestid (§6.2).
                    refreshed = True
                    with self._refresh_lock:
                        if self.connection.token_version == version:
                            oauth.refresh(self.connection, seen_version=version, on_wait=self.heartbeat)
                    continue
                oauth.mark_needs_reconnect(self.connection, reason=err.message, seen_version=version)
                raise err
            if isinstance(err, RateLimited):
                wait = (
                    err.retry_after
                    if err.retry_after is not None
                    else _setting("QBO_RATE_LIMIT_WAIT_SECONDS", 60.0)
                )
                wait *= scale
                pacer.pause(wait)  # every thread of this process backs off, not just this one
                if rate_retries > 0:
                    rate_retries -= 1
                    self._sleep(wait)  # here rather than in the pacer: the heartbeat keeps beating
                    continue
                err.retry_after = wait
                raise err
            if isinstance(err, Retriable) and transient_retries > 0:
                transient_retries -= 1
                base = _setting("QBO_TRANSIENT_BACKOFF_SECONDS", 1.0) * scale
                self._sleep(base * (0.5 + random.random()))  # jitter spreads simultaneous retries
                continue
            raise err

    def _log(
        self,
        op: str,
        method: str,
        status: int | None,
        tid: str | None,
        request_id: str | None,
        started: float,
        attempt: int,
        err: QBOError | None,
    ) -> None:
        fields = {
            "event": "qbo.request",
            "op": op,
            "method": method,
            "connection": self.connection.pk,
            "realm": self.realm_id,
            "status": status,
            "intuit_tid": tid,
            "request_id": request_id,
            "attempt": attempt,
            "ms": round((time.monotonic() - started) * 1000, 1),
            "outcome": type(err).__name__ if err else "ok",
            "code": err.code if err else "",
        }
        level = logging.INFO if err is None else logging.WARNING
        log.log(
            level,
            " ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, "")),
            extra={"qbo": fields},
        )

"""HTTP surface: Intuit's Accounting API v3 under /v3/company/{realmId}/..., OAuth routes (oauth.py),
read-only QBO-style web pages under /app/ (webui.py) and the control plane under /_sandbox/ (no auth
on loopback; a control token when it listens beyond, see create_app)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from qbo_sandbox import batch_faults, clock, errors, merge, money, more_entities, query, recurring
from qbo_sandbox.config import ConfigError, SandboxConfig
from qbo_sandbox.entities import BY_PATH, SPECS, TRANSACTION
from qbo_sandbox.jsoncheck import check_json_shape
from qbo_sandbox.oauth import WEBHOOK_FORMATS
from qbo_sandbox.state import RealmRuntime, Sandbox, Window, fault_dict
from qbo_sandbox.store import Realm
from qbo_sandbox.webui import WebUI

log = logging.getLogger("qbo_sandbox")

JSON_TYPE = "application/json;charset=UTF-8"
CDC_UNSUPPORTED = {"JournalCode", "TaxAgency", "TimeActivity", "TaxCode", "TaxRate"}


class Reply:
    """A finished API answer before it becomes an ASGI response (kept as bytes for requestid replay)."""

    __slots__ = ("body", "cache_body", "content_type", "drop", "headers", "status")

    def __init__(self, status: int, body: bytes, content_type: str = JSON_TYPE) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers: dict[str, str] = {}
        self.drop = False
        # What a requestid replay answers when it differs from what this client saw (batch item faults).
        self.cache_body: bytes | None = None


def _json_reply(data: Any, status: int = 200) -> Reply:
    return Reply(status, errors.dumps(data))


def _fault_reply(err: errors.QBOError) -> Reply:
    return Reply(err.status, errors.dumps(err.body()))


def _gateway_reply(status: int, detail: str) -> Reply:
    return Reply(status, errors.dumps(errors.gateway_body(status, detail)))


def _html_reply(status: int) -> Reply:
    return Reply(status, errors.html_error(status).encode(), "text/html")


class Ctx:
    """What one API request is about; used for fault matching, logging and counters."""

    __slots__ = (
        "client",
        "content_type",
        "entity",
        "method",
        "operation",
        "options",
        "params",
        "path",
        "raw",
        "requestid",
        "rest",
    )

    def __init__(self, method: str, path: str, rest: list[str], params: dict[str, str]) -> None:
        self.method = method
        self.path = path
        self.rest = rest
        self.params = params
        self.entity: str | None = None
        self.operation = "unknown"
        self.options: set[str] = set()
        self.requestid: str | None = params.get("requestid")
        self.client = ""
        self.raw = b""
        self.content_type = ""


def _params(raw: bytes) -> dict[str, str]:
    if not raw:
        return {}
    return {k.lower(): v[-1] for k, v in parse_qs(raw.decode("latin-1"), keep_blank_values=True).items()}


class BodyTooLarge(Exception):
    pass


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, refused once it passes `limit` bytes (also when Content-Length says so
    up front), so an oversized upload is never held in memory whole."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                if int(value) > limit:
                    raise BodyTooLarge
            except ValueError:
                pass
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _too_large(limit: int) -> errors.QBOError:
    # QBO's own limit and answer for oversized bodies are undocumented (docs/sandbox.md); 413 with
    # the usual Fault envelope keeps clients' error handling on one path.
    return errors.QBOError(
        "2010",
        "Request has invalid or unsupported property",
        f"Request body is larger than the limit of {limit} bytes",
        "",
        status=413,
    )


def classify(ctx: Ctx, body: Any) -> None:
    """Fill entity/operation from the path, the `operation`/`include` parameters and the body."""
    rest = ctx.rest
    head = rest[0] if rest else ""
    op_param = ctx.params.get("operation", "").lower()
    includes = {p.strip().lower() for p in ctx.params.get("include", "").split(",") if p.strip()}
    ctx.options = includes
    if head in ("query", "batch", "cdc"):
        ctx.operation = head
        return
    spec = BY_PATH.get(head)
    ctx.entity = spec.name if spec else head
    if ctx.method == "GET":
        ctx.operation = "read"
    elif op_param == "delete":
        ctx.operation = "delete"
    elif op_param == "void" or "void" in includes:
        ctx.operation = "void"
    elif len(rest) >= 3 and rest[2] == "send":
        ctx.operation = "send"
    elif (isinstance(body, dict) and body.get("Id") not in (None, "")) or (
        spec is not None
        and spec.name
        in (
            "Preferences",
            "CompanyInfo",
        )
    ):
        ctx.operation = "update"
    else:
        ctx.operation = "create"


class Api:
    """ASGI endpoint for /v3/company/{realm}/{rest:path}."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = Request(scope, receive)
        sb = self.sandbox
        cfg = sb.config
        realm_id = scope["path_params"]["realm"]
        rest = [p for p in scope["path_params"]["rest"].split("/") if p]
        ctx = Ctx(scope["method"], scope["path"], rest, _params(scope.get("query_string", b"")))
        tid = str(uuid.uuid4())
        realm = sb.realms.get(realm_id)
        rt: RealmRuntime | None = sb.runtime.get(realm_id) if realm else None
        reply: Reply | None = None
        raw = b""
        if ctx.method == "POST":
            try:
                raw = await read_body(scope, receive, cfg.max_body_bytes)
            except BodyTooLarge:
                reply = _fault_reply(_too_large(cfg.max_body_bytes))
        ctx.raw = raw
        if raw:
            ctx.content_type = request.headers.get("content-type", "")
        fault_kind = ""
        replayed = False
        items = 0
        body: Any = None
        counted_flight = False
        try:
            if rt is not None:
                rt.bump("requests")
            if reply is None:
                reply = self.authenticate(request, realm_id, ctx)
            if reply is None and realm is None:
                reply = _gateway_reply(403, "Realm not found or not authorized")
            if reply is None and realm is not None and rt is not None:
                try:
                    body = self.parse_body(ctx, raw)
                except errors.QBOError as err:
                    body = None
                    reply = _fault_reply(err)
                classify(ctx, body)
                if reply is None:
                    rule = sb.take_fault(
                        realm_id, ctx.method, ctx.path, ctx.entity, ctx.operation, post=False
                    )
                    if rule is not None:
                        fault_kind = rule.kind
                        reply = await self.injected(rule, realm_id, ctx)
                if reply is None:
                    reply = self.throttle(rt, ctx)
                    if reply is not None:
                        rt.bump("throttled")
                if reply is None:
                    rt.in_flight[ctx.client] = rt.in_flight.get(ctx.client, 0) + 1
                    counted_flight = True
                    if cfg.latency_seconds > 0:
                        await asyncio.sleep(cfg.latency_seconds)
                    reply, replayed, items = self.execute(realm, rt, ctx, body, raw)
                    rule = sb.take_fault(realm_id, ctx.method, ctx.path, ctx.entity, ctx.operation, post=True)
                    if rule is not None:
                        fault_kind = rule.kind
                        reply.drop = True
        except Exception:
            log.exception("sandbox internal error")
            reply = _fault_reply(errors.system_fault())
        finally:
            if counted_flight and rt is not None:
                rt.in_flight[ctx.client] -= 1
        assert reply is not None
        if rt is not None:
            if reply.status >= 400 or b'"Fault"' in reply.body[:20]:
                rt.bump("errors")
            entry = {
                "at": clock.envelope_stamp(),
                "tid": tid,
                "method": ctx.method,
                "path": ctx.path,
                "query": scope.get("query_string", b"").decode("latin-1"),
                "entity": ctx.entity,
                "operation": ctx.operation,
                "status": reply.status,
                "requestid": ctx.requestid,
                "replayed": replayed,
                "fault": fault_kind or None,
                "dropped": reply.drop,
                "batch_items": items,
                "ms": round((time.perf_counter() - started) * 1000, 2),
            }
            rt.log.append(entry)
            while len(rt.log) > cfg.request_log_size:
                rt.log.popleft()
        if reply.drop:
            await self.drop_connection(send, scope, receive)
            return
        headers = {"intuit_tid": tid, "content-type": reply.content_type, **reply.headers}
        await Response(reply.body, status_code=reply.status, headers=headers)(scope, receive, send)

    # ---------------------------------------------------------------- pre-flight

    def authenticate(self, request: Request, realm_id: str, ctx: Ctx) -> Reply | None:
        header = request.headers.get("authorization", "")
        if not self.sandbox.config.auth_required and not header:
            ctx.client = "anonymous"
            return None
        if not header.lower().startswith("bearer "):
            return _gateway_reply(401, "Authorization header missing or not a bearer token")
        token = header[7:].strip()
        if len(token) < 8 or len(token) > 4096:
            return _gateway_reply(401, "Malformed bearer token: too short or too long")
        reason = self.sandbox.oauth.authenticate(token, realm_id)
        if reason == "wrong_realm":
            return _gateway_reply(403, "Token not valid for this realm")
        if reason is not None:
            details = {
                "expired": "Token expired",
                "revoked": "Token revoked",
                "invalid": "Token invalid",
            }
            return _gateway_reply(401, details.get(reason, reason))
        grant = self.sandbox.oauth.grant_for_access_token(token)
        ctx.client = grant.client_id if grant is not None else token[:16]
        return None

    def parse_body(self, ctx: Ctx, raw: bytes) -> Any:
        if not raw or ctx.rest[:1] in (["query"], ["upload"]):
            return None
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise errors.QBOError(
                "2010",
                "Request has invalid or unsupported property",
                "Unable to parse the request body as JSON",
                "",
            ) from None
        check_json_shape(body)
        return body

    def throttle(self, rt: RealmRuntime, ctx: Ctx) -> Reply | None:
        cfg = self.sandbox.config
        if not cfg.throttling_enabled:
            return None
        now = time.monotonic()
        scale = cfg.time_scale
        limited = rt.minute.count(now, 60 * scale) >= cfg.requests_per_minute
        if not limited and rt.in_flight.get(ctx.client, 0) >= cfg.max_concurrent:
            limited = True
        second = rt.per_app_second.setdefault(ctx.client, Window())
        if (
            not limited
            and cfg.requests_per_second > 0
            and second.count(now, scale) >= cfg.requests_per_second
        ):
            limited = True
        batch = None
        if not limited and ctx.operation == "batch":
            batch = rt.per_app_batch.setdefault(ctx.client, Window())
            limited = batch.count(now, 60 * scale) >= cfg.batch_per_minute
            if not limited and cfg.batch_per_minute_realm > 0:
                limited = rt.batch_minute.count(now, 60 * scale) >= cfg.batch_per_minute_realm
        if limited:
            if cfg.throttle_body == "json":
                reply = Reply(429, errors.dumps(errors.throttle_json()))
            else:
                reply = Reply(429, errors.throttle_xml().encode(), "application/xml")
            if cfg.retry_after_header:
                reply.headers["Retry-After"] = str(max(1, round(60 * scale)))
            return reply
        rt.minute.events.append(now)
        second.events.append(now)
        if batch is not None:
            batch.events.append(now)
            rt.batch_minute.events.append(now)
        return None

    async def injected(self, rule: Any, realm_id: str, ctx: Ctx) -> Reply:
        kind = rule.kind
        if kind == "429":
            return Reply(429, errors.throttle_xml().encode(), "application/xml")
        if kind in ("500", "502", "503", "504"):
            return _html_reply(int(kind))
        if kind == "timeout":
            await asyncio.sleep(
                rule.seconds if rule.seconds is not None else self.sandbox.config.timeout_fault_seconds
            )
            return _html_reply(504)
        if kind == "fault_200":
            code = rule.code or "6190"
            err = errors.QBOError(
                code,
                "Invalid Company Status",
                "Subscription period has ended or been canceled, or there was a billing problem. "
                "You can't access QuickBooks data until the subscription is current.",
                "",
            )
            return _json_reply(err.body(), 200)
        if kind == "revoke":
            self.sandbox.oauth.revoke_realm(realm_id)
            return _gateway_reply(401, "Token revoked")
        if kind == "401_xml":
            return Reply(401, errors.auth_xml().encode(), "application/xml")
        if kind == "500_json":
            return _fault_reply(errors.system_fault())
        if kind == "403":
            return _gateway_reply(403, "Application not authorized for this company")
        return _gateway_reply(401, "Token expired")

    async def drop_connection(self, send: Send, scope: Scope, receive: Receive) -> None:
        """Close the socket without a response: the write is committed but the client never hears back."""
        cycle = getattr(scope.get(RAW_SEND), "__self__", None) or getattr(send, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is not None:
            cycle.keep_alive = False  # type: ignore[union-attr]
            cycle.disconnected = True  # type: ignore[union-attr]
            transport.abort()
            return
        # Fallback for servers whose send is not bound to a protocol object: promise a body and cut it short.
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100000")]}
        )
        await send({"type": "http.response.body", "body": b"{", "more_body": False})

    # ---------------------------------------------------------------- execution

    def execute(
        self, realm: Realm, rt: RealmRuntime, ctx: Ctx, body: Any, raw: bytes
    ) -> tuple[Reply, bool, int]:
        cfg = self.sandbox.config
        items = 0
        rid = ctx.requestid
        if ctx.method == "POST" and rid is not None:
            limit = 36 if ctx.operation == "batch" else 50
            if len(rid) > limit or not rid:
                err = errors.too_long("requestid", limit, len(rid))
                rt.bump("operations")
                return _fault_reply(err), False, 0
            fingerprint = hashlib.sha256(
                ctx.path.encode() + b"?" + ctx.operation.encode() + b"\n" + raw
            ).hexdigest()
            cached = rt.requestids.get(rid)
            now = time.time()
            if cached is not None and now - cached[0] <= cfg.requestid_retention_seconds * cfg.time_scale:
                rt.bump("replays")
                if cached[1] != fingerprint and cfg.requestid_mismatch_fault:
                    err = errors.QBOError(
                        "600",
                        "Duplicate Request ID",
                        "The request ID you're trying to use already exists in the QuickBooks Online "
                        "Accounting "
                        "API or QuickBooks Payments API. Our system detected the duplicate.",
                        "",
                    )
                    return _fault_reply(err), True, 0
                body_bytes = cached[3]
                if cfg.requestid_replay_new_time and cached[4] == JSON_TYPE:
                    # Whether QBO re-stamps a replay is unverified (§12); this option models "yes".
                    replay = json.loads(body_bytes)
                    if isinstance(replay, dict) and "time" in replay:
                        replay["time"] = clock.envelope_stamp()
                        body_bytes = errors.dumps(replay)
                if rid in rt.batch_pending:
                    return self.resume_batch(realm, rt, rid, cached), True, 0
                return Reply(cached[2], body_bytes, cached[4]), True, 0
        try:
            reply, items = self.dispatch(realm, rt, ctx, body)
        except errors.QBOError as err:
            reply = _fault_reply(err)
        if ctx.method == "POST" and rid is not None and reply.status < 500 and reply.status != 429:
            stored = reply.cache_body if reply.cache_body is not None else reply.body
            rt.requestids[rid] = (time.time(), fingerprint, reply.status, stored, reply.content_type)
            self._prune_requestids(rt)
        return reply, False, items

    def _prune_requestids(self, rt: RealmRuntime) -> None:
        """Forget the oldest ids: expired ones, and beyond `requestid_max_entries` the oldest anyway.

        The cache is insertion ordered, so this only ever looks at its head."""
        cfg = self.sandbox.config
        cache = rt.requestids
        cutoff = time.time() - cfg.requestid_retention_seconds * cfg.time_scale
        while cache:
            oldest = next(iter(cache))
            if cache[oldest][0] >= cutoff and len(cache) <= cfg.requestid_max_entries:
                break
            del cache[oldest]

    def dispatch(self, realm: Realm, rt: RealmRuntime, ctx: Ctx, body: Any) -> tuple[Reply, int]:
        op = ctx.operation
        if op != "batch":
            rt.bump("operations")
        self.check_minor_version(ctx)
        if op == "query":
            rt.bump("queries")
            text = ctx.params.get("query") if ctx.method == "GET" else None
            if text is None:
                text = ctx.raw.decode("utf-8", "replace").strip()
            return _json_reply(
                {
                    "QueryResponse": query.run(text, realm.data, self.sandbox.config, realm.name_candidates),
                    "time": clock.envelope_stamp(),
                }
            ), 0
        if op == "batch":
            return self.batch(realm, rt, ctx, body)
        if op == "cdc":
            rt.bump("queries")
            return _json_reply(self.cdc(realm, ctx)), 0
        if ctx.method == "POST" and ctx.rest == ["taxservice", "taxcode"]:
            rt.bump("writes")
            created = more_entities.tax_service_taxcode(realm, body)
            return _json_reply({**created, "time": clock.envelope_stamp()}), 0
        if ctx.method == "POST" and ctx.rest == ["upload"]:
            rt.bump("writes")
            uploaded = more_entities.upload(realm, ctx.raw, ctx.content_type)
            return _json_reply({**uploaded, "time": clock.envelope_stamp()}), 0
        spec = SPECS.get(ctx.entity or "")
        if spec is None:
            raise errors.unsupported(
                f"Could not find resource for relative : /v3/company/{realm.realm_id}/"
                f"{'/'.join(ctx.rest)} of "
                f"full path: {ctx.path}"
            )
        if spec.name in recurring.HANDLED:
            rt.bump("reads" if op == "read" else "writes")
            answer = recurring.handle(realm, spec.name, op, ctx.rest, ctx.params, body)
            return _json_reply({spec.name: answer, "time": clock.envelope_stamp()}), 0
        if op == "read" and len(ctx.rest) >= 3 and ctx.rest[2] == "pdf":
            rt.bump("reads")
            obj = realm.read(spec.name, ctx.rest[1])
            return Reply(200, _pdf(spec.name, obj), "application/pdf"), 0
        if op == "send":
            if spec.name not in ("Invoice", "Estimate", "SalesReceipt", "CreditMemo", "RefundReceipt"):
                raise errors.unsupported(f"Send for {spec.name}")
            rt.bump("writes")
            sent = realm.send(spec.name, ctx.rest[1], ctx.params.get("sendto"))
            return _json_reply({spec.name: sent, "time": clock.envelope_stamp()}), 0
        if op == "read":
            rt.bump("reads")
            return _json_reply(
                {spec.name: self.read(realm, spec.name, ctx), "time": clock.envelope_stamp()}
            ), 0
        if ctx.method != "POST":
            raise errors.unsupported(f"{ctx.method} {ctx.path}")
        if not isinstance(body, dict):
            raise errors.bad_request("Request body must be a JSON object", "")
        rt.bump("writes")
        options = set(ctx.options)
        if "allowduplicatedocnumber" in options:
            # The URL spelling of the batch optionsData flag (issue 9 item 7).
            options.add("allowduplicatedocnum")
        result = self.write(realm, spec.name, op, body, options)
        return _json_reply({spec.name: result, "time": clock.envelope_stamp()}), 0

    def check_minor_version(self, ctx: Ctx) -> None:
        raw = ctx.params.get("minorversion")
        if raw is None or raw == "":
            return
        if not raw.strip().isdigit():
            raise errors.QBOError(
                "2010",
                "Request has invalid or unsupported property",
                f"Invalid minorversion value: {raw}. It must be an integer.",
                "minorversion",
            )
        # <75 is served as 75 and higher values as the newest schema (BLOG-MV): nothing else to do.

    def read(self, realm: Realm, entity: str, ctx: Ctx) -> dict[str, Any]:
        if entity == "Preferences":
            return realm.preferences()
        if len(ctx.rest) < 2:
            raise errors.unsupported(f"GET {ctx.path}")
        obj_id = ctx.rest[1]
        if entity == "CompanyInfo":
            if obj_id != realm.realm_id:
                raise errors.not_found(deleted=False)
            return next(iter(realm.data["CompanyInfo"].values()))
        return realm.read(entity, obj_id)

    def write(
        self, realm: Realm, entity: str, op: str, body: dict[str, Any], options: set[str]
    ) -> dict[str, Any]:
        if entity in ("Preferences", "CompanyInfo"):
            body = dict(body)
            current = next(iter(realm.data[entity].values()))
            body.setdefault("Id", current["Id"])
            return realm.update(entity, body, options)
        if op == "delete":
            return realm.delete(entity, body)
        if op == "void":
            return realm.void(entity, body)
        if op == "update":
            return realm.update(entity, body, options)
        if op == "create":
            return realm.create(entity, body, options)
        raise errors.unsupported(f"{op} for {entity}")

    # ---------------------------------------------------------------- batch

    def batch(self, realm: Realm, rt: RealmRuntime, ctx: Ctx, body: Any) -> tuple[Reply, int]:
        cfg = self.sandbox.config
        rt.bump("batch_calls")
        items = body.get("BatchItemRequest") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            rt.bump("operations")
            raise errors.required("BatchItemRequest")
        if len(items) > cfg.batch_max_items:
            rt.bump("operations")
            raise errors.QBOError(
                "1040",
                "Batch size exceeds allowed limit",
                f"Batch size {len(items)} exceeds the maximum of {cfg.batch_max_items} items per batch.",
                "",
            )
        seen: set[str] = set()
        for item in items:
            bid = str(item.get("bId", "")) if isinstance(item, dict) else ""
            if not bid:
                rt.bump("operations")
                raise errors.required("BatchItemRequest.bId")
            if bid in seen:
                rt.bump("operations")
                raise errors.QBOError(
                    "2010",
                    "Request has invalid or unsupported property",
                    f"Duplicate bId {bid} in the batch",
                    "bId",
                )
            if ctx.requestid and len(bid) > 10:
                rt.bump("operations")
                raise errors.too_long("bId", 10, len(bid))
            seen.add(bid)
        rt.bump("operations", len(items))
        rt.bump("batch_items", len(items))
        truth, shown, pending = self.run_batch_items(realm, rt, items, {})
        reply = _json_reply({"BatchItemResponse": shown, "time": clock.envelope_stamp()})
        if truth != shown:
            reply.cache_body = errors.dumps({"BatchItemResponse": truth, "time": clock.envelope_stamp()})
            if pending and ctx.requestid:
                rt.batch_pending[ctx.requestid] = pending
        return reply, len(items)

    def run_batch_items(
        self, realm: Realm, rt: RealmRuntime, items: list[dict[str, Any]], done: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
        """Run a batch's items, applying item faults (batch_faults.py).

        Returns what QBO did (for the requestid cache), what the client is shown, and the items a
        fault kept from running. Items whose bId is in `done` already ran (a requestid replay) and
        keep their recorded answer."""
        plan = self.sandbox.take_item_faults(
            realm.realm_id, [it for it in items if str(it.get("bId")) not in done]
        )
        truth: list[dict[str, Any]] = []
        shown: list[dict[str, Any]] = []
        pending: dict[str, Any] = {}
        realm.hidden = set() if self.sandbox.config.batch_items_isolated else None
        try:
            for item in items:
                bid = str(item["bId"])
                if bid in done:
                    truth.append(done[bid])
                    shown.append(done[bid])
                    continue
                rule = plan.get(bid)
                if rule is None:
                    answer = self.batch_item(realm, rt, item)
                elif rule.kind == "item_fault":
                    answer = {"bId": bid, "Fault": batch_faults.validation_fault(rule)}
                else:
                    if rule.committed:
                        truth.append(self.batch_item(realm, rt, item))
                    else:
                        pending[bid] = item
                        truth.append({"bId": bid, batch_faults.PENDING: True})
                    if rule.kind == "item_500":
                        shown.append({"bId": bid, "Fault": batch_faults.system_fault()})
                    continue
                truth.append(answer)
                shown.append(answer)
        finally:
            realm.hidden = None
        return truth, shown, pending

    def resume_batch(
        self, realm: Realm, rt: RealmRuntime, rid: str, cached: tuple[float, str, int, bytes, str]
    ) -> Reply:
        """A requestid replay of a batch some of whose items never ran: run those now, exactly once."""
        pending = rt.batch_pending.pop(rid)
        recorded = json.loads(cached[3])["BatchItemResponse"]
        done = {str(a["bId"]): a for a in recorded if not a.get(batch_faults.PENDING)}
        items = [pending.get(str(a["bId"]), a) for a in recorded]
        rt.bump("batch_items", len(pending))
        truth, shown, still_pending = self.run_batch_items(realm, rt, items, done)
        stamp = clock.envelope_stamp()
        reply = _json_reply({"BatchItemResponse": shown, "time": stamp})
        cache_body = errors.dumps({"BatchItemResponse": truth, "time": stamp})
        rt.requestids[rid] = (cached[0], cached[1], cached[2], cache_body, cached[4])
        if still_pending:
            rt.batch_pending[rid] = still_pending
        return reply

    def batch_item(self, realm: Realm, rt: RealmRuntime, item: dict[str, Any]) -> dict[str, Any]:
        bid = str(item["bId"])
        try:
            if "Query" in item:
                rt.bump("queries")
                return {
                    "bId": bid,
                    "QueryResponse": query.run(
                        str(item["Query"]), realm.visible_tables(), self.sandbox.config, realm.name_candidates
                    ),
                }
            entity_keys = [k for k in item if k in SPECS]
            if len(entity_keys) != 1:
                raise errors.bad_request("Batch item must carry exactly one entity object", "")
            entity = entity_keys[0]
            payload = item[entity]
            if not isinstance(payload, dict):
                raise errors.bad_request("Batch item entity must be an object", entity)
            operation = str(item.get("operation", "")).lower()
            options_data = {
                o.strip().lower() for o in str(item.get("optionsData", "")).split(",") if o.strip()
            }
            if "void" in options_data or operation == "void":
                op = "void"
            elif operation in ("create", "update", "delete"):
                op = operation
            else:
                raise errors.invalid_enum("operation", operation or "(missing)")
            if op == "create" and payload.get("Id"):
                raise errors.bad_request("Id must not be supplied on create", "Id")
            options = (
                {"allowduplicatedocnum"}
                if options_data & {"allowduplicatedocnum", "allowduplicatedocnumber"}
                else set()
            )
            rt.bump("writes")
            result = self.write(realm, entity, op, payload, options)
            return {"bId": bid, entity: result}
        except errors.QBOError as err:
            return {"bId": bid, "Fault": err.fault()}

    # ---------------------------------------------------------------- CDC

    def cdc(self, realm: Realm, ctx: Ctx) -> dict[str, Any]:
        cfg = self.sandbox.config
        names = [n.strip() for n in ctx.params.get("entities", "").split(",") if n.strip()]
        if not names:
            raise errors.required("entities")
        # An unencoded "+hh:mm" offset arrives as a space; read it back as the plus it was.
        since_raw = ctx.params.get("changedsince", "").strip().replace(" ", "+")
        if not since_raw:
            raise errors.required("changedSince")
        since = clock.parse_stamp(since_raw)
        if since is None:
            raise errors.QBOError(
                "4001",
                "Invalid query",
                f"QueryValidationError: Invalid changedSince {since_raw}",
                "changedSince",
            )
        now = clock.now()
        if (now - since).total_seconds() > cfg.cdc_window_days * 86400:
            raise errors.QBOError(
                "4001",
                "Invalid query",
                f"QueryValidationError: changedSince must be within the last {cfg.cdc_window_days} days",
                "changedSince",
            )
        cutoff = since.timestamp()
        specs: list[Any] = []
        for name in names:
            spec = next((s for s in SPECS.values() if s.name.lower() == name.lower()), None)
            if spec is None or name in CDC_UNSUPPORTED or not spec.cdc:
                raise errors.QBOError(
                    "4001",
                    "Invalid query",
                    f"QueryValidationError: CDC is not supported for entity {name}",
                    "entities",
                )
            if spec not in specs:  # "Customer,customer" asks once
                specs.append(spec)
        found: list[tuple[float, str, dict[str, Any]]] = []
        for spec in specs:
            for obj in realm.data.get(spec.name, {}).values():
                stamp = clock.parse_stamp((obj.get("MetaData") or {}).get("LastUpdatedTime", ""))
                if stamp is not None and stamp.timestamp() >= cutoff:
                    found.append((stamp.timestamp(), spec.name, obj))
            for tomb in realm.tombstones.get(spec.name, {}).values():
                stamp = clock.parse_stamp(tomb["MetaData"]["LastUpdatedTime"])
                if stamp is not None and stamp.timestamp() >= cutoff:
                    found.append((stamp.timestamp(), spec.name, tomb))
        # At most cdc_max_results objects across all entities, the oldest kept (which ones QBO
        # keeps is unknown, §9.4); a client that gets a full response splits its window.
        found.sort(key=lambda t: t[0])
        found = found[: cfg.cdc_max_results]
        groups: dict[str, list[dict[str, Any]]] = {spec.name: [] for spec in specs}
        for _, name, obj in found:
            groups[name].append(obj)
        # One QueryResponse per requested entity, `{}` for one without changes, each non-empty one
        # with totalCount, as a live sandbox answers (§9.4, reported); startPosition/maxResults as
        # the SDKs' CDC samples show them (§9.3).
        responses: list[dict[str, Any]] = [
            {name: objs, "startPosition": 1, "maxResults": len(objs), "totalCount": len(objs)} if objs else {}
            for name, objs in groups.items()
        ]
        return {"CDCResponse": [{"QueryResponse": responses}], "time": clock.envelope_stamp()}


def _pdf(entity: str, obj: dict[str, Any]) -> bytes:
    """A one-page PDF naming the form, enough for clients that store or forward the file."""
    text = f"{entity} {obj.get('DocNumber') or obj.get('Id')} total {obj.get('TotalAmt', '')}"
    text = text.replace("\\", "").replace("(", "").replace(")", "")
    stream = f"BT /F1 14 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


# ==================================================================== control plane


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


class _ControlError(Exception):
    """A control-plane request refused with a status and a JSON `{"error", "field"?}` body."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"error": str(self)}
        if self.field is not None:
            body["field"] = self.field
        return _json(body, self.status)


async def _body(request: Request, kind: type = dict) -> Any:
    limit = request.app.state.sandbox.config.max_body_bytes
    try:
        raw = await read_body(request.scope, request.receive, limit)
    except BodyTooLarge:
        raise _ControlError(413, f"request body is larger than {limit} bytes") from None
    if not raw:
        return kind()
    try:
        data = json.loads(raw)
        check_json_shape(data)
    except (ValueError, RecursionError):
        raise _ControlError(400, "request body is not JSON") from None
    except errors.QBOError as err:
        raise _ControlError(400, err.detail) from None
    if not isinstance(data, kind):
        raise _ControlError(400, f"request body must be a JSON {'object' if kind is dict else 'list'}")
    return data


def _optional_str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise _ControlError(400, f"{name} must be a string", name)
    return value


def _number(data: dict[str, Any], name: str, *, whole: bool = False, default: float = 0) -> float:
    """A non-negative number field of a control-plane body, or a 400 naming it."""
    value = data.get(name)
    if value is None:
        return default
    kind = "a whole number" if whole else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise _ControlError(400, f"{name} must be {kind}, not {value!r}", name)
    if whole and value != int(value):
        raise _ControlError(400, f"{name} must be {kind}, not {value!r}", name)
    if value < 0 or value == float("inf"):
        raise _ControlError(400, f"{name} must be 0 or more, not {value!r}", name)
    return value


class _FieldError(ValueError):
    """A control-plane body field with a bad value; the 400 answer names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# Entities an app can subscribe to: the ones the sandbox writes, plus the rest of Intuit's webhook
# table (qbo-api.md §9.1), which the sandbox never emits but a portal configuration may list.
WEBHOOK_ENTITY_NAMES = frozenset(SPECS) | {"Budget", "Currency", "JournalCode"}


def _webhook_settings(data: dict[str, Any]) -> tuple[str | None, list[str] | None]:
    """``webhook_format`` and ``webhook_entities`` of an app body, checked; None means not given."""
    fmt = data.get("webhook_format")
    if fmt is not None and fmt not in WEBHOOK_FORMATS:
        raise _FieldError(
            "webhook_format", f"webhook_format must be one of {', '.join(WEBHOOK_FORMATS)}, not {fmt!r}"
        )
    entities = data.get("webhook_entities")
    if entities is None:
        return fmt, None
    if not isinstance(entities, list) or not all(isinstance(e, str) for e in entities):
        raise _FieldError(
            "webhook_entities", "webhook_entities must be a list of entity names (or null for all)"
        )
    unknown = [e for e in entities if e not in WEBHOOK_ENTITY_NAMES]
    if unknown:
        raise _FieldError(
            "webhook_entities",
            f"webhook_entities has unknown entity names {', '.join(map(repr, unknown))}; names are "
            f"case-sensitive, e.g. Customer, Invoice (known: {', '.join(sorted(WEBHOOK_ENTITY_NAMES))})",
        )
    return fmt, list(dict.fromkeys(entities))


Handler = Callable[[Request], Awaitable[Response]]


class Control:
    def __init__(self, sandbox: Sandbox, token: str | None = None) -> None:
        self.sb = sandbox
        self.token = token

    def guarded(self, handler: Handler) -> Handler:
        """The handler behind the control-plane token (when one is set) and the 400 answers."""

        async def endpoint(request: Request) -> Response:
            if self.token is not None:
                header = request.headers.get("authorization", "")
                given = header[7:].strip() if header.lower().startswith("bearer ") else ""
                given = given or request.headers.get("x-sandbox-token", "")
                if not hmac.compare_digest(given.encode(), self.token.encode()):
                    return _json(
                        {"error": "control plane token missing or wrong (Authorization: Bearer <token>)"},
                        401,
                    )
            try:
                return await handler(request)
            except _ControlError as exc:
                return exc.response()
            except _FieldError as exc:
                return _json({"error": str(exc), "field": exc.field}, 400)

        return endpoint

    def routes(self) -> list[BaseRoute]:
        return [
            Route(r.path, self.guarded(r.endpoint), methods=sorted(r.methods or ())) for r in self._routes()
        ]

    def _routes(self) -> list[Route]:
        p = "/_sandbox"
        return [
            Route(f"{p}/health", self.health, methods=["GET"]),
            Route(f"{p}/config", self.get_config, methods=["GET"]),
            Route(f"{p}/config", self.set_config, methods=["POST"]),
            Route(f"{p}/realms", self.list_realms, methods=["GET"]),
            Route(f"{p}/realms", self.create_realm, methods=["POST"]),
            Route(f"{p}/realms/{{realm}}", self.get_realm, methods=["GET"]),
            Route(f"{p}/realms/{{realm}}", self.delete_realm, methods=["DELETE"]),
            Route(f"{p}/realms/{{realm}}/reset", self.reset_realm, methods=["POST"]),
            Route(f"{p}/realms/{{realm}}/faults", self.add_fault, methods=["POST"]),
            Route(f"{p}/realms/{{realm}}/faults", self.list_faults, methods=["GET"]),
            Route(f"{p}/realms/{{realm}}/faults", self.clear_faults, methods=["DELETE"]),
            Route(f"{p}/realms/{{realm}}/sales-tax", self.sales_tax, methods=["GET", "POST"]),
            Route(f"{p}/realms/{{realm}}/requests", self.requests, methods=["GET"]),
            Route(f"{p}/realms/{{realm}}/requests", self.clear_requests, methods=["DELETE"]),
            Route(f"{p}/realms/{{realm}}/counters", self.counters, methods=["GET"]),
            Route(f"{p}/realms/{{realm}}/counters/reset", self.reset_counters, methods=["POST"]),
            Route(f"{p}/realms/{{realm}}/bulk/{{entity}}", self.bulk, methods=["POST"]),
            Route(f"{p}/realms/{{realm}}/revoke", self.revoke, methods=["POST"]),
            Route(f"{p}/realms/{{realm}}/merge", self.merge, methods=["POST"]),
            Route(f"{p}/realms/{{realm}}/query", self.peek_query, methods=["GET", "POST"]),
            Route(f"{p}/realms/{{realm}}/entities/{{entity}}/{{obj_id}}", self.peek_read, methods=["GET"]),
            Route(f"{p}/apps", self.create_app, methods=["POST"]),
            Route(f"{p}/tokens", self.tokens, methods=["POST"]),
            Route(f"{p}/webhooks/deliveries", self.webhook_deliveries, methods=["GET"]),
            Route(f"{p}/webhooks/flush", self.flush_webhooks, methods=["POST"]),
            Route(f"{p}/snapshot", self.snapshot, methods=["POST"]),
        ]

    def _realm(self, request: Request) -> Realm | None:
        return self.sb.realms.get(request.path_params["realm"])

    def _missing(self) -> JSONResponse:
        return _json({"error": "realm not found"}, 404)

    async def health(self, request: Request) -> Response:
        return _json(
            {"ok": True, "realms": len(self.sb.realms), "uptime": round(time.time() - self.sb.started, 3)}
        )

    async def get_config(self, request: Request) -> Response:
        return _json(self.sb.config.to_dict())

    async def set_config(self, request: Request) -> Response:
        data = await _body(request)
        try:
            unknown = self.sb.config.update(data)
        except ConfigError as exc:
            return _json({"error": str(exc), "field": exc.field}, 400)
        if unknown:
            return _json(
                {"error": f"unknown config keys: {', '.join(unknown)}", "config": self.sb.config.to_dict()},
                400,
            )
        return _json(self.sb.config.to_dict())

    async def list_realms(self, request: Request) -> Response:
        return _json({"realms": [self.sb.describe_realm(r) for r in self.sb.realms.values()]})

    async def create_realm(self, request: Request) -> Response:
        data = await _body(request)
        seed = _optional_str(data, "seed") or "empty"
        name = _optional_str(data, "name")
        realm_id = data.get("realm_id")
        if realm_id is not None and not (
            isinstance(realm_id, str | int) and not isinstance(realm_id, bool) and str(realm_id).isdigit()
        ):
            raise _ControlError(400, "realm_id must be digits, like QBO's company ids", "realm_id")
        try:
            realm = self.sb.create_realm(
                seed=seed, name=name, realm_id=str(realm_id) if realm_id is not None else None
            )
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        return _json(self.sb.describe_realm(realm), 201)

    async def get_realm(self, request: Request) -> Response:
        realm = self._realm(request)
        return _json(self.sb.describe_realm(realm)) if realm else self._missing()

    async def delete_realm(self, request: Request) -> Response:
        if not self._realm(request):
            return self._missing()
        self.sb.delete_realm(request.path_params["realm"])
        return _json({"deleted": True})

    async def reset_realm(self, request: Request) -> Response:
        if not self._realm(request):
            return self._missing()
        return _json(self.sb.describe_realm(self.sb.reset_realm(request.path_params["realm"])))

    async def add_fault(self, request: Request) -> Response:
        if not self._realm(request):
            return self._missing()
        data = await _body(request)
        count = _number(data, "count", whole=True, default=1)
        if count < 1:
            raise _ControlError(400, "count must be 1 or more", "count")
        _number(data, "seconds")
        for name in ("kind", "method", "path", "entity", "operation", "code"):
            _optional_str(data, name)
        try:
            rule = self.sb.add_fault(request.path_params["realm"], data)
        except batch_faults.FaultSpecError as exc:
            return _json({"error": str(exc), "field": exc.field}, 400)
        except (ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json(fault_dict(rule), 201)

    async def sales_tax(self, request: Request) -> Response:
        """A company's TaxPrefs; POST switches sales tax (QBO allows that only in its own UI)."""
        realm = self._realm(request)
        if realm is None:
            return self._missing()
        if request.method == "GET":
            prefs = realm.preferences().get("TaxPrefs")
            return _json(prefs if isinstance(prefs, dict) else {})
        data = await _body(request)
        try:
            prefs = money.configure_sales_tax(realm, data)
        except money.SettingError as exc:
            return _json({"error": str(exc), "field": exc.field}, 400)
        self.sb.dirty = True
        return _json(prefs)

    async def list_faults(self, request: Request) -> Response:
        if not self._realm(request):
            return self._missing()
        return _json({"faults": [fault_dict(f) for f in self.sb.rt(request.path_params["realm"]).faults]})

    async def clear_faults(self, request: Request) -> Response:
        if not self._realm(request):
            return self._missing()
        self.sb.rt(request.path_params["realm"]).faults.clear()
        return _json({"faults": []})

    async def requests(self, request: Request) -> Response:
        if not self._realm(request):
            return self._missing()
        entries = list(self.sb.rt(request.path_params["realm"]).log)
        limit = request.query_params.get("limit")
        if limit:
            if not limit.isdigit():
                return _json({"error": "limit must be a whole number of entries", "field": "limit"}, 400)
            entries = entries[-int(limit) :]
        return _json({"requests": entries})

    async def clear_requests(self, request: Request) -> Response:
        if not self._realm(request):
            return self._missing()
        self.sb.rt(request.path_params["realm"]).log.clear()
        return _json({"requests": []})

    async def counters(self, request: Request) -> Response:
        if not self._realm(request):
            return self._missing()
        return _json(dict(self.sb.rt(request.path_params["realm"]).counters))

    async def reset_counters(self, request: Request) -> Response:
        if not self._realm(request):
            return self._missing()
        rt = self.sb.rt(request.path_params["realm"])
        for key in rt.counters:
            rt.counters[key] = 0
        return _json(dict(rt.counters))

    async def bulk(self, request: Request) -> Response:
        realm = self._realm(request)
        if realm is None:
            return self._missing()
        entity = request.path_params["entity"]
        spec = SPECS.get(entity) or BY_PATH.get(entity.lower())
        if spec is None:
            return _json({"error": f"unknown entity {entity}"}, 404)
        bodies = await _body(request, list)
        webhooks = request.query_params.get("webhooks", "false").lower() == "true"
        hook = realm.on_change
        if not webhooks:
            sb = self.sb

            def quiet(*_: Any, **__: Any) -> None:
                sb.dirty = True

            realm.on_change = quiet
        created: list[dict[str, Any]] = []
        faults: list[dict[str, Any]] = []
        try:
            for index, body in enumerate(bodies):
                try:
                    if not isinstance(body, dict):
                        raise errors.bad_request("entity body must be an object", "")
                    obj = (
                        realm.create(spec.name, body) if spec.kind == TRANSACTION or spec.creatable else None
                    )
                    if obj is None:
                        raise errors.unsupported(f"Create for {spec.name}")
                    created.append(obj)
                except errors.QBOError as err:
                    faults.append({"index": index, "Fault": err.fault()})
        finally:
            realm.on_change = hook
        full = request.query_params.get("full", "false").lower() == "true"
        return _json(
            {
                "created": len(created),
                "ids": [o["Id"] for o in created],
                "objects": created if full else [],
                "errors": faults,
            }
        )

    async def peek_query(self, request: Request) -> Response:
        """Run a query outside the API: no auth, no throttling, not counted, not logged (for assertions)."""
        realm = self._realm(request)
        if realm is None:
            return self._missing()
        text = request.query_params.get("query")
        if text is None:
            text = (await request.body()).decode("utf-8", "replace")
        try:
            result = query.run(text, realm.data, self.sb.config, realm.name_candidates)
        except errors.QBOError as err:
            return _json(err.body(), err.status)
        return _json({"QueryResponse": result, "time": clock.envelope_stamp()})

    async def peek_read(self, request: Request) -> Response:
        realm = self._realm(request)
        if realm is None:
            return self._missing()
        entity = request.path_params["entity"]
        spec = SPECS.get(entity) or BY_PATH.get(entity.lower())
        if spec is None:
            return _json({"error": f"unknown entity {entity}"}, 404)
        obj = realm.get(spec.name, request.path_params["obj_id"])
        if obj is None:
            tomb = realm.tombstones.get(spec.name, {}).get(request.path_params["obj_id"])
            return _json(tomb or {"error": "not found"}, 404)
        return _json({spec.name: obj})

    async def merge(self, request: Request) -> Response:
        """Merge two name-list records as QBO's own UI does (merge.py): `{"entity": "Customer",
        "from_id": "27", "into_id": "123"}` -> the survivor, the merged-away Id and what moved."""
        realm = self._realm(request)
        if realm is None:
            return self._missing()
        data = await _body(request)
        entity = _optional_str(data, "entity") or ""
        ids = {}
        for name in ("from_id", "into_id"):
            value = data.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if value is not None and not isinstance(value, str):
                raise _ControlError(400, f"{name} must be an Id (a string of digits)", name)
            ids[name] = (value or "").strip()
        try:
            result = merge.merge(realm, entity, ids["from_id"], ids["into_id"])
        except merge.MergeError as exc:
            return _json({"error": str(exc), "field": exc.field}, 400)
        self.sb.dirty = True
        return _json(result)

    async def revoke(self, request: Request) -> Response:
        if not self._realm(request):
            return self._missing()
        data = await _body(request)
        count = self.sb.oauth.revoke_realm(request.path_params["realm"], _optional_str(data, "client_id"))
        return _json({"revoked_grants": count})

    async def create_app(self, request: Request) -> Response:
        data = await _body(request)
        redirect = data.get("redirect_uris") or data.get("redirect_uri") or []
        if isinstance(redirect, str):
            redirect = [redirect]
        try:
            webhook_format, webhook_entities = _webhook_settings(data)
            app = self.sb.oauth.register_app(
                client_id=data.get("client_id"),
                client_secret=data.get("client_secret"),
                redirect_uris=tuple(redirect),
                webhook_url=data.get("webhook_url"),
                verifier_token=data.get("verifier_token"),
                name=data.get("name", ""),
                webhook_format=webhook_format,
                webhook_entities=webhook_entities,
            )
        except _FieldError as exc:
            return _json({"error": str(exc), "field": exc.field}, 400)
        except (ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)
        out = {k: v for k, v in vars(app).items() if not k.startswith("_")}
        return _json(out, 201)

    async def tokens(self, request: Request) -> Response:
        data = await _body(request)
        realm_id = str(_optional_str(data, "realm_id") or _optional_str(data, "realm") or "")
        _optional_str(data, "client_id")
        if realm_id not in self.sb.realms:
            return _json({"error": "realm not found"}, 404)
        client_id = data.get("client_id") or self.sb.oauth.dev_app.client_id
        try:
            tokens = self.sb.oauth.issue_tokens(client_id=client_id, realm_id=realm_id)
        except Exception as exc:
            return _json({"error": str(exc)}, 400)
        return _json({**tokens, "realm_id": realm_id, "client_id": client_id})

    async def webhook_deliveries(self, request: Request) -> Response:
        """The dispatcher's delivery log (last 1000), oldest first, each with every attempt."""
        realm_id = request.query_params.get("realm")
        client_id = request.query_params.get("client_id")
        out = [
            d.to_dict()
            for d in list(self.sb.webhooks.deliveries)
            if (realm_id is None or realm_id in d.realm_ids)
            and (client_id is None or d.client_id == client_id)
        ]
        return _json(out)

    async def flush_webhooks(self, request: Request) -> Response:
        """Send every buffered notification now; with ``{"wait": seconds}`` also wait for the
        dispatcher to go idle (all sent, acknowledged or given up), at most that long."""
        data = await _body(request)
        wait = _number(data, "wait")
        hooks = self.sb.webhooks
        flushed = hooks.pending_events()
        hooks.flush_now()
        deadline = time.monotonic() + max(0.0, wait)
        # Give the dispatcher one turn of the loop so flushed events leave the buffer.
        await asyncio.sleep(0)
        while wait > 0 and not hooks.idle() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return _json({"flushed_events": flushed, "idle": hooks.idle()})

    async def snapshot(self, request: Request) -> Response:
        data = await _body(request)
        try:
            path = self.sb.save(_optional_str(data, "path"))
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"path": path})


# ==================================================================== factory


def create_app(
    config: SandboxConfig | None = None, state_file: str | None = None, control_token: str | None = None
) -> Starlette:
    """`control_token`: when set, every /_sandbox/ request must carry it (`Authorization: Bearer`
    or `X-Sandbox-Token`); `qbo-sandbox serve` sets one whenever it listens beyond loopback."""
    sandbox = Sandbox(config, state_file)
    api = Api(sandbox)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await sandbox.webhooks.start()
        saver = asyncio.create_task(_autosave(sandbox)) if state_file else None
        try:
            yield
        finally:
            if saver is not None:
                saver.cancel()
            await sandbox.webhooks.stop()
            if state_file:
                sandbox.save()

    routes: list[BaseRoute] = [Route("/v3/company/{realm}/{rest:path}", api, methods=["GET", "POST"])]
    routes += Control(sandbox, control_token).routes()
    routes += sandbox.oauth.routes(sandbox)
    routes += WebUI(sandbox, control_token).routes()
    app = _SandboxApp(routes=routes, lifespan=lifespan)
    app.state.sandbox = sandbox
    return app


RAW_SEND = "qbo_sandbox.raw_send"


class _SandboxApp(Starlette):
    """Keeps the server's own `send` in the scope: Starlette's middleware wraps the one endpoints
    get, and the "drop" fault needs the connection behind it to cut it without a response."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[RAW_SEND] = send
        await super().__call__(scope, receive, send)


async def _autosave(sandbox: Sandbox) -> None:
    while True:
        interval = sandbox.config.snapshot_interval_seconds
        await asyncio.sleep(interval if interval > 0 else 5)
        if interval > 0 and sandbox.dirty:
            try:
                sandbox.save()
            except OSError:
                log.exception("snapshot failed")

"""Webhook notifications of the sandbox (qbo-api.md §9.1 legacy, §9.2 CloudEvents, §9.4 corrections).

Every write calls ``entity_changed``; events are buffered per realm and, ``webhook_delay_seconds``
after the first one of a batch, sent to each app connected to that realm that has a webhook URL,
signed with the app's verifier token. Each POST carries one realm (§9.4: Intuit sends "one realm
ID at a time"). Deliveries to one app go one at a time and in order, as Intuit holds back later
events until the earlier one is acknowledged (WHMON); a failed delivery is retried on Intuit's
schedule (0 s, 10 s, 20 s, 30 s, 5 min, 20 min, 2 h, 4 h, 6 h, then every 6 h, without end unless
``webhook_max_retries`` sets one), compressed by ``config.time_scale``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

log = logging.getLogger("qbo_sandbox.webhooks")

OPERATIONS = ("Create", "Update", "Delete", "Merge", "Void", "Emailed")
# CloudEvents `type` verbs: `created`, `updated` and `merged` are confirmed (qbo-api.md §9.4),
# `deleted` appears only in Intuit's test script; `voided` and `emailed` follow the pattern (unknown).
_CE_VERBS = {
    "Create": "created",
    "Update": "updated",
    "Delete": "deleted",
    "Merge": "merged",
    "Void": "voided",
    "Emailed": "emailed",
}
# Intuit's retry schedule after a failed delivery (WHMON, qbo-api.md §9.4): 0 s, 10 s, 20 s, 30 s,
# 5 min, 20 min, 2 h, 4 h, 6 h, then every 6 h (the last entry repeats). Scaled by config.time_scale.
INTUIT_RETRY_DELAYS = (0.0, 10.0, 20.0, 30.0, 300.0, 1200.0, 7200.0, 14400.0, 21600.0)
CLOUDEVENTS_PER_DELIVERY = 100  # webinar Q&A: up to 100 events per delivery
DELIVERY_LOG_SIZE = 1000


def sign(body: bytes, verifier_token: str) -> str:
    """The ``intuit-signature`` header: base64 of HMAC-SHA256 over the raw body."""
    digest = hmac.new(verifier_token.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(body: bytes, signature: str, verifier_token: str) -> bool:
    """What a receiver does with the header; exported for tests and for the practice app's tests."""
    return hmac.compare_digest(sign(body, verifier_token), signature or "")


@dataclass
class ChangeEvent:
    realm_id: str
    entity: str
    entity_id: str
    operation: str
    last_updated: str
    # Merge: the Id merged away into entity_id (legacy `deletedId`, CloudEvents `data.deletedid`).
    deleted_id: str | None = None


@dataclass
class Attempt:
    at: float
    status_code: int | None
    error: str | None
    seconds: float


@dataclass
class Delivery:
    """One notification to one app, with every attempt made to deliver it."""

    delivery_id: str
    client_id: str
    url: str
    format: str
    realm_ids: list[str]
    events: int
    body: bytes
    signature: str
    created_at: float
    status: str = "pending"  # pending (being sent or retried), delivered, failed (gave up)
    attempts: list[Attempt] = field(default_factory=list)
    # When the next retry is due (epoch seconds), while one is waited for.
    next_attempt_at: float | None = None

    def payload(self) -> Any:
        return json.loads(self.body)

    def to_dict(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "client_id": self.client_id,
            "url": self.url,
            "format": self.format,
            "realm_ids": self.realm_ids,
            "events": self.events,
            "status": self.status,
            "created_at": self.created_at,
            "signature": self.signature,
            "body": self.body.decode("utf-8"),
            "attempts": [a.__dict__ for a in self.attempts],
            "next_attempt_at": self.next_attempt_at,
        }


def _as_stamp(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return str(value)


def _ce_time(stamp: str) -> str:
    """CloudEvents `time` is UTC with a Z (``2025-09-10T21:31:25.179851517Z`` in Intuit's sample)."""
    try:
        dt = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    if dt.tzinfo is None:
        return dt.isoformat(timespec="milliseconds") + "Z"
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _legacy_entity(ev: ChangeEvent) -> dict[str, str]:
    entity = {"name": ev.entity, "id": ev.entity_id}
    if ev.deleted_id is not None:
        entity["deletedId"] = ev.deleted_id  # `id` survives, `deletedId` was merged away (§9.4)
    # Intuit's recent examples give lastUpdated in UTC with milliseconds and a Z (§9.4).
    entity.update(operation=ev.operation, lastUpdated=_ce_time(ev.last_updated))
    return entity


def legacy_body(events: Sequence[ChangeEvent]) -> dict[str, Any]:
    """One realm's notification: the format allows several `eventNotifications`, Intuit sends one
    realm per POST (qbo-api.md §9.4, correcting §9.1)."""
    realms = {ev.realm_id for ev in events}
    if len(realms) != 1:
        raise ValueError(f"a legacy notification carries exactly one realm, not {sorted(realms)}")
    return {
        "eventNotifications": [
            {
                "realmId": events[0].realm_id,
                "dataChangeEvent": {"entities": [_legacy_entity(ev) for ev in events]},
            }
        ]
    }


def cloudevents_body(
    events: Sequence[ChangeEvent], client_id: str, data: str = "empty"
) -> list[dict[str, Any]]:
    """CloudEvents for one POST. `data` is "empty" ({}) or "absent" (no member) for events other
    than merges, which carry {"deletedid": ...} (§9.4: data is never the entity itself)."""
    # Intuit's `source` is an opaque per-app string; derive a stable one from the client id.
    source = "intuit." + base64.b64encode(hashlib.sha256(client_id.encode()).digest()).decode()
    out = []
    for ev in events:
        event: dict[str, Any] = {
            "specversion": "1.0",
            # The newest examples: <uuid>-<Entity>-<entityId> (§9.4).
            "id": f"{uuid.uuid4()}-{ev.entity}-{ev.entity_id}",
            "source": source,
            "type": f"qbo.{ev.entity.lower()}.{_CE_VERBS.get(ev.operation, ev.operation.lower())}.v1",
            "datacontenttype": "application/json",
            "time": _ce_time(ev.last_updated),
            "intuitentityid": ev.entity_id,
            "intuitaccountid": ev.realm_id,
        }
        if ev.deleted_id is not None:
            event["data"] = {"deletedid": ev.deleted_id}
        elif data != "absent":
            event["data"] = {}
        out.append(event)
    return out


class WebhookDispatcher:
    """Buffers change events per realm and delivers them to connected apps' webhook URLs."""

    def __init__(
        self,
        sandbox: Any,
        *,
        retry_delays: Sequence[float] | None = None,
        timeout: float | None = None,
    ) -> None:
        self.sandbox = sandbox
        self._retry_delays = tuple(retry_delays) if retry_delays is not None else None
        self._timeout = timeout
        self._lock = threading.Lock()
        self._pending: dict[str, list[ChangeEvent]] = {}
        self._due: dict[str, float] = {}
        self.deliveries: deque[Delivery] = deque(maxlen=DELIVERY_LOG_SIZE)
        self._queues: dict[str, asyncio.Queue[Delivery]] = {}
        self._senders: dict[str, asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._in_flight = 0

    # -- knobs, read from the live config so a test can change them on a running sandbox ----------

    @property
    def config(self) -> Any:
        return self.sandbox.config

    def delay(self) -> float:
        return float(getattr(self.config, "webhook_delay_seconds", 1.0))

    def max_retries(self) -> int | None:
        """Retries after the first attempt; None (the default) retries until acknowledged, as Intuit."""
        value = getattr(self.config, "webhook_max_retries", None)
        return None if value is None else max(0, int(value))

    def retry_delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        if self._retry_delays is not None:
            delays = self._retry_delays
            scale = 1.0
        else:
            delays = INTUIT_RETRY_DELAYS
            scale = float(getattr(self.config, "time_scale", 1.0))
        if not delays:
            return 0.0
        return delays[min(retry, len(delays) - 1)] * scale

    def timeout(self) -> float:
        # Intuit expects the 200 within 3 seconds (BLOG-WHMON).
        if self._timeout is not None:
            return self._timeout
        return float(getattr(self.config, "webhook_timeout_seconds", 3.0))

    # -- producer side ---------------------------------------------------------------------------

    def entity_changed(
        self,
        realm_id: str,
        entity: str,
        entity_id: str,
        operation: str,
        last_updated: Any,
        *,
        deleted_id: str | None = None,
    ) -> None:
        """Record one change; never blocks and never raises for a sandbox write to fail on."""
        event = ChangeEvent(
            realm_id=str(realm_id),
            entity=str(entity),
            entity_id=str(entity_id),
            operation=str(operation),
            last_updated=_as_stamp(last_updated),
            deleted_id=None if deleted_id is None else str(deleted_id),
        )
        with self._lock:
            self._pending.setdefault(event.realm_id, []).append(event)
            opens_window = event.realm_id not in self._due
            if opens_window:
                self._due[event.realm_id] = time.monotonic() + self.delay()
        # Later events join a window the loop already waits for; only a new window needs a wake-up.
        if opens_window:
            self._poke()

    def flush_now(self) -> None:
        """Make every buffered event due at once (for a control-plane "send now")."""
        with self._lock:
            now = time.monotonic()
            for realm_id in self._due:
                self._due[realm_id] = now
        self._poke()

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return  # not started: events wait in the buffer until start()
        if threading.get_ident() == self._loop_thread:
            wake.set()
        else:
            loop.call_soon_threadsafe(wake.set)

    def pending_events(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._pending.values())

    def idle(self) -> bool:
        """True when nothing is buffered, queued or being sent."""
        queued = any(not q.empty() for q in self._queues.values())
        return self.pending_events() == 0 and not queued and self._in_flight == 0

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = asyncio.Event()
        self._client = httpx.AsyncClient(
            headers={"User-Agent": "qbo-sandbox-webhooks/1"}, follow_redirects=False, trust_env=False
        )
        self._task = asyncio.create_task(self._run(), name="qbo-sandbox-webhooks")

    async def stop(self) -> None:
        tasks = [t for t in [self._task, *self._senders.values()] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._task = None
        self._senders.clear()
        self._queues.clear()
        self._in_flight = 0
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._loop = None
        self._wake = None

    # -- batching --------------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            batches, next_due = self._take_due()
            if batches:
                self._dispatch(batches)
                continue
            self._wake.clear()
            timeout = None if next_due is None else max(0.0, next_due - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _take_due(self) -> tuple[dict[str, list[ChangeEvent]], float | None]:
        # Windows that open within a quarter of the delay of each other are taken together, so a
        # scheduler hiccup between two near-simultaneous writes does not split one realm's changes;
        # each realm still gets POSTs of its own (_dispatch).
        horizon = time.monotonic() + self.delay() / 4
        with self._lock:
            due = [realm for realm, at in self._due.items() if at <= horizon]
            batches = {realm: self._pending.pop(realm, []) for realm in due}
            for realm in due:
                del self._due[realm]
            next_due = min(self._due.values(), default=None)
        return batches, next_due

    def _dispatch(self, batches: dict[str, list[ChangeEvent]]) -> None:
        # One realm per POST in both formats: Intuit says so for legacy (§9.4, "sent one realm ID
        # at a time"); whether a CloudEvents POST may mix realms is unknown, so it does not here.
        for realm_id, events in batches.items():
            for app in self.sandbox.oauth.apps_for_realm(realm_id):
                if not app.webhook_url:
                    continue
                wanted = getattr(app, "webhook_entities", None)
                chosen = [ev for ev in events if wanted is None or ev.entity in wanted]
                if not chosen:
                    continue
                for delivery in self._build(app, chosen):
                    self.deliveries.append(delivery)
                    self._enqueue(delivery)

    def _build(self, app: Any, events: list[ChangeEvent]) -> list[Delivery]:
        fmt = getattr(app, "webhook_format", "cloudevents")
        if fmt == "legacy":
            bodies: list[tuple[Any, list[ChangeEvent]]] = [(legacy_body(events), events)]
        else:
            data = str(getattr(self.config, "webhook_cloudevents_data", "empty"))
            bodies = []
            for i in range(0, len(events), CLOUDEVENTS_PER_DELIVERY):
                chunk = events[i : i + CLOUDEVENTS_PER_DELIVERY]
                bodies.append((cloudevents_body(chunk, app.client_id, data), chunk))
        out = []
        for payload, chunk in bodies:
            body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
            out.append(
                Delivery(
                    delivery_id=str(uuid.uuid4()),
                    client_id=app.client_id,
                    url=app.webhook_url,
                    format=fmt,
                    realm_ids=sorted({ev.realm_id for ev in chunk}),
                    events=len(chunk),
                    body=body,
                    signature=sign(body, app.verifier_token),
                    created_at=time.time(),
                )
            )
        return out

    # -- sending ---------------------------------------------------------------------------------

    def _enqueue(self, delivery: Delivery) -> None:
        queue = self._queues.get(delivery.client_id)
        if queue is None:
            queue = self._queues[delivery.client_id] = asyncio.Queue()
            self._senders[delivery.client_id] = asyncio.create_task(
                self._sender(queue), name=f"qbo-sandbox-webhooks-{delivery.client_id}"
            )
        queue.put_nowait(delivery)

    async def _sender(self, queue: asyncio.Queue[Delivery]) -> None:
        while True:
            delivery = await queue.get()
            self._in_flight += 1
            try:
                await self._deliver(delivery)
            finally:
                self._in_flight -= 1

    async def _deliver(self, delivery: Delivery) -> None:
        assert self._client is not None
        headers = {"Content-Type": "application/json", "intuit-signature": delivery.signature}
        attempt_no = 0
        while True:
            if attempt_no:
                # Read the knobs at each retry, so a test (or the control plane) can change them
                # while a delivery keeps failing.
                retries = self.max_retries()
                if retries is not None and attempt_no > retries:
                    break
                wait = self.retry_delay(attempt_no - 1)
                delivery.next_attempt_at = time.time() + wait
                await asyncio.sleep(wait)
                delivery.next_attempt_at = None
            started = time.monotonic()
            status: int | None = None
            error: str | None = None
            try:
                response = await self._client.post(
                    delivery.url, content=delivery.body, headers=headers, timeout=self.timeout()
                )
                status = response.status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            delivery.attempts.append(
                Attempt(at=time.time(), status_code=status, error=error, seconds=time.monotonic() - started)
            )
            if status is not None and 200 <= status < 300:
                delivery.status = "delivered"
                return
            log.info(
                "webhook delivery %s to %s failed (attempt %d): %s",
                delivery.delivery_id,
                delivery.client_id,
                attempt_no + 1,
                status or error,
            )
            attempt_no += 1
        delivery.status = "failed"

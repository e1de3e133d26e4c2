"""Intuit's webhook notifications: check the signature, read both formats, store ChangeNotices.

The receiver (`practice.quickbooks.web.webhook_views`) must answer Intuit within 3 seconds and
Intuit holds back every later notification until one is acknowledged (qbo-api.md §9.4), so this
module never calls QBO: it stores one `ChangeNotice` per event and enqueues
`apply_qbo_changes(connection_id)`, which reads the records afterwards.

- Signature: `intuit-signature` is the padded Base64 of HMAC-SHA256(verifier token, raw body),
  the same for both formats; compared in constant time.
- Legacy format: `{"eventNotifications": [{"realmId", "dataChangeEvent": {"entities": [...]}}]}`.
- CloudEvents: a JSON array of `{"specversion", "id", "type": "qbo.<entity>.<verb>.v1", "time",
  "intuitentityid", "intuitaccountid", "data"?}`; `data` is never the record, at most
  `{"deletedid": ...}` for a merge.
- An event about Preferences, PaymentMethod, Class or Department marks the realm facts kept
  from it stale (sync/realm_facts.py), so the next run reads them again.
- A repeated delivery is a no-op: each event has a `dedupe_key` (the CloudEvents `id`; legacy:
  entity|id|operation|lastUpdated), unique per connection, inserted with ON CONFLICT DO NOTHING.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction

from practice.quickbooks.models import ChangeNotice, Connection, ConnectionStatus
from practice.quickbooks.sync import realm_facts
from practice.quickbooks.sync.tasks import apply_qbo_changes

log = logging.getLogger("practice.quickbooks.webhooks")

# The verifier token `make demo` registers with the bundled sandbox (demo/local_sandbox.py), used
# when QBO_ENVIRONMENT is sandbox-local and QBO_WEBHOOK_VERIFIER_TOKEN is not set, as the
# development OAuth keys are (connection/oauth.py). Never used for Intuit's environments.
LOCAL_VERIFIER_TOKEN = "practice-local-dev-verifier"

# CloudEvents verbs -> the legacy `operation` words (qbo-api.md §9.2, §9.4). Only created,
# updated and merged are confirmed by Intuit; the others follow the same pattern.
CE_VERBS = {
    "created": "Create",
    "updated": "Update",
    "deleted": "Delete",
    "merged": "Merge",
    "voided": "Void",
    "emailed": "Emailed",
}

# Intuit's webhook entities (qbo-api.md §9.1 table): CloudEvents spell them in lower case
# (`qbo.creditmemo.created.v1`); notices keep QBO's own spelling, as the legacy format and CDC do.
QBO_ENTITIES = {
    name.lower(): name
    for name in (
        "Account",
        "Bill",
        "BillPayment",
        "Budget",
        "Class",
        "CreditMemo",
        "Currency",
        "Customer",
        "Department",
        "Deposit",
        "Employee",
        "Estimate",
        "Invoice",
        "Item",
        "JournalCode",
        "JournalEntry",
        "Payment",
        "PaymentMethod",
        "Preferences",
        "Purchase",
        "PurchaseOrder",
        "RefundReceipt",
        "SalesReceipt",
        "TaxAgency",
        "Term",
        "TimeActivity",
        "Transfer",
        "Vendor",
        "VendorCredit",
    )
}

_CE_TYPE = re.compile(r"^qbo\.([A-Za-z]+)\.([A-Za-z]+)\.v\d+$")
# Sizes of the ChangeNotice columns: a longer value is not a QBO id, so its event is skipped.
_MAX_ID = 32
_MAX_ENTITY = 32
_MAX_OPERATION = 16
_MAX_KEY = 200


class MalformedDelivery(ValueError):
    """The body is not a webhook delivery at all (not JSON, or neither of Intuit's two shapes)."""


@dataclass(frozen=True)
class Event:
    """One change of one QBO entity, as a webhook told it."""

    realm_id: str
    entity: str
    entity_id: str
    operation: str
    deleted_id: str
    changed_at: datetime | None
    dedupe_key: str


@dataclass(frozen=True)
class Received:
    """What one delivery did: events read, events skipped, notices stored, connections told."""

    events: int
    skipped: int
    stored: int
    connections: tuple[int, ...]


# -- configuration ------------------------------------------------------------------------------


def verifier_token() -> str:
    """The app's verifier token; "" when none is configured (the receiver then refuses all)."""
    token = str(getattr(settings, "QBO_WEBHOOK_VERIFIER_TOKEN", "") or "")
    if not token and getattr(settings, "QBO_ENVIRONMENT", "") == "sandbox-local":
        return LOCAL_VERIFIER_TOKEN
    return token


def max_body_bytes() -> int:
    return int(getattr(settings, "QBO_WEBHOOK_MAX_BODY_BYTES", 2 * 1024 * 1024))


# -- signature ----------------------------------------------------------------------------------


def signature_valid(body: bytes, header: str | None, token: str) -> bool:
    """True when `header` is Base64 of HMAC-SHA256(token, body); constant-time comparison.

    As Intuit says to check it: decode the header and compare digests, so only a header that
    carries the very digest passes (anything that is not Base64 fails, it never raises).
    """
    if not header or not token:
        return False
    try:
        given = base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(token.encode("utf-8"), body, hashlib.sha256).digest()
    return hmac.compare_digest(expected, given)


# -- parsing ------------------------------------------------------------------------------------


def parse(body: bytes) -> tuple[list[Event], int]:
    """The events of a delivery, and how many of its events were skipped as unusable.

    Raises MalformedDelivery when the body is not JSON or is neither format. Inside a delivery of
    a known shape, an event missing its realm, entity or id is skipped (and counted) instead of
    refusing the whole delivery: Intuit would resend a refused delivery forever and hold back
    every notification after it, while the CDC sweep finds a change whose notice was lost.
    """
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedDelivery("not JSON") from exc
    if isinstance(payload, dict) and isinstance(payload.get("eventNotifications"), list):
        return _parse_legacy(payload["eventNotifications"])
    if isinstance(payload, list) and all(isinstance(e, dict) and "specversion" in e for e in payload):
        return _parse_cloudevents(payload)
    raise MalformedDelivery("neither an eventNotifications object nor a CloudEvents array")


def _text(value: Any, limit: int) -> str | None:
    """A non-empty identifier of at most `limit` characters (QBO sends ids as strings; numbers pass)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text if 0 < len(text) <= limit else None


def _changed_at(value: Any) -> datetime | None:
    """`lastUpdated` / `time` as an aware datetime; None when absent or unreadable.

    Intuit writes `2015-10-05T14:42:19-0700`, `2016-10-05T03:09:04.000Z` or nanoseconds with a Z;
    a stamp without a zone is taken as UTC.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        stamp = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def _key(text: str) -> str:
    """A dedupe key that fits its column: longer keys are replaced by their SHA-256."""
    if len(text) <= _MAX_KEY:
        return text
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _parse_legacy(notifications: list[Any]) -> tuple[list[Event], int]:
    events: list[Event] = []
    skipped = 0
    for notification in notifications:
        if not isinstance(notification, dict):
            skipped += 1
            continue
        realm_id = _text(notification.get("realmId"), _MAX_ID)
        change = notification.get("dataChangeEvent")
        entities = change.get("entities") if isinstance(change, dict) else None
        if not isinstance(entities, list):
            skipped += 1
            continue
        for item in entities:
            event = _legacy_event(realm_id, item) if isinstance(item, dict) else None
            if event is None:
                skipped += 1
            else:
                events.append(event)
    return events, skipped


def _legacy_event(realm_id: str | None, item: dict[str, Any]) -> Event | None:
    entity = _text(item.get("name"), _MAX_ENTITY)
    entity_id = _text(item.get("id"), _MAX_ID)
    operation = _text(item.get("operation"), _MAX_OPERATION)
    if not (realm_id and entity and entity_id and operation):
        return None
    last_updated = item.get("lastUpdated")
    stamp = last_updated.strip() if isinstance(last_updated, str) else ""
    return Event(
        realm_id=realm_id,
        entity=entity,
        entity_id=entity_id,
        operation=operation,
        deleted_id=_text(item.get("deletedId"), _MAX_ID) or "",
        changed_at=_changed_at(last_updated),
        dedupe_key=_key(f"{entity}|{entity_id}|{operation}|{stamp}"),
    )


def _parse_cloudevents(items: list[dict[str, Any]]) -> tuple[list[Event], int]:
    events: list[Event] = []
    skipped = 0
    for item in items:
        event = _cloud_event(item)
        if event is None:
            skipped += 1
        else:
            events.append(event)
    return events, skipped


def _cloud_event(item: dict[str, Any]) -> Event | None:
    """One CloudEvent; None for one that names no QBO entity change we can act on.

    A `type` of Intuit's pattern with a verb we do not know (Intuit may add some) is kept, with the
    verb as its operation: a notice only says "read this record again", and the drift check reads
    the record whatever the verb, so dropping it would lose a real change. A `type` outside the
    pattern names no entity and is skipped.
    """
    type_ = item.get("type")
    match = _CE_TYPE.match(type_) if isinstance(type_, str) else None
    realm_id = _text(item.get("intuitaccountid"), _MAX_ID)
    entity_id = _text(item.get("intuitentityid"), _MAX_ID)
    if match is None or not realm_id or not entity_id:
        return None
    raw_entity, verb = match.group(1), match.group(2).lower()
    entity = QBO_ENTITIES.get(raw_entity.lower(), raw_entity)[:_MAX_ENTITY]
    operation = CE_VERBS.get(verb, verb.capitalize())[:_MAX_OPERATION]
    data = item.get("data")
    deleted_id = _text(data.get("deletedid"), _MAX_ID) if isinstance(data, dict) else None
    event_id = _text(item.get("id"), 10_000)
    stamp = item.get("time") if isinstance(item.get("time"), str) else ""
    # The CloudEvents `id` identifies the event across Intuit's retries; without one, the
    # legacy-style key still makes a repeated delivery a no-op.
    key = event_id or f"{entity}|{entity_id}|{operation}|{stamp}"
    return Event(
        realm_id=realm_id,
        entity=entity,
        entity_id=entity_id,
        operation=operation,
        deleted_id=deleted_id or "",
        changed_at=_changed_at(item.get("time")),
        dedupe_key=_key(key),
    )


# -- storing ------------------------------------------------------------------------------------


def store(events: list[Event]) -> tuple[int, tuple[int, ...]]:
    """Store the events as ChangeNotices of the live connection to their realm (one at most per
    realm and environment: a company belongs to one firm, see Connection's constraint).

    Returns (notices stored, connections that got new notices). A realm no connection has is
    ignored (the delivery is still acknowledged, or Intuit would resend it forever). Connected
    connections get one `apply_qbo_changes` each, after commit, unless one is already queued; a
    connection waiting for a reconnect keeps its notices until its next apply (it cannot read QBO
    before that).
    """
    if not events:
        return 0, ()
    realms = {e.realm_id for e in events}
    # The notifications come from the app of the current environment: a connection made in
    # another one (say the local sandbox, before switching to production) is another company,
    # even when its made-up realm id happens to be the same string.
    live = Connection.objects.filter(
        realm_id__in=realms,
        environment=getattr(settings, "QBO_ENVIRONMENT", "") or "sandbox-local",
        status__in=[ConnectionStatus.CONNECTED, ConnectionStatus.NEEDS_RECONNECT],
    ).values_list("pk", "realm_id", "status")
    stored = 0
    told: list[int] = []
    with transaction.atomic():
        for connection_id, realm_id, status in live:
            # One notice per key, the first event of a key wins (duplicates within one delivery).
            by_key: dict[str, Event] = {}
            for event in events:
                if event.realm_id == realm_id:
                    by_key.setdefault(event.dedupe_key, event)
            seen = ChangeNotice.objects.filter(connection_id=connection_id, dedupe_key__in=list(by_key))
            known = set(seen.values_list("dedupe_key", flat=True))
            fresh = [e for key, e in by_key.items() if key not in known]
            if not fresh:
                continue
            # ON CONFLICT DO NOTHING: a replay racing this one in another request inserts nothing twice.
            ChangeNotice.objects.bulk_create(
                [
                    ChangeNotice(
                        connection_id=connection_id,
                        entity=e.entity,
                        entity_id=e.entity_id,
                        operation=e.operation,
                        deleted_id=e.deleted_id,
                        changed_at=e.changed_at,
                        source="webhook",
                        dedupe_key=e.dedupe_key,
                    )
                    for e in fresh
                ],
                ignore_conflicts=True,
            )
            stored += len(fresh)
            # A change of Preferences, PaymentMethod, Class or Department: the realm's kept facts
            # are read again by the next run (no QBO call here: the receiver must answer fast).
            realm_facts.note_changes(connection_id, ((e.entity, e.dedupe_key) for e in fresh))
            if status == ConnectionStatus.CONNECTED:
                told.append(connection_id)
                transaction.on_commit(_enqueue_apply(connection_id), robust=True)
    return stored, tuple(told)


def _enqueue_apply(connection_id: int) -> Any:
    def enqueue() -> None:
        if not _apply_waiting(connection_id):
            apply_qbo_changes.enqueue(connection_id)

    return enqueue


def _apply_waiting(connection_id: int) -> bool:
    """True when an apply of this connection is queued and not started yet.

    That one will read these notices too (they are committed before this runs), so a burst of
    deliveries queues one check, not one per delivery. An apply already running may have read
    the pending notices before these arrived: only READY counts, so they get their own apply.
    """
    try:
        from django_tasks_db.models import DBTaskResult
    except ImportError:  # another task backend: one apply per delivery, as before
        return False
    queued = DBTaskResult.objects.filter(task_path=apply_qbo_changes.module_path, status="READY")
    return any(
        (args or {}).get("args") == [connection_id] for args in queued.values_list("args_kwargs", flat=True)
    )


def receive(body: bytes) -> Received:
    """Parse a delivery whose signature was checked, and store its notices."""
    events, skipped = parse(body)
    stored, told = store(events)
    return Received(events=len(events), skipped=skipped, stored=stored, connections=told)

"""The sandbox's top-level state: realms, per-realm runtime (throttles, faults, logs, requestid cache),
the OAuth store and the webhook dispatcher, plus snapshot persistence."""

from __future__ import annotations

import json
import logging
import os
import secrets
import tempfile
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from qbo_sandbox import batch_faults
from qbo_sandbox import seed as seeding
from qbo_sandbox.config import SandboxConfig
from qbo_sandbox.oauth import OAuthStore
from qbo_sandbox.store import Realm
from qbo_sandbox.webhooks import WebhookDispatcher

log = logging.getLogger("qbo_sandbox")

FAULT_KINDS = {
    "429",
    "500",
    "502",
    "503",
    "504",
    "timeout",
    "drop",
    "fault_200",
    "revoke",
    "401",
    "401_xml",
    "403",
    "500_json",
} | batch_faults.ITEM_FAULT_KINDS
FAULT_ALIASES = {"drop_after_commit": "drop", "revoke_token": "revoke", "throttle": "429"}


@dataclass
class FaultRule:
    """One injected failure, consumed `count` times by requests matching all given filters."""

    id: str
    kind: str
    count: int = 1
    method: str | None = None
    path: str | None = None
    entity: str | None = None
    operation: str | None = None
    seconds: float | None = None
    code: str | None = None
    # Batch item faults only (batch_faults.py): which item, and whether its write still happens.
    item: int | None = None
    bid: str | None = None
    committed: bool = False
    detail: str | None = None

    def matches(self, method: str, path: str, entity: str | None, operation: str) -> bool:
        if self.count <= 0:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        if self.path and self.path not in path:
            return False
        if self.entity and (entity or "").lower() != self.entity.lower():
            return False
        return not (self.operation and self.operation.lower() != operation.lower())


class Window:
    """Timestamps of recent events, for sliding-window limits."""

    __slots__ = ("events",)

    def __init__(self) -> None:
        self.events: deque[float] = deque()

    def count(self, now: float, span: float) -> int:
        cutoff = now - span
        ev = self.events
        while ev and ev[0] <= cutoff:
            ev.popleft()
        return len(ev)


@dataclass
class RealmRuntime:
    """What the sandbox tracks about a realm's traffic; not part of the books and not snapshotted."""

    minute: Window = field(default_factory=Window)
    batch_minute: Window = field(default_factory=Window)
    per_app_second: dict[str, Window] = field(default_factory=dict)
    per_app_batch: dict[str, Window] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)
    faults: list[FaultRule] = field(default_factory=list)
    log: deque[dict[str, Any]] = field(default_factory=deque)
    counters: dict[str, int] = field(default_factory=dict)
    # requestid -> (stored at, fingerprint, status, body, content type)
    requestids: dict[str, tuple[float, str, int, bytes, str]] = field(default_factory=dict)
    # batch requestid -> {bId: item request} of items an injected fault kept from running
    batch_pending: dict[str, dict[str, Any]] = field(default_factory=dict)

    def bump(self, name: str, by: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + by


def new_counters() -> dict[str, int]:
    return {
        "requests": 0,
        "operations": 0,
        "batch_calls": 0,
        "batch_items": 0,
        "throttled": 0,
        "errors": 0,
        "faults_injected": 0,
        "replays": 0,
        "reads": 0,
        "writes": 0,
        "queries": 0,
    }


class Sandbox:
    def __init__(self, config: SandboxConfig | None = None, state_file: str | None = None) -> None:
        self.config = config or SandboxConfig()
        self.state_file = state_file
        self.realms: dict[str, Realm] = {}
        self.runtime: dict[str, RealmRuntime] = {}
        self.oauth = OAuthStore(self.config)
        self.webhooks = WebhookDispatcher(self)
        self.dirty = False
        # Token refreshes, revocations and app registrations must reach the state file like realm
        # writes do: a refresh token issued and then lost by a restart would strand the client.
        self.oauth.on_change = self._oauth_changed
        self.started = time.time()
        if state_file and os.path.exists(state_file):
            self.load(state_file)

    # ---------------------------------------------------------------- realms

    def _wire(self, realm: Realm) -> None:
        realm.on_change = self._changed
        self.runtime.setdefault(realm.realm_id, RealmRuntime(counters=new_counters()))

    def _changed(
        self,
        realm_id: str,
        entity: str,
        entity_id: str,
        operation: str,
        when: str,
        *,
        deleted_id: str | None = None,
    ) -> None:
        self.dirty = True
        try:
            if deleted_id is None:
                # Positional only, as before merges existed: tests that stand in for the
                # dispatcher with a plain function keep working.
                self.webhooks.entity_changed(realm_id, entity, entity_id, operation, when)
            else:
                self.webhooks.entity_changed(
                    realm_id, entity, entity_id, operation, when, deleted_id=deleted_id
                )
        except Exception:  # a webhook problem must never fail the API write
            log.exception("webhook enqueue failed")

    def _oauth_changed(self) -> None:
        self.dirty = True

    def create_realm(
        self, seed: str = "empty", name: str | None = None, realm_id: str | None = None
    ) -> Realm:
        if realm_id is None:
            while True:
                realm_id = str(9130000000000000 + secrets.randbelow(8 * 10**14))
                if realm_id not in self.realms:
                    break
        if seed not in seeding.SEEDS:
            raise ValueError(f"unknown seed {seed!r}; known: {', '.join(sorted(seeding.SEEDS))}")
        realm = Realm(realm_id, self.config, name or "", seed)
        seeding.SEEDS[seed](realm)
        realm.rebuild_indexes()
        self.realms[realm_id] = realm
        self._wire(realm)
        self.dirty = True
        return realm

    def reset_realm(self, realm_id: str) -> Realm:
        old = self.realms[realm_id]
        realm = Realm(realm_id, self.config, old.company_name, old.seed)
        seeding.SEEDS[old.seed](realm)
        realm.rebuild_indexes()
        self.realms[realm_id] = realm
        self.runtime[realm_id] = RealmRuntime(counters=new_counters())
        self._wire(realm)
        self.dirty = True
        return realm

    def delete_realm(self, realm_id: str) -> None:
        self.realms.pop(realm_id)
        self.runtime.pop(realm_id, None)
        self.oauth.revoke_realm(realm_id)
        self.dirty = True

    def rt(self, realm_id: str) -> RealmRuntime:
        return self.runtime.setdefault(realm_id, RealmRuntime(counters=new_counters()))

    # ---------------------------------------------------------------- faults

    def add_fault(self, realm_id: str, spec: dict[str, Any]) -> FaultRule:
        kind = str(spec.get("kind", ""))
        kind = FAULT_ALIASES.get(kind, kind)
        if kind not in FAULT_KINDS:
            raise batch_faults.FaultSpecError(
                "kind", f"unknown fault kind {kind!r}; known: {', '.join(sorted(FAULT_KINDS))}"
            )
        count = spec.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int | str) or not str(count).isdigit():
            raise batch_faults.FaultSpecError("count", "count must be a whole number of requests")
        rule = FaultRule(
            id=secrets.token_hex(6),
            kind=kind,
            count=int(count),
            **batch_faults.check_item_spec(kind, spec),
            method=spec.get("method"),
            path=spec.get("path"),
            entity=spec.get("entity"),
            operation=spec.get("operation"),
            seconds=float(spec["seconds"]) if spec.get("seconds") is not None else None,
            code=spec.get("code"),
        )
        self.rt(realm_id).faults.append(rule)
        return rule

    def take_fault(
        self, realm_id: str, method: str, path: str, entity: str | None, operation: str, post: bool
    ) -> FaultRule | None:
        """Consume the first matching rule; `post` picks drop-after-commit rules (checked after the write)."""
        rt = self.runtime.get(realm_id)
        if rt is None or not rt.faults:
            return None
        for rule in rt.faults:
            if rule.kind in batch_faults.ITEM_FAULT_KINDS:
                continue
            if (rule.kind == "drop") == post and rule.matches(method, path, entity, operation):
                rule.count -= 1
                if rule.count <= 0:
                    rt.faults.remove(rule)
                rt.bump("faults_injected")
                return rule
        return None

    def take_item_faults(self, realm_id: str, items: list[dict[str, Any]]) -> dict[str, FaultRule]:
        """Consume the item rules that hit this batch: {bId: rule}, at most one rule per item.

        A rule's `count` is the number of batch requests it affects."""
        rt = self.runtime.get(realm_id)
        if rt is None or not rt.faults:
            return {}
        hits: dict[str, FaultRule] = {}
        for rule in list(rt.faults):
            for position, item in enumerate(items, 1):
                bid = str(item.get("bId", ""))
                if bid not in hits and batch_faults.targets(rule, position, item):
                    hits[bid] = rule
                    rule.count -= 1
                    if rule.count <= 0:
                        rt.faults.remove(rule)
                    rt.bump("faults_injected")
                    break
        return hits

    # ---------------------------------------------------------------- snapshots

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "saved_at": time.time(),
            "realms": {rid: r.to_dict() for rid, r in self.realms.items()},
            # Replays must survive a sandbox restart, as a client retry may come after one.
            "requestids": {
                rid: {
                    key: [v[0], v[1], v[2], v[3].decode("utf-8", "replace"), v[4]]
                    for key, v in rt.requestids.items()
                }
                for rid, rt in self.runtime.items()
                if rid in self.realms
            },
            "batch_pending": {
                rid: rt.batch_pending
                for rid, rt in self.runtime.items()
                if rid in self.realms and rt.batch_pending
            },
            "oauth": self.oauth.to_dict(),
        }

    def save(self, path: str | None = None) -> str:
        target = path or self.state_file
        if not target:
            raise ValueError("no state file configured")
        data = json.dumps(self.to_dict(), separators=(",", ":"))
        folder = os.path.dirname(os.path.abspath(target))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".qbo-sandbox-", dir=folder)
        with os.fdopen(fd, "w") as fh:
            fh.write(data)
        os.replace(tmp, target)
        self.dirty = False
        return target

    def load(self, path: str) -> None:
        with open(path) as fh:
            data = json.load(fh)
        self.realms = {}
        for rid, rd in data.get("realms", {}).items():
            realm = Realm.from_dict(rd, self.config)
            self.realms[rid] = realm
            self._wire(realm)
        for rid, cache in data.get("requestids", {}).items():
            if rid in self.realms:
                self.rt(rid).requestids = {
                    key: (float(v[0]), str(v[1]), int(v[2]), str(v[3]).encode(), str(v[4]))
                    for key, v in cache.items()
                }
        for rid, pending in data.get("batch_pending", {}).items():
            if rid in self.realms:
                self.rt(rid).batch_pending = dict(pending)
        if "oauth" in data:
            self.oauth.from_dict(data["oauth"])

    def describe_realm(self, realm: Realm) -> dict[str, Any]:
        return {
            "realm_id": realm.realm_id,
            "company_name": realm.company_name,
            "seed": realm.seed,
            "created": realm.created.isoformat(),
            "counts": {k: len(v) for k, v in realm.data.items() if v},
        }


def fault_dict(rule: FaultRule) -> dict[str, Any]:
    return asdict(rule)

"""Runtime knobs of the sandbox, shared by the API core, OAuth and webhooks.

Everything that QBO fixes (limits, windows, token lifetimes) is a field here so tests can shrink it,
and `time_scale` compresses the time windows (throttling, requestid retention, webhook retries):
0.01 makes a "minute" last 0.6 s.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class SandboxConfig:
    # Throttling (qbo-api.md §7): per realm, per app.
    throttling_enabled: bool = True
    requests_per_minute: int = 500
    max_concurrent: int = 10
    batch_per_minute: int = 40  # per realm and app
    batch_per_minute_realm: int = 120  # per realm, all apps together
    batch_max_items: int = 30
    # Batch items don't see objects created by other items of the same batch (REF-batch, BLOG-B).
    batch_items_isolated: bool = True
    # Multiplies the throttle windows and the requestid retention; < 1 makes them shorter for tests.
    # The CDC window and OAuth lifetimes have their own knobs.
    time_scale: float = 1.0
    # requestid replay memory (§5); QBO does not document it, the recommendation is "about a day".
    requestid_retention_seconds: float = 86400.0
    requestid_max_entries: int = 200000  # per realm; the oldest are forgotten first
    # A replay is the stored body byte for byte (False) or with a fresh envelope `time` (True).
    requestid_replay_new_time: bool = False
    # Query paging (§3).
    default_max_results: int = 100
    max_results_cap: int = 1000
    # CDC look-back (§9.3).
    cdc_window_days: int = 30
    cdc_max_results: int = 1000
    # Fault injection "timeout" sleeps this long before answering (longer than a sane client timeout).
    timeout_fault_seconds: float = 30.0
    # DisplayName uniqueness across Customer/Vendor/Employee (§2.1 emulator choice), and string
    # comparisons in queries.
    name_unique_case_insensitive: bool = True
    name_unique_includes_inactive: bool = True
    query_case_insensitive: bool = True
    # MAXRESULTS above the cap: silently capped (False) or a 4001 fault (True); unverified (§12).
    max_results_error: bool = False
    # requestid: answer 600 when a reused id carries a different request (§5 option), instead of replaying.
    requestid_mismatch_fault: bool = False
    # Payment lines applying more than an invoice's open balance: 6000 (True, §2.6 emulator choice) or
    # applied up to the open balance with the rest left unapplied (False); unverified (§12).
    reject_overapplied_payments: bool = True
    # 429 body: "xml" as QBO sends it, or "json"; optional Retry-After header (unverified, §7).
    throttle_body: str = "xml"
    retry_after_header: bool = False
    requests_per_second: int = 10
    # Snapshot file autosave interval when state changed (0 = only on shutdown / explicit snapshot).
    snapshot_interval_seconds: float = 2.0
    # Keep a per-realm request log of at most this many entries.
    request_log_size: int = 2000
    # Rough latency added to every API call, for realistic benchmarks of clients (0 = off).
    latency_seconds: float = 0.0
    # Accept requests without a bearer token (handy for manual poking; never in tests of auth).
    auth_required: bool = True

    # OAuth (owned by qbo_sandbox/oauth.py).
    access_token_ttl: int = 3600
    refresh_token_ttl: int = 8726400
    refresh_token_grace_seconds: int = 86400
    auth_code_ttl: int = 300
    # Webhooks (owned by qbo_sandbox/webhooks.py).
    webhook_delay_seconds: float = 1.0
    webhook_max_retries: int = 3
    # Intuit wants the 200 within 3 s (BLOG-WHMON); a slower answer counts as a failed attempt.
    webhook_timeout_seconds: float = 3.0
    public_base_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def update(self, values: dict[str, Any]) -> list[str]:
        """Apply known fields, coercing to the declared type; returns names that were unknown."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        unknown = []
        for key, value in values.items():
            if key not in fields:
                unknown.append(key)
                continue
            current = getattr(self, key)
            if value is None or current is None:
                setattr(self, key, value)
            elif isinstance(current, bool):
                setattr(self, key, bool(value))
            elif isinstance(current, int):
                setattr(self, key, int(value))
            elif isinstance(current, float):
                setattr(self, key, float(value))
            else:
                setattr(self, key, value)
        return unknown

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

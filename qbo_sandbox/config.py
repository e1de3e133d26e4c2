"""Runtime knobs of the sandbox, shared by the API core, OAuth and webhooks.

Everything that QBO fixes (limits, windows, token lifetimes) is a field here so tests can shrink it,
and `time_scale` compresses the time windows (throttling, requestid retention, webhook retries):
0.01 makes a "minute" last 0.6 s.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# Knobs that may be 0 (meaning "off"); every other number must be strictly positive.
_ZERO_ALLOWED = {
    "requests_per_minute",
    "requests_per_second",
    "max_concurrent",
    "batch_per_minute",
    "batch_per_minute_realm",
    "requestid_retention_seconds",
    "requestid_max_entries",
    "cdc_window_days",
    "timeout_fault_seconds",
    "snapshot_interval_seconds",
    "request_log_size",
    "latency_seconds",
    "refresh_token_grace_seconds",
    "webhook_delay_seconds",
    "webhook_max_retries",
}
_OPTIONAL = {"public_base_url"}
# Whole-number knobs where null has a meaning of its own (webhook_max_retries: null = no limit).
_OPTIONAL_INT = {"webhook_max_retries"}
_CHOICES = {"throttle_body": ("xml", "json"), "webhook_cloudevents_data": ("empty", "absent")}


class ConfigError(ValueError):
    """A knob given a value of the wrong type or range; `field` names the knob."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _checked(key: str, current: Any, value: Any) -> Any:
    """`value` converted to the type of the knob's current value, or ConfigError."""
    if value is None:
        if key in _OPTIONAL or key in _OPTIONAL_INT:
            return None
        raise ConfigError(key, f"{key} must not be null")
    if current is None and key in _OPTIONAL_INT:
        current = 0  # checked as the whole number it becomes
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
            return value.strip().lower() in ("true", "1")
        raise ConfigError(key, f"{key} must be true or false, not {value!r}")
    if isinstance(current, int | float):
        kind = "a whole number" if isinstance(current, int) else "a number"
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(key, f"{key} must be {kind}, not {value!r}")
        try:
            number: float = int(value) if isinstance(current, int) else float(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(key, f"{key} must be {kind}, not {value!r}") from None
        if isinstance(current, int) and isinstance(value, float) and value != number:
            raise ConfigError(key, f"{key} must be {kind}, not {value!r}")
        if number != number or number in (float("inf"), float("-inf")):
            raise ConfigError(key, f"{key} must be a finite number, not {value!r}")
        if number < 0 or (number == 0 and key not in _ZERO_ALLOWED):
            least = "0 or more" if key in _ZERO_ALLOWED else "more than 0"
            raise ConfigError(key, f"{key} must be {least}, not {value!r}")
        return number
    if not isinstance(value, str):
        raise ConfigError(key, f"{key} must be a string, not {value!r}")
    if key in _CHOICES and value not in _CHOICES[key]:
        raise ConfigError(key, f"{key} must be {' or '.join(_CHOICES[key])}, not {value!r}")
    return value


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
    # Entity names in queries: any case (False; what node-quickbooks relies on) or exactly as
    # Intuit's reference spells them (True: `from customer` is a 4001).
    query_entity_case_sensitive: bool = False
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
    # Largest request body accepted, in bytes (API and control plane); QBO's own limit for JSON
    # bodies is undocumented (docs/sandbox.md), larger bodies get a 413 Fault.
    max_body_bytes: int = 10_000_000
    # Accept requests without a bearer token (handy for manual poking; never in tests of auth).
    auth_required: bool = True

    # OAuth (owned by qbo_sandbox/oauth.py).
    access_token_ttl: int = 3600
    refresh_token_ttl: int = 8726400
    refresh_token_grace_seconds: int = 86400
    auth_code_ttl: int = 300
    # Webhooks (owned by qbo_sandbox/webhooks.py).
    webhook_delay_seconds: float = 1.0
    # Retries after a failed delivery. Intuit never gives up: 0 s, 10 s, 20 s, 30 s, 5 min, 20 min,
    # 2 h, 4 h, 6 h, then every 6 h (qbo-api.md §9.4, WHMON), so null (the default) means no limit;
    # a number stops after that many retries (the delivery is then "failed"), for tests.
    webhook_max_retries: int | None = None
    # CloudEvents `data` of events other than merges: "empty" sends {}, "absent" leaves the member
    # out (both occur in Intuit's examples, §9.4); a merge always carries {"deletedid": ...}.
    webhook_cloudevents_data: str = "empty"
    # Intuit wants the 200 within 3 s (BLOG-WHMON); a slower answer counts as a failed attempt.
    webhook_timeout_seconds: float = 3.0
    public_base_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def update(self, values: dict[str, Any]) -> list[str]:
        """Apply known fields, checked against their declared type; returns names that were unknown.

        A bad value raises ConfigError naming the field, and then nothing is applied: a half-applied
        change would leave the sandbox in a state nobody asked for."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        unknown = []
        checked: dict[str, Any] = {}
        for key, value in values.items():
            if key not in fields:
                unknown.append(key)
                continue
            checked[key] = _checked(key, getattr(self, key), value)
        for key, value in checked.items():
            setattr(self, key, value)
        return unknown

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

"""Faults aimed at one item of a batch, and the per-item requestid bookkeeping they need.

A batch is not a transaction (qbo-api.md §4): each item commits or fails on its own, so a client
must cope with one item failing while its neighbours succeed. Three kinds model what can happen to
one item:

* ``item_fault``: a definitive ValidationFault with a chosen ``code`` (QBO refused that item).
* ``item_500``: a SystemFault (code 10000) element for the item, a transient failure.
* ``item_unanswered``: the item is missing from ``BatchItemResponse``.

The two transient kinds take ``committed``: with ``true`` the write happens and only the answer is
lost (the dangerous case: a client that re-sends with a new requestid duplicates the record); with
``false`` nothing is written.

A batch sent with a ``requestid`` is replayed from the cache (§5). The cache keeps what QBO did,
not what the client saw: a committed item's real answer, so a retry with the same requestid learns
the outcome; an uncommitted item is remembered as pending and executed when the same requestid
comes back, so the retry completes it exactly once.
"""

from __future__ import annotations

from typing import Any

from qbo_sandbox import errors
from qbo_sandbox.entities import SPECS

ITEM_FAULT_KINDS = frozenset({"item_fault", "item_500", "item_unanswered"})

# Marks an item of a cached batch answer that was never executed (uncommitted transient fault).
PENDING = "_sandboxPending"

# Message texts of codes a test is likely to pick (qbo-api.md §6.3); others get 6000's wording.
_MESSAGES = {
    "610": "Object Not Found",
    "2010": "Request has invalid or unsupported property",
    "2020": "Required param missing, need to supply the required value for the API",
    "2500": "Invalid Reference Id",
    "5010": "Stale Object Error",
    "6000": "A business validation error has occurred while processing your request",
    "6140": "Duplicate Document Number Error",
    "6190": "Invalid Company Status",
    "6240": "Duplicate Name Exists Error",
    "6540": "Deposited Transaction cannot be changed",
}


class FaultSpecError(ValueError):
    """A fault spec with a bad field; the control plane's 400 names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_item_spec(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The item-targeting fields of a fault spec, validated: ``item``, ``bid``, ``committed``, ``detail``."""
    item, bid = spec.get("item"), spec.get("bid")
    committed = spec.get("committed", False)
    if kind not in ITEM_FAULT_KINDS:
        for name in ("item", "bid", "committed", "detail"):
            if spec.get(name) is not None:
                raise FaultSpecError(name, f"{name} applies only to the item_* fault kinds, not {kind!r}")
        return {}
    if (item is None) == (bid is None):
        raise FaultSpecError("item", f"{kind} needs exactly one of item (1-based position) or bid")
    if item is not None and (isinstance(item, bool) or not isinstance(item, int) or item < 1):
        if not (isinstance(item, str) and item.isdigit() and int(item) >= 1):
            raise FaultSpecError("item", "item must be a whole number from 1 (the first batch item)")
        item = int(item)
    if bid is not None and (not isinstance(bid, str | int) or isinstance(bid, bool) or str(bid) == ""):
        raise FaultSpecError("bid", "bid must be the bId of a batch item, as text")
    if isinstance(committed, str) and committed.lower() in ("true", "false"):
        committed = committed.lower() == "true"
    if not isinstance(committed, bool):
        raise FaultSpecError("committed", "committed must be true or false")
    if committed and kind == "item_fault":
        raise FaultSpecError(
            "committed",
            "item_fault is QBO refusing the item, so nothing is committed; use item_500 or "
            "item_unanswered for a write that happened",
        )
    detail = spec.get("detail")
    if detail is not None and not isinstance(detail, str):
        raise FaultSpecError("detail", "detail must be text")
    return {
        "item": item,
        "bid": None if bid is None else str(bid),
        "committed": committed,
        "detail": detail,
    }


def targets(rule: Any, position: int, item: dict[str, Any]) -> bool:
    """Whether `rule` aims at this batch item (1-based `position`), honouring entity/operation filters."""
    if rule.kind not in ITEM_FAULT_KINDS or rule.count <= 0:
        return False
    if rule.item is not None and rule.item != position:
        return False
    if rule.bid is not None and rule.bid != str(item.get("bId", "")):
        return False
    if rule.entity:
        entity = next((k for k in item if k in SPECS), "")
        if entity.lower() != rule.entity.lower():
            return False
    if rule.operation:
        op = "query" if "Query" in item else str(item.get("operation", "")).lower()
        if "void" in str(item.get("optionsData", "")).lower():
            op = "void"
        if op != rule.operation.lower():
            return False
    return True


def validation_fault(rule: Any) -> dict[str, Any]:
    code = rule.code or "6000"
    message = _MESSAGES.get(code, _MESSAGES["6000"])
    detail = rule.detail or f"{message} (injected by the sandbox for this batch item)"
    return errors.QBOError(code, message, detail, "").fault()


def system_fault() -> dict[str, Any]:
    return errors.system_fault().fault()

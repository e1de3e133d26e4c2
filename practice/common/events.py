"""A tiny in-process "record changed" hook between the domain apps and the QuickBooks app.

Billing (and any other domain app) calls `record_changed(...)` after a write that QBO sync cares
about. Subscribers (the QuickBooks app registers one in its AppConfig.ready) run only once the
surrounding transaction commits, so a rolled-back write never triggers a sync, and the domain
apps never import QBO internals (architecture.md §2: import direction).

The sync engine re-plans from state on every run, so a lost notification cannot lose data; the
hook only makes the push prompt. Subscribers must therefore be cheap and idempotent (enqueue a
task, nothing more).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from django.db import transaction

logger = logging.getLogger(__name__)

RecordKind = Literal["account", "service", "invoice", "payment", "refund"]


_subscribers: list[Callable[..., None]] = []


def subscribe(callback: Callable[..., None]) -> Callable[..., None]:
    """Register `callback(firm=..., kind=..., obj_id=..., **extra)`; usable as a decorator.

    Registering the same callback twice is a no-op (AppConfig.ready can run more than once in
    tests), so it is never called twice per change.
    """
    if callback not in _subscribers:
        _subscribers.append(callback)
    return callback


def unsubscribe(callback: Callable[..., None]) -> None:
    if callback in _subscribers:
        _subscribers.remove(callback)


def subscribers() -> tuple[Callable[..., None], ...]:
    return tuple(_subscribers)


def record_changed(*, firm: Any, kind: RecordKind | str, obj_id: int, **extra: Any) -> None:
    """Tell subscribers that record `kind`/`obj_id` of `firm` changed, after commit.

    `robust=True`: the billing write has already been committed when subscribers run, so a
    failing subscriber is logged rather than turned into an error page for a write that worked.
    """
    payload = {"firm": firm, "kind": kind, "obj_id": obj_id, **extra}
    for callback in tuple(_subscribers):
        transaction.on_commit(_bind(callback, payload), robust=True)


def _bind(callback: Callable[..., None], payload: dict[str, Any]) -> Callable[[], None]:
    def run() -> None:
        callback(**payload)

    return run

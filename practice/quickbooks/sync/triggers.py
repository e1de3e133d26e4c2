"""What starts a run: a change of an account or billing record, and a connection that is
connected and set up. Each only enqueues `sync_realm` on commit (de-duplicated); the run itself
re-plans from state, so a lost trigger loses nothing the sweep will not find.
"""

from __future__ import annotations

from typing import Any

from practice.quickbooks.models import Connection
from practice.quickbooks.sync.tasks import enqueue_sync


def request_sync(connection: Connection | None, *, delay_seconds: float = 0) -> bool:
    """Enqueue `sync_realm` for the connection on commit, unless one is already queued."""
    if connection is None or not connection.is_connected:
        return False
    return enqueue_sync(connection.pk, delay_seconds=delay_seconds)


def on_record_changed(*, firm: Any, kind: str, obj_id: int, **extra: Any) -> None:
    """events subscriber: any account/billing change may change what should be in QBO."""
    firm_id = getattr(firm, "pk", firm)
    connection = Connection.objects.filter(firm_id=firm_id).first()
    request_sync(connection)


def on_connection_saved(sender: type, instance: Connection, **kwargs: Any) -> None:
    """post_save of Connection: connecting, reconnecting or saving the setup starts a run.

    Only enqueues (on commit, de-duplicated); the setup preview must have been confirmed
    (`setup_completed_at`), else the engine refuses to push anything anyway.
    """
    if instance.is_connected and instance.is_set_up:
        request_sync(instance)

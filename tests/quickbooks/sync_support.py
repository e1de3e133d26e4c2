"""Helpers for the account-sync tests: a connection to a sandbox realm, accounts, runs."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from practice.clients.services import account_create
from practice.quickbooks.models import Connection, SyncLink
from practice.quickbooks.sync import engine


def set_up(connection: Connection, *, scope: str = "all", unmatched: str = "create") -> Connection:
    """The owner's setup choices, confirmed (the engine pushes nothing before that)."""
    connection.account_scope = scope
    connection.unmatched_customer = unmatched
    connection.setup_completed_at = timezone.now()
    connection.save()
    return connection


def set_up_for_billing(connection: Connection, **choices: Any) -> Connection:
    """`set_up`, with the sample company's "Services" income account (Id 1) chosen for the
    firm's services (items need one)."""
    connection.income_account_id = "1"
    connection.income_account_name = "Services"
    return set_up(connection, **choices)


def accounts(firm, *names: str, **fields: Any) -> list:
    return [account_create(firm=firm, name=n, **fields) for n in names]


def run(connection: Connection) -> engine.RunResult:
    return engine.run_realm(connection.pk)


def link_of(connection: Connection, account) -> SyncLink:
    return SyncLink.objects.get(connection=connection, kind="customer", local_id=account.pk)


def make_due(connection: Connection) -> None:
    """Time travel: every waiting retry is due now."""
    SyncLink.objects.filter(connection=connection).exclude(next_retry_at=None).update(
        next_retry_at=timezone.now()
    )


def qbo_customers(connection: Connection, name: str) -> list[dict[str, Any]]:
    """Customers of the realm called `name` (active or not), read over HTTP."""
    from practice.quickbooks.connection.client import QBOClient, quote

    where = f"DisplayName = {quote(name)} AND Active IN (true, false)"
    return list(QBOClient(connection).query_all("Customer", where))

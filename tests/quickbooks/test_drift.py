"""Drift on linked records (issue 16 items 2, 3, 6): a change made through the sandbox's QBO API
by "someone else", picked up by the CDC sweep alone (the test app has no webhook), shown on the
record as Error with the fix, and each fix end to end. Everything over real HTTP."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal
from typing import Any

import pytest

from practice.billing import services as billing
from practice.billing.models import Invoice, Payment
from practice.clients.services import account_create
from practice.quickbooks.connection.client import QBOClient
from practice.quickbooks.models import ChangeNotice, Connection, SyncAttempt, SyncLink
from practice.quickbooks.statuses import SyncStatus
from practice.quickbooks.sync import cdc, drift
from tests.quickbooks.sync_support import run, set_up

DAY = datetime.date(2026, 11, 2)


@pytest.fixture
def conn(connection):
    connection.income_account_id = "1"
    connection.income_account_name = "Services"
    return set_up(connection)


@pytest.fixture
def service(firm):
    return billing.service_create(firm=firm, name="Bookkeeping", rate=Decimal("100.00"))


def issue(firm, account, service, amount: str) -> Invoice:
    invoice = billing.invoice_create(
        firm=firm,
        account=account,
        issue_date=DAY,
        due_date=DAY + datetime.timedelta(days=30),
        lines=[{"service": service, "quantity": "1", "rate": amount, "description": "Work"}],
    )
    return billing.invoice_issue(invoice=invoice)


def pay(firm, account, amount: str, allocations=()) -> Payment:
    return billing.payment_record(
        firm=firm,
        account=account,
        amount=amount,
        allocations=[(inv, Decimal(a)) for inv, a in allocations],
        date=DAY,
        method="check",
    )


def link(conn, kind: str, record) -> SyncLink:
    return SyncLink.objects.get(connection=conn, kind=kind, local_id=record.pk)


def someone(conn) -> QBOClient:
    """Another QuickBooks user: the same company's API, not the app's engine."""
    return QBOClient(Connection.objects.get(pk=conn.pk))


def rid() -> str:
    return uuid.uuid4().hex


def edit(conn, entity: str, qbo_id: str, **fields: Any) -> dict[str, Any]:
    client = someone(conn)
    current = client.read(entity, qbo_id)
    body = {"Id": qbo_id, "SyncToken": current["SyncToken"], **fields}
    return client.update(entity, body, request_id=rid(), sparse=True)


def start_cdc(conn) -> None:
    assert cdc.sweep_connection(conn.pk).reason == "started"


def sweep(conn) -> cdc.SweepResult:
    result = cdc.sweep_connection(conn.pk)
    assert result.reason == "swept", result
    return result


def drift_rows(l: SyncLink) -> list[SyncAttempt]:
    return list(SyncAttempt.objects.filter(link=l, operation="drift"))


# --------------------------------------------------------------------------------------------
# Customers


def test_customer_made_inactive_in_qbo_is_an_error_with_reactivate(firm, conn, sandbox, realm_id):
    (account,) = [account_create(firm=firm, name="Harbor Bakery")]
    run(conn)
    customer = link(conn, "customer", account)
    assert customer.status == SyncStatus.SYNCED
    start_cdc(conn)
    edit(conn, "Customer", customer.qbo_id, Active=False)

    result = sweep(conn)

    assert result.notices == 1 and result.applied == 1
    customer.refresh_from_db()
    assert customer.status == SyncStatus.ERROR
    assert customer.error_kind == "customer_inactive"
    assert customer.error_message == (
        "The QuickBooks customer “Harbor Bakery” was made inactive in QuickBooks. Reactivate and "
        "link it, link the account to another customer, or create a new one."
    )
    assert customer.candidates == [
        {"id": customer.qbo_id, "name": "Harbor Bakery", "active": False, "entity": "Customer"}
    ]
    assert [a.outcome for a in drift_rows(customer)] == ["error"]
    # A second sweep, or the same notice again, changes nothing.
    sweep(conn)
    assert drift.apply_change_notices(conn.pk) == 0
    assert len(drift_rows(customer)) == 1

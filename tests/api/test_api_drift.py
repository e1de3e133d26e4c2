"""The API's fixes of a record changed inside QuickBooks (issue 16): push-ours, accept-quickbooks,
push-again, refused in words (409) when there is nothing to resolve, for owners and admins only.
Against the real sandbox over HTTP: the change is made through its API, found by the CDC sweep."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from practice.billing.services import invoice_create, invoice_issue, service_create
from practice.clients.services import account_create
from practice.quickbooks.connection.client import QBOClient
from practice.quickbooks.models import SyncLink
from practice.quickbooks.statuses import SyncStatus
from practice.quickbooks.sync import cdc
from tests.quickbooks.sync_support import run, set_up


@pytest.fixture
def conn(connection):
    connection.income_account_id = "1"
    connection.income_account_name = "Services"
    return set_up(connection)


def test_accept_and_push_ours_through_the_api(conn, firm, api_as, sandbox, realm_id):
    account = account_create(firm=firm, name="Harbor Bakery")
    service = service_create(firm=firm, name="Audit", rate="100.00")
    day = timezone.localdate().isoformat()
    invoice = invoice_issue(
        invoice=invoice_create(
            firm=firm,
            account=account,
            issue_date=day,
            due_date=day,
            lines=[{"service": service, "quantity": "1", "rate": "100.00"}],
        )
    )
    run(conn)
    link = SyncLink.objects.get(connection=conn, kind="invoice", local_id=invoice.pk)
    cdc.sweep_connection(conn.pk)
    api = api_as("admin")
    r = api.send("POST", f"/invoices/{invoice.pk}/accept-quickbooks")
    assert r.status_code == 409
    assert r.json()["errors"][0]["message"] == (
        "This record has no change made in QuickBooks to resolve any more."
    )

    client = QBOClient(conn)
    current = client.read("Invoice", link.qbo_id)
    client.update(
        "Invoice",
        {"Id": link.qbo_id, "SyncToken": current["SyncToken"], "DueDate": "2031-01-31"},
        request_id=uuid.uuid4().hex,
    )
    cdc.sweep_connection(conn.pk)
    out = api.get(f"/invoices/{invoice.pk}").json()["quickbooks"]
    assert out["status"] == "error"
    assert out["reason"].startswith(
        f"Changed in QuickBooks: the due date is 2031-01-31 there and {day} here."
    )
    assert api_as("employee").send("POST", f"/invoices/{invoice.pk}/push-ours").status_code == 403

    r = api.send("POST", f"/invoices/{invoice.pk}/push-ours")
    assert r.status_code == 202 and r.json()["quickbooks"]["status"] == "not_synced"
    run(conn)
    link.refresh_from_db()
    assert link.status == SyncStatus.SYNCED
    assert sandbox.read(realm_id, "Invoice", link.qbo_id)["DueDate"] == day

"""Drift through the webhook path (issue 16 item 6): a change made through the sandbox's API (or
its merge, which QBO offers only in its own UI) → the sandbox signs and POSTs its notification
to the app's receiver on a live server → the stored notices are applied by the task the
receiver queued (run here in-process; a worker would run it) → the record's status. No CDC sweep
runs in these tests: `test_drift.py` covers the same cases with webhooks off, through CDC alone."""

from __future__ import annotations

import time

import pytest

from practice.clients.services import account_create
from practice.quickbooks.models import ChangeNotice, SyncLink
from practice.quickbooks.statuses import SyncStatus
from practice.quickbooks.sync import drift
from tests.quickbooks.conftest import connect_firm
from tests.quickbooks.sync_support import run, set_up
from tests.quickbooks.test_drift import CHANGED_120, change_first_line, edit, issue, rid, someone

# transaction=True: the receiver runs in the live server's thread, on its own connection.
pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "drift-webhook-verifier-77"
CLIENT_ID = "practice-drift-webhooks"


@pytest.fixture(params=["cloudevents", "legacy"])
def hooked(request, live_server, firm, sandbox, realm_id, settings):
    """The firm connected through an app whose webhooks go to the live server's receiver."""
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = TOKEN
    sandbox.register_app(
        redirect_uris=["http://testserver/settings/integrations/quickbooks/callback/"],
        client_id=CLIENT_ID,
        client_secret="practice-drift-webhooks-secret",
        webhook_url=f"{live_server.url}/webhooks/quickbooks/",
        verifier_token=TOKEN,
        webhook_format=request.param,
        name="Practice (drift webhook tests)",
    )
    connection = connect_firm(firm, realm_id, sandbox, client_id=CLIENT_ID)
    connection.income_account_id, connection.income_account_name = "1", "Services"
    yield set_up(connection)
    sandbox.register_app(client_id=CLIENT_ID, webhook_url="")


def delivered_and_applied(sandbox, realm_id, conn, *, expect: int) -> int:
    """Wait until at least `expect` notices have come in by webhook and the sandbox's deliveries
    to this app are all acknowledged, then run the check the receiver queued. Returns how many
    notices it applied."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        sandbox.flush_webhooks()
        sent = sandbox.webhook_deliveries(realm_id=realm_id, client_id=CLIENT_ID)
        pending = ChangeNotice.objects.filter(connection=conn, applied_at=None, source="webhook").count()
        if pending >= expect and sent and all(d["status"] == "delivered" for d in sent):
            break
        time.sleep(0.1)
    assert pending >= expect
    return drift.apply_change_notices(conn.pk)


def status(conn, kind: str, record) -> tuple[str, str]:
    found = SyncLink.objects.get(connection=conn, kind=kind, local_id=record.pk)
    return found.status, found.error_kind


def test_customer_made_inactive_arrives_by_webhook(firm, hooked, sandbox, realm_id):
    account = account_create(firm=firm, name="Webhook Bakery")
    run(hooked)
    qbo_id = SyncLink.objects.get(connection=hooked, kind="customer", local_id=account.pk).qbo_id
    delivered_and_applied(sandbox, realm_id, hooked, expect=0)  # our own create: not drift
    assert status(hooked, "customer", account) == (SyncStatus.SYNCED, "")

    edit(hooked, "Customer", qbo_id, Active=False)
    assert delivered_and_applied(sandbox, realm_id, hooked, expect=1) >= 1
    assert status(hooked, "customer", account) == (SyncStatus.ERROR, "customer_inactive")


def test_customer_merged_in_qbo_arrives_by_webhook_with_the_survivor(firm, hooked, sandbox, realm_id):
    account = account_create(firm=firm, name="Merge Me Bakery")
    run(hooked)
    loser = SyncLink.objects.get(connection=hooked, kind="customer", local_id=account.pk).qbo_id
    survivor = someone(hooked).create("Customer", {"DisplayName": "Merged Bakery LLC"}, request_id=rid())[
        "Id"
    ]
    delivered_and_applied(sandbox, realm_id, hooked, expect=0)

    sandbox.merge(realm_id, "Customer", loser, survivor)  # QBO's own UI, in the sandbox
    delivered_and_applied(sandbox, realm_id, hooked, expect=1)
    link = SyncLink.objects.get(connection=hooked, kind="customer", local_id=account.pk)
    assert (link.status, link.error_kind) == (SyncStatus.ERROR, "customer_merged")
    assert [c["id"] for c in link.candidates] == [survivor]


def test_invoice_edited_in_qbo_arrives_by_webhook(firm, hooked, sandbox, realm_id):
    from practice.billing import services as billing

    client = someone(hooked)
    prefs = client.preferences()
    sales = {**(prefs.get("SalesFormsPrefs") or {}), "CustomTxnNumbers": True}
    client.update(
        "Preferences",
        {"Id": prefs["Id"], "SyncToken": prefs["SyncToken"], "SalesFormsPrefs": sales},
        request_id=rid(),
        sparse=True,
    )
    service = billing.service_create(firm=firm, name="Bookkeeping", rate="100.00")
    account = account_create(firm=firm, name="Webhook Invoices Inc")
    invoice = issue(firm, account, service, "150.00")
    run(hooked)
    assert status(hooked, "invoice", invoice) == (SyncStatus.SYNCED, "")
    delivered_and_applied(sandbox, realm_id, hooked, expect=0)  # our own writes: not drift
    assert status(hooked, "invoice", invoice) == (SyncStatus.SYNCED, "")

    qbo_id = SyncLink.objects.get(connection=hooked, kind="invoice", local_id=invoice.pk).qbo_id
    change_first_line(hooked, qbo_id, 120)
    delivered_and_applied(sandbox, realm_id, hooked, expect=1)
    link = SyncLink.objects.get(connection=hooked, kind="invoice", local_id=invoice.pk)
    assert (link.status, link.error_kind, link.error_message) == (
        SyncStatus.ERROR,
        "changed_in_qbo",
        CHANGED_120,
    )

    client.void("Invoice", qbo_id, client.read("Invoice", qbo_id)["SyncToken"], request_id=rid())
    delivered_and_applied(sandbox, realm_id, hooked, expect=1)
    assert status(hooked, "invoice", invoice) == (SyncStatus.ERROR, "voided_in_qbo")

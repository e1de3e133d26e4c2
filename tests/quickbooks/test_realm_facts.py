"""Realm facts kept between runs (issue 13 item 8, sync/realm_facts.py), against the sandbox over
HTTP: Preferences, the PaymentMethod list, the "Individual" CustomerType and the Class and
Department names are read by the first run that needs them and not by the next; a change the CDC
sweep or a webhook reports makes the next run read the fact once; a write QBO refuses because a
kept fact was wrong (a class made inactive, a payment method made inactive) goes Error, and its
Retry reads the fact again. Every QBO request the app sends is recorded in-process."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import re
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from practice.billing import services as billing
from practice.billing.models import Invoice, Payment
from practice.clients.services import account_create
from practice.quickbooks import actions
from practice.quickbooks.connection.client import QBOClient
from practice.quickbooks.models import Connection, RealmSyncState, SyncLink
from practice.quickbooks.statuses import SyncStatus
from practice.quickbooks.sync import cdc, realm_facts
from tests.quickbooks.sync_support import run, set_up_for_billing

DAY = datetime.date(2026, 11, 2)
# What each fact costs to read, as recorded below.
FACT_READS = {
    realm_facts.PREFERENCES: "read Preferences",
    realm_facts.PAYMENT_METHODS: "query PaymentMethod",
    realm_facts.INDIVIDUAL_TYPE: "query CustomerType",
    realm_facts.CLASSES: "query Class",
    realm_facts.DEPARTMENTS: "query Department",
    realm_facts.UNDEPOSITED: "query Account",
}
_FROM = re.compile(r"\bfrom\s+(\w+)", re.IGNORECASE)


@pytest.fixture
def conn(connection):
    return set_up_for_billing(connection)


@pytest.fixture
def service(firm):
    return billing.service_create(firm=firm, name="Bookkeeping", rate=Decimal("100.00"))


@pytest.fixture
def reads(monkeypatch) -> Counter[str]:
    """The app's QBO reads, queries (by entity) and CDC calls, counted as they are sent."""
    seen: Counter[str] = Counter()
    original = QBOClient._send

    def recording(self: QBOClient, method: str, path: str, **kw: Any) -> Any:
        op = str(kw.get("op", path))
        if op == "query":
            found = _FROM.search(str(kw.get("text_body", "")))
            seen[f"query {found.group(1) if found else '?'}"] += 1
        elif op.startswith(("read", "cdc")):
            seen[op] += 1
        return original(self, method, path, **kw)

    monkeypatch.setattr(QBOClient, "_send", recording)
    return seen


def fact_reads(seen: Counter[str]) -> dict[str, int]:
    return {name: seen[label] for name, label in FACT_READS.items()}


def someone(conn) -> QBOClient:
    """Another QuickBooks user: the company's API, not the app's engine."""
    return QBOClient(Connection.objects.get(pk=conn.pk))


def edit(conn, entity: str, qbo_id: str, **fields: Any) -> dict[str, Any]:
    client = someone(conn)
    current = client.read(entity, qbo_id)
    body = {"Id": qbo_id, "SyncToken": current["SyncToken"], **fields}
    return client.update(entity, body, request_id=uuid.uuid4().hex, sparse=True)


def issue(firm, account, service, *, class_name: str = "Design", location: str = "Online") -> Invoice:
    invoice = billing.invoice_create(
        firm=firm,
        account=account,
        issue_date=DAY,
        due_date=DAY + datetime.timedelta(days=30),
        lines=[{"service": service, "quantity": "1", "rate": "100.00", "description": "Work"}],
        class_name=class_name,
        location_name=location,
    )
    return billing.invoice_issue(invoice=invoice)


def pay(firm, account, invoice: Invoice) -> Payment:
    return billing.payment_record(
        firm=firm,
        account=account,
        amount="100.00",
        allocations=[(invoice, Decimal("100.00"))],
        date=DAY,
        method="check",
    )


def some_work(firm, service, n: int) -> tuple[Invoice, Payment]:
    """A new account (its customer is typed Individual), an invoice with a class and a location
    (Preferences, Class, Department) and its payment by check (PaymentMethod)."""
    account = account_create(firm=firm, name=f"Facts Client {n}")
    invoice = issue(firm, account, service)
    return invoice, pay(firm, account, invoice)


def synced(conn, kind: str, record) -> SyncLink:
    link = SyncLink.objects.get(connection=conn, kind=kind, local_id=record.pk)
    assert link.status == SyncStatus.SYNCED, (link.status, link.error_kind, link.error_message)
    return link


def stored(conn) -> dict[str, Any]:
    return dict(RealmSyncState.objects.get(connection=conn).realm_facts)


def test_each_fact_is_read_by_the_first_run_and_kept_for_the_next(
    firm, conn, service, sandbox, realm_id, reads
):
    invoice, payment = some_work(firm, service, 1)
    run(conn)
    line_class = synced(conn, "invoice", invoice)
    synced(conn, "payment", payment)
    assert fact_reads(reads) == dict.fromkeys(FACT_READS, 1)
    facts = stored(conn)
    assert set(facts) == set(FACT_READS)
    assert facts[realm_facts.CLASSES]["value"]["design"] == "5000000000000000101"
    assert facts[realm_facts.PAYMENT_METHODS]["value"]["check"] == "2"
    assert all("stale_at" not in entry for entry in facts.values())
    body = sandbox.read(realm_id, "Invoice", line_class.qbo_id)
    assert body["DepartmentRef"]["value"] == "3"

    reads.clear()
    invoice, payment = some_work(firm, service, 2)
    run(conn)
    synced(conn, "invoice", invoice)
    synced(conn, "payment", payment)
    assert fact_reads(reads) == dict.fromkeys(FACT_READS, 0)
    customer = sandbox.read(realm_id, "Customer", synced(conn, "customer", invoice.account).qbo_id)
    assert customer["CustomerTypeRef"]["value"]  # the kept "Individual" type, still sent


def test_an_old_fact_is_read_again(firm, conn, service, reads):
    some_work(firm, service, 1)
    run(conn)
    facts = stored(conn)
    old = (timezone.now() - realm_facts.MAX_AGE - datetime.timedelta(minutes=1)).isoformat()
    facts[realm_facts.PREFERENCES]["read_at"] = old
    RealmSyncState.objects.filter(connection=conn).update(realm_facts=facts)
    reads.clear()
    some_work(firm, service, 2)
    run(conn)
    assert fact_reads(reads) == {**dict.fromkeys(FACT_READS, 0), realm_facts.PREFERENCES: 1}


def test_changes_reported_by_the_cdc_sweep_are_read_once(firm, conn, service, sandbox, realm_id, reads):
    some_work(firm, service, 1)
    run(conn)
    assert cdc.sweep_connection(conn.pk).reason == "started"  # a first sweep: every fact stale
    reads.clear()
    some_work(firm, service, 2)
    run(conn)
    assert fact_reads(reads) == {**dict.fromkeys(FACT_READS, 1), realm_facts.INDIVIDUAL_TYPE: 1}

    # Someone changes the company's settings and lists in QuickBooks; the app is told by CDC.
    client = someone(conn)
    prefs = client.preferences()
    sales = {**(prefs.get("SalesFormsPrefs") or {}), "CustomTxnNumbers": True}
    client.update(
        "Preferences",
        {"Id": prefs["Id"], "SyncToken": prefs["SyncToken"], "SalesFormsPrefs": sales},
        request_id=uuid.uuid4().hex,
        sparse=True,
    )
    client.create("PaymentMethod", {"Name": "Wire"}, request_id=uuid.uuid4().hex)
    client.create("Class", {"Name": "Audit"}, request_id=uuid.uuid4().hex)
    client.create("Department", {"Name": "Harbor Office"}, request_id=uuid.uuid4().hex)
    reads.clear()
    result = cdc.sweep_connection(conn.pk)
    assert result.reason == "swept" and result.requests == 1
    assert reads["cdc"] == 1
    facts = stored(conn)
    assert {name for name, entry in facts.items() if not realm_facts.is_fresh(entry, timezone.now())} == {
        realm_facts.PREFERENCES,
        realm_facts.PAYMENT_METHODS,
        realm_facts.CLASSES,
        realm_facts.DEPARTMENTS,
        realm_facts.UNDEPOSITED,
    }

    reads.clear()
    account = account_create(firm=firm, name="Facts Client 3")
    invoice = billing.invoice_create(
        firm=firm,
        account=account,
        issue_date=DAY,
        due_date=DAY + datetime.timedelta(days=30),
        number="F-3",
        lines=[{"service": service, "quantity": "1", "rate": "100.00", "description": "Work"}],
        class_name="Audit",
        location_name="Harbor Office",
    )
    billing.invoice_issue(invoice=invoice)
    payment = pay(firm, account, invoice)
    run(conn)
    link = synced(conn, "invoice", invoice)
    synced(conn, "payment", payment)
    # Read once each, and the run used what it read: the new number setting, class and location.
    assert fact_reads(reads) == {**dict.fromkeys(FACT_READS, 1), realm_facts.INDIVIDUAL_TYPE: 0}
    body = sandbox.read(realm_id, "Invoice", link.qbo_id)
    assert body["DocNumber"] == "F-3"
    assert body["DepartmentRef"]["name"] == "Harbor Office"

    # The same changes reported again (the sweep's 5-minute overlap): not read again.
    assert cdc.sweep_connection(conn.pk).reason == "swept"
    reads.clear()
    some_work(firm, service, 4)
    run(conn)
    assert fact_reads(reads) == dict.fromkeys(FACT_READS, 0)


def test_a_fact_marked_stale_while_a_run_reads_it_is_read_again_by_the_next(firm, conn, service, reads):
    some_work(firm, service, 1)
    original = QBOClient.preferences

    def preferences_then_a_webhook(self: QBOClient) -> dict[str, Any]:
        prefs = original(self)
        realm_facts.note_changes(conn.pk, [("Preferences", None)])  # told while the run reads
        return prefs

    QBOClient.preferences = preferences_then_a_webhook  # type: ignore[method-assign]
    try:
        run(conn)
    finally:
        QBOClient.preferences = original  # type: ignore[method-assign]
    assert reads["read Preferences"] == 1  # at most once per run, whatever it was told meanwhile
    reads.clear()
    some_work(firm, service, 2)
    run(conn)
    assert reads["read Preferences"] == 1
    reads.clear()
    some_work(firm, service, 3)
    run(conn)
    assert reads["read Preferences"] == 0


TOKEN = "facts-verifier-token"


def _deliver(body: bytes) -> None:
    signature = base64.b64encode(hmac.new(TOKEN.encode(), body, hashlib.sha256).digest()).decode()
    response = Client().post(
        "/webhooks/quickbooks/", data=body, content_type="application/json", HTTP_INTUIT_SIGNATURE=signature
    )
    assert response.status_code == 200


@pytest.mark.parametrize("fmt", ["legacy", "cloudevents"])
def test_changes_reported_by_a_webhook_are_read_once(settings, firm, conn, service, realm_id, reads, fmt):
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = TOKEN
    some_work(firm, service, 1)
    run(conn)
    if fmt == "legacy":
        now = timezone.now().isoformat().replace("+00:00", "Z")
        entities = [
            {"name": "Preferences", "id": "1", "operation": "Update", "lastUpdated": now},
            {"name": "PaymentMethod", "id": "9", "operation": "Create", "lastUpdated": now},
        ]
        body = json.dumps(
            {"eventNotifications": [{"realmId": realm_id, "dataChangeEvent": {"entities": entities}}]}
        ).encode()
    else:
        body = json.dumps(
            [
                {
                    "specversion": "1.0",
                    "id": uuid.uuid4().hex,
                    "source": "intuit.test",
                    "type": f"qbo.{entity}.updated.v1",
                    "time": timezone.now().isoformat(),
                    "intuitentityid": "1",
                    "intuitaccountid": realm_id,
                }
                for entity in ("preferences", "paymentmethod")
            ]
        ).encode()
    reads.clear()
    _deliver(body)
    assert not reads  # the receiver never calls QuickBooks
    reads.clear()
    some_work(firm, service, 2)
    run(conn)
    assert fact_reads(reads) == {
        **dict.fromkeys(FACT_READS, 0),
        realm_facts.PREFERENCES: 1,
        realm_facts.PAYMENT_METHODS: 1,
    }
    _deliver(body)  # a replay stores nothing and marks nothing
    reads.clear()
    some_work(firm, service, 3)
    run(conn)
    assert fact_reads(reads) == dict.fromkeys(FACT_READS, 0)


def test_a_class_refused_by_quickbooks_is_read_again_on_retry(firm, conn, service, realm_id, reads):
    some_work(firm, service, 1)
    run(conn)
    # Made inactive in QuickBooks, and the app not told (a lost webhook, the sweep not yet due).
    edit(conn, "Class", "5000000000000000101", Name="Design", Active=False)
    account = account_create(firm=firm, name="Facts Client 2")
    invoice = issue(firm, account, service, class_name="Design")
    reads.clear()
    run(conn)
    link = SyncLink.objects.get(connection=conn, kind="invoice", local_id=invoice.pk)
    assert (link.status, link.error_code) == (SyncStatus.ERROR, "2500")
    assert reads["query Class"] == 0  # the kept names said it exists
    entry = stored(conn)[realm_facts.CLASSES]
    assert not realm_facts.is_fresh(entry, timezone.now())
    assert realm_facts.is_fresh(stored(conn)[realm_facts.PAYMENT_METHODS], timezone.now())

    actions.record_retry(firm=firm, kind="invoice", local_id=invoice.pk)
    reads.clear()
    run(conn)
    link.refresh_from_db()
    # Read again, once: the class is gone, which the app now says in its own words.
    assert reads["query Class"] == 1
    assert (link.status, link.error_kind) == (SyncStatus.ERROR, "unknown_class")
    assert "“Design”" in link.error_message
    reads.clear()
    run(conn)
    assert reads["query Class"] == 0


def test_a_payment_method_refused_by_quickbooks_is_read_again_on_retry(firm, conn, service, reads):
    invoice, payment = some_work(firm, service, 1)
    run(conn)
    synced(conn, "payment", payment)
    edit(conn, "PaymentMethod", "2", Name="Check", Active=False)
    account = account_create(firm=firm, name="Facts Client 2")
    invoice = issue(firm, account, service)
    run(conn)
    payment = pay(firm, account, invoice)
    reads.clear()
    run(conn)
    link = SyncLink.objects.get(connection=conn, kind="payment", local_id=payment.pk)
    assert (link.status, link.error_code) == (SyncStatus.ERROR, "2500")
    assert reads["query PaymentMethod"] == 0
    assert not realm_facts.is_fresh(stored(conn)[realm_facts.PAYMENT_METHODS], timezone.now())

    actions.record_retry(firm=firm, kind="payment", local_id=payment.pk)
    reads.clear()
    run(conn)
    # Read again once: "Check" is inactive, so the payment goes without a method.
    assert reads["query PaymentMethod"] == 1
    synced(conn, "payment", payment)


def test_refusals_name_the_facts_they_concern():
    from practice.quickbooks.connection.errors import RecordRejected

    def refused(code: str, element: str = "") -> RecordRejected:
        return RecordRejected("refused", code=code, element=element)

    line = {"DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ClassRef": {"value": "7"}}}
    assert realm_facts.facts_refused(refused("2500", "Line[0].SalesItemLineDetail.ClassRef"), {}) == {
        realm_facts.CLASSES,
        realm_facts.PREFERENCES,
    }
    assert realm_facts.facts_refused(refused("610"), {"Line": [line]}) == {
        realm_facts.CLASSES,
        realm_facts.PREFERENCES,
    }
    assert realm_facts.facts_refused(refused("2500", "PaymentMethodRef"), {}) == {realm_facts.PAYMENT_METHODS}
    assert realm_facts.facts_refused(refused("2500", "CustomerTypeRef"), {}) == {realm_facts.INDIVIDUAL_TYPE}
    assert realm_facts.facts_refused(refused("2010", "DocNumber"), {}) == {realm_facts.PREFERENCES}
    assert realm_facts.facts_refused(refused("6140", "DocNumber"), {"DocNumber": "1"}) == set()
    assert (
        realm_facts.facts_refused(refused("2500", "CustomerRef"), {"PaymentMethodRef": {"value": "2"}})
        == set()
    )
    assert realm_facts.facts_refused(refused("6240"), {"Line": [line]}) == set()


def test_a_class_created_in_quickbooks_and_not_reported_is_found_on_retry(firm, conn, service, reads):
    some_work(firm, service, 1)
    run(conn)
    someone(conn).create("Class", {"Name": "Audit"}, request_id=uuid.uuid4().hex)  # no webhook
    account = account_create(firm=firm, name="Facts Client 2")
    invoice = issue(firm, account, service, class_name="Audit")
    second = issue(firm, account, service, class_name="Audit")
    reads.clear()
    run(conn)
    link = SyncLink.objects.get(connection=conn, kind="invoice", local_id=invoice.pk)
    assert (link.status, link.error_kind) == (SyncStatus.ERROR, "unknown_class")
    assert reads["query Class"] == 0  # decided from the kept names, which the Error puts in doubt
    assert not realm_facts.is_fresh(stored(conn)[realm_facts.CLASSES], timezone.now())

    for record in (invoice, second):
        actions.record_retry(firm=firm, kind="invoice", local_id=record.pk)
    reads.clear()
    run(conn)
    assert reads["query Class"] == 1
    synced(conn, "invoice", invoice)
    synced(conn, "invoice", second)

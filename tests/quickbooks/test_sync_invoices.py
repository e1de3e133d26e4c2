"""The "invoice" record kind against qbo_sandbox over HTTP: every mapped field read back from the
sandbox; Preferences variations (custom transaction numbers, class and location tracking, sales
tax); edit, void and delete; the DocNumber clash both ways and its fix (renumber); waiting for the
account and release; a batch with an unanswered item; a second run sends nothing."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from practice.billing.models import Invoice, InvoiceLine
from practice.billing.services import (
    invoice_create,
    invoice_issue,
    invoice_renumber,
    invoice_void,
    service_create,
)
from practice.quickbooks import actions
from practice.quickbooks.connection.client import QBOClient, quote
from practice.quickbooks.models import SyncAttempt, SyncLink
from practice.quickbooks.statuses import Outcome, SyncStatus
from practice.quickbooks.sync import realm_facts
from practice.quickbooks.sync.kinds import invoices as invoices_kind
from tests.quickbooks.sync_support import accounts, link_of, make_due, run, set_up_for_billing

TODAY = date(2026, 11, 2)


@pytest.fixture
def conn(connection):
    return set_up_for_billing(connection)


def set_prefs(conn, section: str, **values: Any) -> None:
    client = QBOClient(conn)
    prefs = client.preferences()
    body = {
        "Id": prefs["Id"],
        "SyncToken": prefs["SyncToken"],
        section: {**(prefs.get(section) or {}), **values},
    }
    client.update("Preferences", body, request_id=str(uuid.uuid4()), sparse=True)
    # QBO tells of the change (webhook, CDC sweep: tests/quickbooks/test_realm_facts.py), which
    # makes the next run read the Preferences again.
    realm_facts.note_changes(conn.pk, [("Preferences", None)])


def ilink(conn, invoice) -> SyncLink:
    return SyncLink.objects.get(connection=conn, kind="invoice", local_id=invoice.pk)


def issued(firm, account, *lines: tuple[Any, str, str], number: str = "", **kw: Any) -> Invoice:
    invoice = invoice_create(
        firm=firm,
        account=account,
        issue_date=kw.pop("issue_date", TODAY),
        due_date=kw.pop("due_date", TODAY + timedelta(days=30)),
        number=number,
        lines=[
            {"service": service, "quantity": qty, "rate": rate, "description": f"{service.name} work"}
            for service, qty, rate in lines
        ],
        **kw,
    )
    return invoice_issue(invoice=invoice)


def qbo_invoices(conn, number: str) -> list[dict[str, Any]]:
    return list(QBOClient(conn).query_all("Invoice", f"DocNumber = {quote(number)}"))


def writes(sandbox, realm_id) -> list[dict[str, Any]]:
    return [
        e for e in sandbox.requests(realm_id) if e["operation"] in ("create", "update", "batch", "delete")
    ]


def history(link) -> list[tuple[str, str]]:
    return list(SyncAttempt.objects.filter(link=link).order_by("id").values_list("operation", "outcome"))


@pytest.fixture
def acme(firm):
    return accounts(firm, "Acme Widgets")[0]


@pytest.fixture
def audit(firm):
    return service_create(firm=firm, name="Audit", rate="100.00")


def test_every_field_with_custom_numbers(conn, firm, sandbox, realm_id, acme, audit):
    set_prefs(conn, "SalesFormsPrefs", CustomTxnNumbers=True)
    advice = service_create(firm=firm, name="Advice", rate="0.00")
    invoice = issued(firm, acme, (audit, "2", "100.00"), (advice, "1.5", "33.33"), number="INV-0042")
    draft = invoice_create(
        firm=firm, account=acme, issue_date=TODAY, due_date=TODAY, lines=[{"service": audit, "quantity": "1"}]
    )
    run(conn)

    link = ilink(conn, invoice)
    assert link.status == SyncStatus.SYNCED, link.error_message
    body = sandbox.read(realm_id, "Invoice", link.qbo_id)
    customer_id = link_of(conn, acme).qbo_id
    assert body["CustomerRef"]["value"] == customer_id
    assert body["DocNumber"] == "INV-0042"
    assert body["TxnDate"] == TODAY.isoformat()
    assert body["DueDate"] == (TODAY + timedelta(days=30)).isoformat()
    assert body["PrivateNote"] == f"Practice invoice INV-0042 (id {invoice.pk})"
    item_lines = [ln for ln in body["Line"] if ln["DetailType"] == "SalesItemLineDetail"]
    audit_item = SyncLink.objects.get(connection=conn, kind="service", local_id=audit.pk).qbo_id
    advice_item = SyncLink.objects.get(connection=conn, kind="service", local_id=advice.pk).qbo_id
    assert [
        (
            ln["SalesItemLineDetail"]["ItemRef"]["value"],
            ln["SalesItemLineDetail"]["Qty"],
            ln["SalesItemLineDetail"]["UnitPrice"],
            ln["Amount"],
            ln["Description"],
            ln["SalesItemLineDetail"]["TaxCodeRef"]["value"],
        )
        for ln in item_lines
    ] == [
        (audit_item, 2, 100, 200.0, "Audit work", "NON"),
        (advice_item, 1.5, 33.33, 50.0, "Advice work", "NON"),
    ]
    assert Decimal(str(body["TotalAmt"])) == invoice.total == Decimal("250.00")
    assert history(link) == [("create_invoice", Outcome.SUCCESS)]
    assert link.qbo_name == "INV-0042"
    # A draft is never sent.
    assert not SyncLink.objects.filter(connection=conn, kind="invoice", local_id=draft.pk).exclude(qbo_id="")

    before = len(writes(sandbox, realm_id))
    run(conn)
    assert len(writes(sandbox, realm_id)) == before  # nothing to send the second time


def test_custom_numbers_off_lets_quickbooks_number_it(conn, firm, sandbox, realm_id, acme, audit):
    invoice = issued(firm, acme, (audit, "1", "80.00"), number="INV-0007")
    run(conn)
    link = ilink(conn, invoice)
    body = sandbox.read(realm_id, "Invoice", link.qbo_id)
    assert body["DocNumber"] != "INV-0007"  # QBO's own next number
    assert body["PrivateNote"] == f"Practice invoice INV-0007 (id {invoice.pk})"
    assert not qbo_invoices(conn, "INV-0007")


def test_before_the_sync_start_date_is_not_sent(conn, firm, acme, audit):
    conn.sync_start_date = TODAY
    conn.save()
    old = issued(firm, acme, (audit, "1", "10.00"), issue_date=TODAY - timedelta(days=1))
    new = issued(firm, acme, (audit, "1", "10.00"))
    run(conn)
    assert not SyncLink.objects.filter(connection=conn, kind="invoice", local_id=old.pk).exists()
    assert ilink(conn, new).status == SyncStatus.SYNCED


def test_class_and_location_tracking(conn, firm, sandbox, realm_id, acme, audit):
    # The sample company tracks classes per line and locations.
    per_line = issued(firm, acme, (audit, "1", "10.00"), class_name="design", location_name="Online")
    unknown = issued(firm, acme, (audit, "1", "10.00"), class_name="Tax work")
    run(conn)
    body = sandbox.read(realm_id, "Invoice", ilink(conn, per_line).qbo_id)
    line = next(ln for ln in body["Line"] if ln["DetailType"] == "SalesItemLineDetail")
    assert line["SalesItemLineDetail"]["ClassRef"]["value"] == "5000000000000000101"  # Design
    assert "ClassRef" not in body
    assert body["DepartmentRef"]["value"] == "3"  # Online
    link = ilink(conn, unknown)
    assert link.status == SyncStatus.ERROR and link.error_kind == "unknown_class"
    assert "“Tax work”" in link.error_message

    set_prefs(conn, "AccountingInfoPrefs", ClassTrackingPerTxn=True, ClassTrackingPerTxnLine=False)
    header = issued(firm, acme, (audit, "1", "10.00"), class_name="Maintenance")
    run(conn)
    body = sandbox.read(realm_id, "Invoice", ilink(conn, header).qbo_id)
    assert body["ClassRef"]["value"] == "5000000000000000103"

    set_prefs(conn, "AccountingInfoPrefs", ClassTrackingPerTxn=False, TrackDepartments=False)
    untracked = issued(firm, acme, (audit, "1", "10.00"), class_name="Maintenance", location_name="Online")
    run(conn)
    link = ilink(conn, untracked)
    body = sandbox.read(realm_id, "Invoice", link.qbo_id)
    assert "ClassRef" not in body and "DepartmentRef" not in body
    row = SyncAttempt.objects.get(link=link)
    assert "QuickBooks does not track classes" in row.message
    assert "does not track locations" in row.message


def test_edit_void_and_delete(conn, firm, sandbox, realm_id, acme, audit):
    set_prefs(conn, "SalesFormsPrefs", CustomTxnNumbers=True)
    edited = issued(firm, acme, (audit, "1", "100.00"), number="A-1")
    voided = issued(firm, acme, (audit, "1", "50.00"), number="A-2")
    deleted = issued(firm, acme, (audit, "1", "25.00"), number="A-3")
    run(conn)
    link = ilink(conn, edited)
    token = sandbox.read(realm_id, "Invoice", link.qbo_id)["SyncToken"]

    # An edit (issued invoices change through services like renumbering; lines here directly).
    InvoiceLine.objects.filter(invoice=edited).update(quantity=Decimal("3.00"), amount=Decimal("300.00"))
    Invoice.objects.filter(pk=edited.pk).update(updated_at=timezone.now())
    run(conn)
    body = sandbox.read(realm_id, "Invoice", link.qbo_id)
    assert int(body["SyncToken"]) == int(token) + 1
    assert body["TotalAmt"] == 300.0
    assert [ln["SalesItemLineDetail"]["Qty"] for ln in body["Line"] if "SalesItemLineDetail" in ln] == [3]
    assert history(ilink(conn, edited))[-1] == ("update", Outcome.SUCCESS)

    invoice_void(invoice=voided, reason="Sent twice")
    qbo_id = ilink(conn, deleted).qbo_id
    InvoiceLine.objects.filter(invoice=deleted).delete()
    Invoice.objects.filter(pk=deleted.pk).delete()
    run(conn)
    body = sandbox.read(realm_id, "Invoice", ilink(conn, voided).qbo_id)
    assert body["TotalAmt"] == 0 and body["PrivateNote"].startswith("Voided")
    assert ilink(conn, voided).status == SyncStatus.SYNCED
    assert sandbox.read(realm_id, "Invoice", qbo_id) is None
    gone = SyncLink.objects.get(connection=conn, kind="invoice", local_id=deleted.pk)
    assert history(gone)[-1] == ("delete", Outcome.SUCCESS)

    before = len(writes(sandbox, realm_id))
    run(conn)
    assert len(writes(sandbox, realm_id)) == before


def test_docnumber_clash_both_ways(conn, firm, sandbox, realm_id, audit):
    set_prefs(conn, "SalesFormsPrefs", CustomTxnNumbers=True)
    acme, other = accounts(firm, "Acme Widgets", "Other Co")
    run(conn)
    client = QBOClient(conn)
    line = {
        "DetailType": "SalesItemLineDetail",
        "Amount": 120.0,
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": 120},
    }
    for number, account in (("INV-0001", acme), ("INV-0002", other)):
        client.create(
            "Invoice",
            {"CustomerRef": {"value": link_of(conn, account).qbo_id}, "DocNumber": number, "Line": [line]},
            request_id=str(uuid.uuid4()),
        )
    same = issued(firm, acme, (audit, "1", "120.00"), number="INV-0001")
    clash = issued(firm, acme, (audit, "1", "120.00"), number="INV-0002")
    run(conn)

    link = ilink(conn, same)
    assert link.status == SyncStatus.SYNCED
    assert [i["Id"] for i in qbo_invoices(conn, "INV-0001")] == [link.qbo_id]
    assert history(link) == [("match_number", Outcome.SUCCESS)]
    assert SyncAttempt.objects.get(link=link).message.startswith("Linked to the existing QuickBooks invoice")

    link = ilink(conn, clash)
    assert link.status == SyncStatus.ERROR and link.error_kind == "docnumber_clash"
    assert link.error_message.startswith(
        "Invoice number INV-0002 is already used in QuickBooks by an invoice to “Other Co” for $120.00."
    )
    assert len(qbo_invoices(conn, "INV-0002")) == 1
    run(conn)
    assert len(history(link)) == 1  # not decided again while nothing changed

    # The fix: renumber it (refused for an invoice already in QuickBooks).
    with pytest.raises(actions.SyncActionError):
        actions.invoice_renumber(firm=firm, invoice=same, number="INV-0100")
    actions.invoice_renumber(firm=firm, invoice=clash, number="INV-0003")
    run(conn)
    link = ilink(conn, clash)
    assert link.status == SyncStatus.SYNCED
    assert [i["Id"] for i in qbo_invoices(conn, "INV-0003")] == [link.qbo_id]
    assert len(qbo_invoices(conn, "INV-0002")) == 1


@pytest.mark.parametrize("look_up_first", [False, True], ids=["sent-then-6140", "looked-up-first"])
def test_a_single_new_invoice_clashing_with_one_typed_by_hand(
    conn, firm, sandbox, realm_id, audit, monkeypatch, look_up_first
):
    """One new invoice (a page too small for the DocNumber look-up) whose number someone typed by
    hand in QuickBooks: QBO's 6140 is answered exactly as the look-up's finding would be (the
    look-up forced on for comparison), at no more requests."""
    set_prefs(conn, "SalesFormsPrefs", CustomTxnNumbers=True)
    acme, other = accounts(firm, "Acme Widgets", "Other Co")
    run(conn)
    client = QBOClient(conn)
    line = {
        "DetailType": "SalesItemLineDetail",
        "Amount": 120.0,
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": 120},
    }
    for number, account in (("H-7", other), ("H-8", acme)):
        client.create(
            "Invoice",
            {"CustomerRef": {"value": link_of(conn, account).qbo_id}, "DocNumber": number, "Line": [line]},
            request_id=str(uuid.uuid4()),
        )
    if look_up_first:
        monkeypatch.setattr(invoices_kind, "LOOKUP_MIN_CREATES", 1)
    sent: list[str] = []
    original = QBOClient._send

    def recording(self: QBOClient, method: str, path: str, **kw: Any) -> Any:
        op = str(kw.get("op", path))
        if op == "query" and "DocNumber" in str(kw.get("text_body", "")):
            op = "query DocNumber"
        if op.startswith(("batch", "create", "query DocNumber")):
            sent.append(op)
        return original(self, method, path, **kw)

    monkeypatch.setattr(QBOClient, "_send", recording)

    clash = issued(firm, acme, (audit, "1", "120.00"), number="H-7")
    run(conn)
    link = ilink(conn, clash)
    assert (link.status, link.error_kind, link.qbo_id) == (SyncStatus.ERROR, "docnumber_clash", "")
    assert link.error_message == (
        "Invoice number H-7 is already used in QuickBooks by an invoice to “Other Co” for $120.00. Change "
        "this invoice's number (a number QuickBooks does not use yet), or, if it is the same invoice, "
        "correct the QuickBooks one and use Retry."
    )
    assert [op for op, _outcome in history(link)] == ["match_number"]
    # The look-up costs a query before every page; without it, the clash costs the refused write
    # and one query after it, and an invoice without a clash costs nothing but its write.
    assert sent == (["query DocNumber"] if look_up_first else ["batch 1", "query DocNumber"])
    assert len(qbo_invoices(conn, "H-7")) == 1

    sent.clear()
    same = issued(firm, acme, (audit, "1", "120.00"), number="H-8")
    run(conn)
    assert sent == (["query DocNumber"] if look_up_first else ["batch 1", "query DocNumber"])
    link = ilink(conn, same)
    assert link.status == SyncStatus.SYNCED and link.qbo_name == "H-8"
    assert [i["Id"] for i in qbo_invoices(conn, "H-8")] == [link.qbo_id]
    assert history(link) == [("match_number", Outcome.SUCCESS)]
    assert SyncAttempt.objects.get(link=link).message == (
        f"Linked to the existing QuickBooks invoice H-8 (Id {link.qbo_id}): same customer, same total."
    )
    sent.clear()
    run(conn)
    assert sent == []  # linked with what was sent: nothing to push to it
    assert len(history(ilink(conn, clash))) == 1  # not decided again while nothing changed


def test_duplicate_number_refused_on_create(conn, firm, sandbox, realm_id, acme, audit):
    set_prefs(conn, "SalesFormsPrefs", CustomTxnNumbers=True)
    invoice = issued(firm, acme, (audit, "1", "10.00"), number="B-1")
    sandbox.inject_batch_item_fault(realm_id, "item_fault", item=1, code="6140", entity="Invoice")
    run(conn)
    link = ilink(conn, invoice)
    assert (link.status, link.error_kind, link.error_code) == (SyncStatus.ERROR, "docnumber_clash", "6140")
    assert link.error_message.startswith("QuickBooks says invoice number B-1 is already used")
    assert not qbo_invoices(conn, "B-1")


def test_invoices_wait_for_their_account_and_go_once_it_is_synced(conn, firm, sandbox, realm_id, audit):
    acme = accounts(firm, "Acme Widgets")[0]
    actions.account_unsync(firm=firm, account=acme)
    invoice = issued(firm, acme, (audit, "1", "10.00"))
    run(conn)
    link = ilink(conn, invoice)
    assert link.status == SyncStatus.NOT_SYNCED and not link.qbo_id
    assert link.error_message == "Waiting for the account “Acme Widgets” to be synced to QuickBooks."
    run(conn)
    assert history(ilink(conn, invoice)) == [("wait", Outcome.INFO)]  # said once

    actions.account_sync_retry(firm=firm, account=acme)
    run(conn)
    link = ilink(conn, invoice)
    assert link.status == SyncStatus.SYNCED and link.error_message == ""
    customer = link_of(conn, acme).qbo_id
    found = list(QBOClient(conn).query_all("Invoice", f"CustomerRef = {quote(customer)}"))
    assert [i["Id"] for i in found] == [link.qbo_id]


def test_sales_tax(conn, firm, sandbox, realm_id, acme, audit):
    sandbox.set_sales_tax(realm_id, enabled=True, automated=True, rate=8.0)
    taxed = service_create(firm=firm, name="Taxable goods", rate="100.00", taxable=True)
    plain = issued(firm, acme, (audit, "1", "100.00"))
    mixed = issued(firm, acme, (audit, "1", "100.00"), (taxed, "1", "100.00"))
    run(conn)
    link = ilink(conn, plain)
    body = sandbox.read(realm_id, "Invoice", link.qbo_id)
    assert link.status == SyncStatus.SYNCED
    assert body["TotalAmt"] == 100.0 and body["TxnTaxDetail"]["TotalTax"] == 0

    link = ilink(conn, mixed)
    body = sandbox.read(realm_id, "Invoice", link.qbo_id)
    assert link.status == SyncStatus.SYNCED, link.error_message
    assert body["TotalAmt"] == 208.0
    taxes = [
        ln["SalesItemLineDetail"]["TaxCodeRef"]["value"] for ln in body["Line"] if "SalesItemLineDetail" in ln
    ]
    assert taxes == ["NON", "TAX"]
    row = SyncAttempt.objects.get(link=link)
    assert row.message == "QuickBooks added sales tax of $8.00 (total $208.00)."
    item = sandbox.read(
        realm_id, "Item", SyncLink.objects.get(connection=conn, kind="service", local_id=taxed.pk).qbo_id
    )
    assert item["Taxable"] is True


def test_unanswered_batch_items_leave_one_invoice_per_number(conn, firm, sandbox, realm_id, acme, audit):
    set_prefs(conn, "SalesFormsPrefs", CustomTxnNumbers=True)
    run(conn)
    invoices = [issued(firm, acme, (audit, "1", f"{10 + i}.00"), number=f"C-{i}") for i in range(5)]
    sandbox.inject_batch_item_fault(realm_id, "item_unanswered", item=2, committed=True, entity="Invoice")
    sandbox.inject_batch_item_fault(realm_id, "item_500", item=4, committed=True, entity="Invoice")
    run(conn)
    make_due(conn)
    run(conn)
    for i, invoice in enumerate(invoices):
        link = ilink(conn, invoice)
        assert link.status == SyncStatus.SYNCED, (i, link.status, link.error_message)
        assert [b["Id"] for b in qbo_invoices(conn, f"C-{i}")] == [link.qbo_id]


def test_unanswered_create_without_custom_numbers_is_found_by_its_note(
    conn, firm, sandbox, realm_id, acme, audit
):
    run(conn)
    invoices = [issued(firm, acme, (audit, "1", "10.00")) for _ in range(3)]
    sandbox.inject_batch_item_fault(realm_id, "item_unanswered", item=2, committed=True, entity="Invoice")
    run(conn)
    make_due(conn)
    run(conn)
    customer = link_of(conn, acme).qbo_id
    found = list(QBOClient(conn).query_all("Invoice", f"CustomerRef = {quote(customer)}"))
    assert len(found) == 3
    assert sorted(i["Id"] for i in found) == sorted(ilink(conn, inv).qbo_id for inv in invoices)


def test_renumber_service_validates_like_create(firm, acme, audit):
    first = issued(firm, acme, (audit, "1", "1.00"), number="X-1")
    second = issued(firm, acme, (audit, "1", "1.00"), number="X-2")
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as exc:
        invoice_renumber(invoice=second, number="x-1")
    assert "number" in exc.value.message_dict
    with pytest.raises(ValidationError):
        invoice_renumber(invoice=second, number="N" * 22)
    assert invoice_renumber(invoice=second, number="X-3").number == "X-3"
    assert first.history.count() == 2


def test_a_run_with_nothing_to_do_reads_no_lines(conn, firm, acme, audit):
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    invoices = [issued(firm, acme, (audit, "1", "10.00")) for _ in range(3)]
    run(conn)
    assert all(ilink(conn, inv).status == SyncStatus.SYNCED for inv in invoices)
    with CaptureQueriesContext(db) as queries:
        run(conn)
    assert not [q for q in queries if "billing_invoiceline" in q["sql"]]

    # Touched without a change to what is sent (as a payment allocation does): read once, no write.
    Invoice.objects.filter(pk=invoices[0].pk).update(updated_at=timezone.now())
    with CaptureQueriesContext(db) as queries:
        run(conn)
    assert [q for q in queries if "billing_invoiceline" in q["sql"]]
    assert history(ilink(conn, invoices[0])) == [("create_invoice", Outcome.SUCCESS)]
    with CaptureQueriesContext(db) as queries:
        run(conn)
    assert not [q for q in queries if "billing_invoiceline" in q["sql"]]


def test_voided_while_waiting_is_never_sent(conn, firm, acme, audit):
    actions.account_unsync(firm=firm, account=acme)
    invoice = issued(firm, acme, (audit, "1", "10.00"))
    run(conn)
    assert ilink(conn, invoice).error_message.startswith("Waiting for the account")
    invoice_void(invoice=invoice)
    actions.account_sync_retry(firm=firm, account=acme)
    run(conn)
    link = ilink(conn, invoice)
    assert (link.status, link.qbo_id, link.error_message) == (SyncStatus.NOT_SYNCED, "", "")


def test_waits_for_its_service(conn, firm, acme):
    clash = service_create(firm=firm, name="Pump", rate="5.00")  # an Inventory item's name
    invoice = issued(firm, acme, (clash, "1", "5.00"))
    run(conn)
    link = ilink(conn, invoice)
    assert link.status == SyncStatus.NOT_SYNCED
    assert link.error_message == "Waiting for the service “Pump” to be synced to QuickBooks."


HX = {"HTTP_HX_REQUEST": "true"}


def test_renumber_view(conn, firm, client_as, acme, audit):
    set_prefs(conn, "SalesFormsPrefs", CustomTxnNumbers=True)
    other = accounts(firm, "Other Co")[0]
    run(conn)
    line = {
        "DetailType": "SalesItemLineDetail",
        "Amount": 10.0,
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": 10},
    }
    QBOClient(conn).create(
        "Invoice",
        {"CustomerRef": {"value": link_of(conn, other).qbo_id}, "DocNumber": "D-1", "Line": [line]},
        request_id=str(uuid.uuid4()),
    )
    invoice = issued(firm, acme, (audit, "1", "10.00"), number="D-1")
    kept = issued(firm, acme, (audit, "1", "10.00"), number="D-2")
    run(conn)
    assert ilink(conn, invoice).error_kind == "docnumber_clash"
    from django.urls import reverse

    url = reverse("quickbooks:invoice_renumber", args=[invoice.pk])
    assert client_as("employee").post(url, {"number": "D-9"}).status_code == 403
    owner = client_as("owner")
    bad = owner.post(url, {"number": "d-2"}, **HX)
    assert bad.status_code == 422
    html = bad.content.decode()
    assert (
        'aria-describedby="qbo-renumber-error"' in html and "Another invoice already has this number." in html
    )
    assert '<label for="qbo-renumber-number">' in html
    ok = owner.post(url, {"number": "D-3"}, **HX)
    assert ok.status_code == 200 and ok["HX-Redirect"] == reverse("billing:invoice_detail", args=[invoice.pk])
    invoice.refresh_from_db()
    assert invoice.number == "D-3"
    assert ilink(conn, invoice).status == SyncStatus.NOT_SYNCED
    run(conn)
    assert ilink(conn, invoice).status == SyncStatus.SYNCED
    refused = owner.post(reverse("quickbooks:invoice_renumber", args=[kept.pk]), {"number": "D-8"})
    assert refused.status_code == 302
    kept.refresh_from_db()
    assert kept.number == "D-2"
    assert client_as("other").post(url, {"number": "D-7"}).status_code in (403, 404)


def test_refusals_in_words(conn, firm, sandbox, realm_id, acme, audit):
    invoice = issued(firm, acme, (audit, "1", "10.00"))
    sandbox.inject_batch_item_fault(realm_id, "item_fault", item=1, code="2500", entity="Invoice")
    run(conn)
    link = ilink(conn, invoice)
    assert (link.status, link.error_code) == (SyncStatus.ERROR, "2500")
    assert link.error_message.startswith(
        "Something the invoice refers to (a customer, item, account, class or location) was deleted "
        "or made inactive in QuickBooks."
    )
    actions_retry(conn, link)
    run(conn)
    assert ilink(conn, invoice).status == SyncStatus.SYNCED


def actions_retry(conn, link) -> None:
    """What the Retry action does to a link (contract: status Not synced, error and input_hash
    cleared)."""
    from practice.quickbooks.sync import engine

    engine.clear_pending(link)
    engine.clear_error(link)
    link.input_hash = ""
    link.status = SyncStatus.NOT_SYNCED
    link.save()


def test_total_check_names_both_amounts():
    from practice.quickbooks.sync import engine
    from practice.quickbooks.sync.kinds.invoices import check_total

    body = {
        "Line": [
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": 100.0,
                "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "TaxCodeRef": {"value": "NON"}},
            }
        ]
    }
    link = SyncLink(status=SyncStatus.SYNCED, qbo_id="9")
    op = engine.Op(link=link, operation="create", entity="Invoice", body=body, request_id="r")
    check_total(link, {"TotalAmt": 100.0, "TxnTaxDetail": {"TotalTax": 0}}, op)
    assert link.status == SyncStatus.SYNCED
    check_total(link, {"TotalAmt": 108.0, "TxnTaxDetail": {"TotalTax": 8.0}}, op)
    assert (link.status, link.error_kind, link.qbo_id) == (SyncStatus.ERROR, "total_mismatch", "9")
    assert link.error_message.startswith(
        "The invoice's total in QuickBooks is $108.00 but the app's is $100.00. Likely reason: "
        "QuickBooks added sales tax of $8.00: an item QuickBooks treats as taxable"
    )


def test_refused_delete_is_an_error_and_not_resent(conn, firm, sandbox, realm_id, acme, audit):
    invoice = issued(firm, acme, (audit, "1", "10.00"))
    run(conn)
    link = ilink(conn, invoice)
    InvoiceLine.objects.filter(invoice=invoice).delete()
    Invoice.objects.filter(pk=invoice.pk).delete()
    sandbox.inject_batch_item_fault(realm_id, "item_fault", item=1, code="6000", operation="delete")
    run(conn)
    link.refresh_from_db()
    assert (link.status, link.error_code) == (SyncStatus.ERROR, "6000")
    before = len(writes(sandbox, realm_id))
    run(conn)
    assert len(writes(sandbox, realm_id)) == before
    assert sandbox.read(realm_id, "Invoice", link.qbo_id) is not None

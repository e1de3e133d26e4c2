"""Payments, refunds and the billing records' QuickBooks actions over the API (issue 14 items 2-3):
role matrix, firm isolation, effects, bad payloads; actions against the real qbo_sandbox."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from practice.billing.models import Payment, PaymentAllocation, PaymentState, Refund
from practice.billing.services import (
    invoice_create,
    invoice_issue,
    payment_record,
    refund_record,
    service_create,
)
from practice.clients.services import account_create
from practice.quickbooks.connection.client import QBOClient, quote
from practice.quickbooks.models import SyncAttempt, SyncLink
from practice.quickbooks.statuses import SyncStatus
from tests.quickbooks.sync_support import link_of, run, set_up


def _invoice(firm, account, service, *, issue: bool = True, number: str = "", day="2026-01-05"):
    inv = invoice_create(
        firm=firm,
        account=account,
        issue_date=day,
        due_date=day,
        number=number,
        lines=[{"service": service.pk, "description": "Work", "quantity": "1", "rate": "100.00"}],
    )
    return invoice_issue(invoice=inv) if issue else inv


@pytest.fixture
def data(firm, other_firm):
    acct = account_create(firm=firm, name="Cool Cars")
    svc = service_create(firm=firm, name="Bookkeeping", rate="100.00")
    inv = _invoice(firm, acct, svc)
    pay = payment_record(
        firm=firm,
        account=acct,
        date="2026-01-10",
        amount="150.00",
        method="check",
        allocations=[(inv.pk, "60")],
    )
    refund = refund_record(payment=pay, date="2026-01-11", amount="10.00", reason="Overpaid")
    return {"account": acct, "service": svc, "invoice": inv, "payment": pay, "refund": refund}


def _fmt(path: str, data) -> str:
    alloc = PaymentAllocation.objects.filter(payment=data["payment"]).first()
    return path.format(
        service=data["service"].pk,
        invoice=data["invoice"].pk,
        payment=data["payment"].pk,
        refund=data["refund"].pk,
        account=data["account"].pk,
        allocation=alloc.pk if alloc else 1,
    )


# ---------------------------------------------------------------- reads

READS = [
    "/refunds",
    "/refunds/{refund}",
    "/services/{service}/history",
    "/invoices/{invoice}/history",
    "/payments/{payment}/history",
]


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize("who", ["owner", "admin", "employee"])
def test_every_member_reads(data, api_as, who, path):
    assert api_as(who).get(_fmt(path, data)).status_code == 200


@pytest.mark.parametrize("path", READS[1:])
def test_other_firm_reads_404(data, api_as, path):
    r = api_as("other").get(_fmt(path, data))
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "not_found"
    assert api_as("other").get("/refunds").json()["total"] == 0
    assert api_as("anonymous").get(_fmt(path, data)).status_code == 401


def test_refunds_list_filters_and_read(data, firm, api_as):
    api = api_as("employee")
    other_pay = payment_record(
        firm=firm, account=data["account"], date="2026-01-12", amount="5", method="cash"
    )
    refund_record(payment=other_pay, date="2026-01-12", amount="5", reason="")
    assert api.get("/refunds").json()["total"] == 2
    page = api.get("/refunds", payment_id=data["payment"].pk).json()
    assert [r["id"] for r in page["items"]] == [data["refund"].pk]
    assert api.get("/refunds", account_id=data["account"].pk).json()["total"] == 2
    assert api.get("/refunds", quickbooks_status="synced").json()["total"] == 0
    assert api.get("/refunds", quickbooks_status="not_synced").json()["total"] == 2
    got = api.get(f"/refunds/{data['refund'].pk}").json()
    assert (got["payment_id"], got["account_id"], got["amount"], got["reason"]) == (
        data["payment"].pk,
        data["account"].pk,
        "10.00",
        "Overpaid",
    )
    assert got["quickbooks"]["status"] == "not_synced"


def test_billing_objects_carry_status_reason_and_history_link(data, api_as):
    api = api_as("employee")
    inv = api.get(f"/invoices/{data['invoice'].pk}").json()["quickbooks"]
    assert inv["history_url"] == f"/api/v1/invoices/{data['invoice'].pk}/history"
    assert (inv["status"], inv["qbo_id"], inv["error"]) == ("not_synced", "", "")
    assert inv["reason"] == "Waiting for the account “Cool Cars” to be synced to QuickBooks."
    pay = api.get(f"/payments/{data['payment'].pk}").json()["quickbooks"]
    assert pay["history_url"] == f"/api/v1/payments/{data['payment'].pk}/history"
    svc = api.get(f"/services/{data['service'].pk}").json()["quickbooks"]
    assert svc["history_url"] == f"/api/v1/services/{data['service'].pk}/history"
    assert api.get(svc["history_url"].removeprefix("/api/v1")).json() == []


# ---------------------------------------------------------------- writes: role matrix

WRITES = [
    # (method, path, body, who may, success status)
    (
        "POST",
        "/payments",
        {"account_id": "{account}", "date": "2026-01-20", "amount": "5.00", "method": "cash"},
        {"owner", "admin", "employee"},
        201,
    ),
    ("POST", "/payments/{payment}/allocations", {"invoice_id": "{invoice}", "amount": "1.00"}, None, 201),
    ("DELETE", "/payments/{payment}/allocations/{allocation}", None, {"owner", "admin"}, 200),
    ("POST", "/payments/{payment}/delete", {"reason": "Bounced"}, {"owner", "admin"}, 200),
    (
        "POST",
        "/refunds",
        {"payment_id": "{payment}", "date": "2026-01-20", "amount": "1.00"},
        {"owner", "admin"},
        201,
    ),
    ("POST", "/invoices/{invoice}/renumber", {"number": "INV-9000"}, {"owner", "admin"}, 200),
] + [
    ("POST", f"/{kind}s/{{{kind}}}/{action}", None, {"owner", "admin"}, 409)
    for kind in ("service", "invoice", "payment")
    for action in ("sync", "unsync", "retry")
]


def _body(body, data):
    if isinstance(body, dict):
        return {k: _body(v, data) for k, v in body.items()}
    if isinstance(body, list):
        return [_body(v, data) for v in body]
    return int(_fmt(body, data)) if isinstance(body, str) and body.startswith("{") else body


def _snapshot(data):
    p = Payment.objects.get(pk=data["payment"].pk)
    return (
        Payment.objects.count(),
        p.state,
        list(PaymentAllocation.objects.order_by("pk").values_list("invoice_id", "amount")),
        Refund.objects.count(),
        data["invoice"].__class__.objects.get(pk=data["invoice"].pk).number,
        SyncLink.objects.count(),
        SyncAttempt.objects.count(),
    )


@pytest.mark.parametrize(("method", "path", "body", "allowed", "ok"), WRITES)
@pytest.mark.parametrize("who", ["owner", "admin", "employee", "other"])
def test_write_matrix(data, api_as, method, path, body, allowed, ok, who):
    allowed = allowed or {"owner", "admin", "employee"}
    before = _snapshot(data)
    r = api_as(who).send(method, _fmt(path, data), _body(body, data))
    if who == "other" and path == "/payments":
        # This firm's account id does not exist for them: the field is named, nothing is made.
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "account_id", r.content
    elif who == "other":
        assert r.status_code == 404, r.content
    elif who in allowed:
        # Sync actions without a QuickBooks connection are refused in words (409).
        assert r.status_code == ok, r.content
        if ok == 409:
            assert r.json()["errors"] == [
                {"field": None, "code": "conflict", "message": "QuickBooks is not connected."}
            ]
        else:
            assert _snapshot(data) != before
        return
    else:
        assert r.status_code == 403 and r.json()["errors"][0]["code"] == "forbidden"
    assert _snapshot(data) == before


# ---------------------------------------------------------------- writes: effects


def test_payment_create_allocate_unallocate_delete(data, firm, api_as):
    api = api_as("admin")
    second = _invoice(firm, data["account"], data["service"])
    body = {
        "account_id": data["account"].pk,
        "date": "2026-01-20",
        "amount": "80.00",
        "method": "ach",
        "reference": "ACH-1",
        "sync_to_quickbooks": False,
        "allocations": [{"invoice_id": second.pk, "amount": "50.00"}],
    }
    r = api.send("POST", "/payments", body)
    assert r.status_code == 201, r.content
    out = r.json()
    pay = Payment.objects.get(pk=out["id"])
    assert (pay.amount, pay.method, pay.reference, pay.sync_to_quickbooks, pay.created_manually) == (
        Decimal("80.00"),
        "ach",
        "ACH-1",
        False,
        True,
    )
    assert [(a["invoice_id"], a["amount"]) for a in out["allocations"]] == [(second.pk, "50.00")]
    assert out["quickbooks"]["reason"] == "Sync to QuickBooks is turned off for this payment."

    r = api.send("POST", f"/payments/{pay.pk}/allocations", {"invoice_id": second.pk, "amount": "20.00"})
    assert r.status_code == 201 and r.json()["allocations"][0]["amount"] == "70.00"
    alloc_id = r.json()["allocations"][0]["id"]
    r = api.send("DELETE", f"/payments/{pay.pk}/allocations/{alloc_id}")
    assert r.status_code == 200 and r.json()["allocations"] == []
    assert api.send("DELETE", f"/payments/{pay.pk}/allocations/{alloc_id}").status_code == 404

    r = api.send("POST", f"/payments/{pay.pk}/delete", {"reason": "Bounced"})
    assert r.status_code == 200 and r.json()["state"] == PaymentState.DELETED
    pay.refresh_from_db()
    assert pay.delete_reason == "Bounced"
    r = api.send("POST", f"/payments/{pay.pk}/delete", {"reason": "again"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] is None


def test_refund_create(data, api_as):
    r = api_as("owner").send(
        "POST",
        "/refunds",
        {"payment_id": data["payment"].pk, "date": "2026-01-21", "amount": "30.00", "reason": "Returned"},
    )
    assert r.status_code == 201, r.content
    refund = Refund.objects.get(pk=r.json()["id"])
    assert (refund.payment_id, refund.amount, refund.reason) == (
        data["payment"].pk,
        Decimal("30.00"),
        "Returned",
    )
    # 150 - 60 applied - 10 - 30 refunded = 50 left: more is refused naming the field.
    r = api_as("owner").send(
        "POST", "/refunds", {"payment_id": data["payment"].pk, "date": "2026-01-21", "amount": "50.01"}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "amount"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/payments", {"date": "2026-01-20", "amount": "5", "method": "cash"}, "account_id"),
        ("/payments", {"account_id": "{account}", "date": "x", "amount": "5", "method": "cash"}, "date"),
        (
            "/payments",
            {"account_id": "{account}", "date": "2026-01-20", "amount": "5", "method": "gold"},
            "method",
        ),
        (
            "/payments",
            {"account_id": "{account}", "date": "2026-01-20", "amount": "-5", "method": "cash"},
            "amount",
        ),
        (
            "/payments",
            {"account_id": "{account}", "date": "2026-01-20", "amount": "0", "method": "cash"},
            "amount",
        ),
        (
            "/payments",
            {"account_id": 2**61, "date": "2026-01-20", "amount": "5", "method": "cash"},
            "account_id",
        ),
        (
            "/payments",
            {
                "account_id": "{account}",
                "date": "2026-01-20",
                "amount": "5",
                "method": "cash",
                "allocations": [{"invoice_id": "{invoice}", "amount": "6.00"}],
            },
            "allocations",
        ),
        (
            "/payments",
            {
                "account_id": "{account}",
                "date": "2026-01-20",
                "amount": "500",
                "method": "cash",
                "allocations": [{"invoice_id": "{invoice}", "amount": "41.00"}],
            },
            "allocations.0.amount",
        ),
        ("/payments/{payment}/allocations", {"invoice_id": 2**61, "amount": "1"}, "invoice_id"),
        ("/payments/{payment}/allocations", {"invoice_id": "{invoice}", "amount": "1", "x": 1}, "x"),
        ("/refunds", {"payment_id": "{payment}", "date": "2025-01-01", "amount": "1"}, "date"),
        ("/invoices/{invoice}/renumber", {"number": ""}, "number"),
    ],
)
def test_bad_payloads_are_422_naming_the_field(data, api_as, path, body, field):
    before = _snapshot(data)
    r = api_as("owner").send("POST", _fmt(path, data), _body(body, data))
    assert r.status_code == 422, r.content
    assert field in [e["field"] for e in r.json()["errors"]], r.json()
    assert _snapshot(data) == before


def test_payment_on_another_firms_invoice_or_account(data, other_firm, api_as):
    theirs = account_create(firm=other_firm, name="Theirs")
    svc = service_create(firm=other_firm, name="X", rate="1")
    their_inv = _invoice(other_firm, theirs, svc)
    api = api_as("owner")
    r = api.send(
        "POST", "/payments", {"account_id": theirs.pk, "date": "2026-01-20", "amount": "5", "method": "cash"}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "account_id"
    r = api.send(
        "POST", f"/payments/{data['payment'].pk}/allocations", {"invoice_id": their_inv.pk, "amount": "1"}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "invoice_id"
    r = api.send("POST", "/refunds", {"payment_id": 2**61, "date": "2026-01-20", "amount": "1"})
    assert r.status_code == 404


# ---------------------------------------------------------------- QuickBooks actions, real sandbox


@pytest.fixture
def conn(connection):
    connection.income_account_id = "1"
    connection.income_account_name = "Services"
    return set_up(connection)


def _blink(conn, kind, obj) -> SyncLink:
    return SyncLink.objects.get(connection=conn, kind=kind, local_id=obj.pk)


def test_issue_sync_unsync_and_sync_again(conn, firm, api_as):
    today = timezone.localdate()
    acct = account_create(firm=firm, name="Acme Widgets")
    svc = service_create(firm=firm, name="Audit", rate="100.00")
    inv = _invoice(firm, acct, svc, issue=False, day=today.isoformat())
    api = api_as("owner")

    # A draft cannot be synced: refused in words.
    r = api.send("POST", f"/invoices/{inv.pk}/sync")
    assert r.status_code == 409
    assert r.json()["errors"][0]["message"] == "Sent to QuickBooks when it is issued."

    assert api.send("POST", f"/invoices/{inv.pk}/issue").json()["state"] == "issued"
    run(conn)
    out = api.get(f"/invoices/{inv.pk}").json()["quickbooks"]
    link = _blink(conn, "invoice", inv)
    assert (out["status"], out["qbo_id"]) == ("synced", link.qbo_id) and link.qbo_id
    assert out["qbo_url"]
    assert api.get(f"/services/{svc.pk}").json()["quickbooks"]["status"] == "synced"

    r = api.send("POST", f"/invoices/{inv.pk}/unsync")
    assert r.status_code == 202 and r.json()["quickbooks"]["status"] == "skipped"
    assert api.get("/invoices", quickbooks_status="skipped").json()["total"] == 1
    hist = api.get(f"/invoices/{inv.pk}/history").json()
    assert hist[0]["operation"] == "unsync"
    assert (
        SyncAttempt.objects.filter(link=link, operation="unsync", actor="owner@acme.test (API)").count() == 1
    )

    r = api.send("POST", f"/invoices/{inv.pk}/sync")
    assert r.status_code == 202 and r.json()["quickbooks"]["status"] == "synced"  # linked: resumes
    assert [h["operation"] for h in api.get(f"/invoices/{inv.pk}/history").json()][:2] == ["sync", "unsync"]

    # Services and payments too.
    r = api.send("POST", f"/services/{svc.pk}/unsync")
    assert r.status_code == 202 and r.json()["quickbooks"]["status"] == "skipped"
    r = api.send("POST", f"/services/{svc.pk}/sync")
    assert r.status_code == 202 and r.json()["quickbooks"]["status"] == "synced"
    pay = payment_record(
        firm=firm,
        account=acct,
        date=today,
        amount="100",
        method="cash",
        sync_to_quickbooks=True,
        allocations=[(inv.pk, "100")],
    )
    r = api.send("POST", f"/payments/{pay.pk}/unsync")
    assert r.status_code == 202 and r.json()["quickbooks"]["status"] == "skipped"
    r = api.send("POST", f"/payments/{pay.pk}/retry")
    assert r.status_code == 202 and r.json()["quickbooks"]["status"] == "not_synced"
    run(conn)
    out = api.get(f"/payments/{pay.pk}").json()["quickbooks"]
    assert out["status"] == "synced", out["reason"]
    assert out["qbo_id"] == _blink(conn, "payment", pay).qbo_id
    # Employees read, cannot act.
    assert api_as("employee").send("POST", f"/payments/{pay.pk}/unsync").status_code == 403
    assert _blink(conn, "payment", pay).status == SyncStatus.SYNCED


def test_records_of_an_unsynced_account_are_refused_with_the_reason(conn, firm, api_as):
    acct = account_create(firm=firm, name="Acme Widgets")
    svc = service_create(firm=firm, name="Audit", rate="100.00")
    inv = _invoice(firm, acct, svc, day=timezone.localdate().isoformat())
    run(conn)
    api = api_as("admin")
    api.send("POST", f"/accounts/{acct.pk}/unsync")
    r = api.send("POST", f"/invoices/{inv.pk}/retry")
    assert r.status_code == 409
    assert r.json()["errors"][0]["message"] == (
        "The account “Acme Widgets” is not synced to QuickBooks. Sync the account first."
    )


def test_renumber_fixes_a_number_clash(conn, firm, api_as):
    client = QBOClient(conn)
    prefs = client.preferences()
    client.update(
        "Preferences",
        {"Id": prefs["Id"], "SyncToken": prefs["SyncToken"], "SalesFormsPrefs": {"CustomTxnNumbers": True}},
        request_id=str(uuid.uuid4()),
        sparse=True,
    )
    acct, other = (account_create(firm=firm, name=n) for n in ("Acme Widgets", "Other Co"))
    run(conn)
    line = {
        "DetailType": "SalesItemLineDetail",
        "Amount": 120.0,
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": 120},
    }
    client.create(
        "Invoice",
        {"CustomerRef": {"value": link_of(conn, other).qbo_id}, "DocNumber": "INV-0002", "Line": [line]},
        request_id=str(uuid.uuid4()),
    )
    svc = service_create(firm=firm, name="Audit", rate="100.00")
    day = (timezone.localdate() - timedelta(days=0)).isoformat()
    clash = _invoice(firm, acct, svc, number="INV-0002", day=day)
    run(conn)
    api = api_as("owner")
    out = api.get(f"/invoices/{clash.pk}").json()["quickbooks"]
    assert out["status"] == "error"
    assert out["error"].startswith("Invoice number INV-0002 is already used in QuickBooks")

    r = api.send("POST", f"/invoices/{clash.pk}/renumber", {"number": "INV-0003"})
    assert r.status_code == 200 and r.json()["number"] == "INV-0003"
    assert r.json()["quickbooks"]["status"] == "not_synced"
    run(conn)
    link = _blink(conn, "invoice", clash)
    assert link.status == SyncStatus.SYNCED
    found = list(client.query_all("Invoice", f"DocNumber = {quote('INV-0003')}"))
    assert [i["Id"] for i in found] == [link.qbo_id]
    # Once in QuickBooks its number is QuickBooks' too: 409 in words.
    r = api.send("POST", f"/invoices/{clash.pk}/renumber", {"number": "INV-0004"})
    assert r.status_code == 409
    assert "already in QuickBooks" in r.json()["errors"][0]["message"]


def test_readme_walk_through(conn, firm, api_as):
    """README: create an account and an invoice, issue it, sync the account, read back Synced."""
    api = api_as("owner")
    today = timezone.localdate().isoformat()
    svc = service_create(firm=firm, name="Bookkeeping", rate="180.00")
    account = api.send("POST", "/accounts", {"name": "Harbor Bakery LLC", "kind": "company"}).json()["id"]
    body = {
        "account_id": account,
        "issue_date": today,
        "due_date": today,
        "lines": [{"service_id": svc.pk, "quantity": "3"}],
    }
    invoice = api.send("POST", "/invoices", body).json()["id"]
    assert api.send("POST", f"/invoices/{invoice}/issue").json()["state"] == "issued"
    assert api.send("POST", f"/accounts/{account}/sync").status_code == 202
    run(conn)
    got = api.get(f"/invoices/{invoice}").json()
    q = got["quickbooks"]
    assert (q["status"], q["reason"]) == ("synced", f"In QuickBooks as invoice {got['number']}.")
    body = QBOClient(conn).read("Invoice", q["qbo_id"])
    found = body.get("Invoice", body)
    assert (Decimal(str(found["TotalAmt"])), found["CustomerRef"]["value"]) == (
        Decimal("540.00"),
        SyncLink.objects.get(connection=conn, kind="customer", local_id=account).qbo_id,
    )
    assert api.get(f"/accounts/{account}").json()["quickbooks"]["status"] == "synced"
    assert api.get(f"/invoices/{invoice}/history").json()

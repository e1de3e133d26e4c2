"""Settings > Integrations > QuickBooks > Problems and the banner (issue 11 item 2): counts per
category, the failing records with their fault, retry one, retry all in a category (constant
queries), the banner for owners and admins while anything needs attention (one query), roles.

Errors are SyncLink rows made directly, as the kinds leave them (the kinds are tested elsewhere).
"""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from practice.billing import services
from practice.clients.models import ClientAccount
from practice.quickbooks import actions, problems
from practice.quickbooks.models import Connection, SyncAttempt, SyncLink
from practice.quickbooks.statuses import SyncStatus

ISSUE = datetime.date(2026, 11, 2)
PAGE = reverse("quickbooks:problems")


@pytest.fixture
def conn(firm, settings) -> Connection:
    settings.QBO_SANDBOX_URL = "http://sandbox.test"
    return Connection.objects.create(
        firm=firm,
        realm_id="4620816365",
        status="connected",
        environment="sandbox-local",
        setup_completed_at=timezone.now(),
        sync_start_date=datetime.date(2026, 10, 1),
    )


def link(conn, kind, local_id, status, **fields) -> SyncLink:
    return SyncLink.objects.create(
        firm=conn.firm, connection=conn, kind=kind, local_id=local_id, status=status, **fields
    )


def invoice(firm, account, service):
    inv = services.invoice_create(
        firm=firm,
        account=account,
        issue_date=ISSUE,
        due_date=ISSUE + datetime.timedelta(days=30),
        lines=[{"service": service, "quantity": "1", "rate": "100.00", "description": "Work"}],
    )
    return services.invoice_issue(invoice=inv)


@pytest.fixture
def data(firm, conn):
    cars = ClientAccount.objects.create(firm=firm, name="Cool Cars")
    link(conn, "customer", cars.pk, SyncStatus.SYNCED, qbo_id="58", qbo_name="Cool Cars")
    diner = ClientAccount.objects.create(firm=firm, name="Red Rock Diner")
    diner_link = link(
        conn,
        "customer",
        diner.pk,
        SyncStatus.ERROR,
        error_kind="ambiguous",
        error_message="Two QuickBooks customers are called “Red Rock Diner”. Choose one.",
    )
    SyncAttempt.objects.create(link=diner_link, operation="match", outcome="error", message="two")
    service = services.service_create(firm=firm, name="Bookkeeping", rate=Decimal("100.00"))
    link(conn, "service", service.pk, SyncStatus.SYNCED, qbo_id="7")
    bad = [invoice(firm, cars, service) for _ in range(3)]
    for n, inv in enumerate(bad):
        row = link(
            conn,
            "invoice",
            inv.pk,
            SyncStatus.ERROR,
            error_kind="rejected",
            error_code="6000",
            error_message=f"QuickBooks refused the invoice: the class “Retail{n}” does not exist.",
            error_detail="Invalid Reference Id : Classes element id 9 not found",
        )
        SyncAttempt.objects.create(
            link=row, operation="create_invoice", outcome="rejected", fault_code="6000"
        )
        SyncAttempt.objects.create(
            link=row, operation="create_invoice", outcome="rejected", fault_code="6000"
        )
    fine = invoice(firm, cars, service)
    link(conn, "invoice", fine.pk, SyncStatus.SYNCED, qbo_id="130")
    return {"cars": cars, "diner": diner, "invoices": bad, "fine": fine, "service": service}


def test_counts_per_category_and_the_failing_records(client_as, data):
    response = client_as("admin").get(PAGE + "?kind=invoice")
    assert response.status_code == 200
    counts = {c.kind: c.count for c in response.context["categories"]}
    assert counts == {"customer": 1, "service": 0, "invoice": 3, "payment": 0, "refund": 0, "fee": 0}
    assert [str(c.label) for c in response.context["categories"]] == [
        "Accounts",
        "Services",
        "Invoices",
        "Payments",
        "Refunds",
        "Expenses",
    ]
    rows = response.context["rows"]
    assert sorted(r.link.local_id for r in rows) == sorted(i.pk for i in data["invoices"])
    first = next(r for r in rows if r.link.local_id == data["invoices"][0].pk)
    assert first.code == "6000" and first.attempts == 2
    assert first.detail == "Invalid Reference Id : Classes element id 9 not found"
    assert first.url == reverse("billing:invoice_detail", kwargs={"pk": data["invoices"][0].pk})
    assert first.name == f"Invoice {data['invoices'][0].number} · Cool Cars"
    html = response.content.decode()
    assert "the class “Retail0” does not exist" in html and "Invalid Reference Id" in html
    # Without a kind, the first category with problems is shown (Accounts).
    response = client_as("owner").get(PAGE)
    assert response.context["current"].kind == "customer"
    assert "Two QuickBooks customers are called" in response.content.decode()


def test_only_owner_and_admin(client_as, data):
    assert client_as("employee").get(PAGE).status_code == 403
    assert (
        client_as("employee").post(reverse("quickbooks:problems_retry_all", args=["invoice"])).status_code
        == 403
    )
    other = client_as("other").get(PAGE)
    assert other.status_code == 200 and other.context["rows"] == []  # another firm sees its own (none)


def test_page_queries_do_not_grow_with_the_records(client_as, data, firm, conn):
    c = client_as("owner")
    with CaptureQueriesContext(db_connection) as few:
        c.get(PAGE + "?kind=invoice")
    for _ in range(5):
        inv = invoice(firm, data["cars"], data["service"])
        link(conn, "invoice", inv.pk, SyncStatus.ERROR, error_message="refused")
    with CaptureQueriesContext(db_connection) as many:
        response = c.get(PAGE + "?kind=invoice")
    assert len(response.context["rows"]) == 8
    assert len(many) == len(few)


def test_retry_one(client_as, data):
    target = data["invoices"][1]
    response = client_as("admin").post(reverse("quickbooks:problem_retry", args=["invoice", target.pk]))
    assert response.status_code == 302 and response["Location"].endswith("?kind=invoice")
    row = SyncLink.objects.get(kind="invoice", local_id=target.pk)
    assert (row.status, row.error_message, row.error_code) == (SyncStatus.NOT_SYNCED, "", "")
    assert SyncAttempt.objects.filter(link=row, operation="retry", actor="admin@acme.test").count() == 1
    assert SyncLink.objects.filter(kind="invoice", status=SyncStatus.ERROR).count() == 2
    # An account: decided afresh (Syncing) like "Sync again".
    client_as("owner").post(reverse("quickbooks:problem_retry", args=["customer", data["diner"].pk]))
    acct = SyncLink.objects.get(kind="customer", local_id=data["diner"].pk)
    assert acct.status == SyncStatus.SYNCING and acct.error_message == ""


def test_retry_all_in_a_category_in_constant_queries(client_as, data, firm, conn):
    def retry_all():
        with CaptureQueriesContext(db_connection) as ctx:
            done = actions.retry_errors(firm=firm, kind="invoice", actor="owner@acme.test")
        return done, len(ctx)

    done, few = retry_all()
    assert done == 3
    assert SyncLink.objects.filter(kind="invoice", status=SyncStatus.NOT_SYNCED).count() == 3
    assert SyncAttempt.objects.filter(operation="retry", link__kind="invoice").count() == 3
    for _ in range(12):
        inv = invoice(firm, data["cars"], data["service"])
        link(conn, "invoice", inv.pk, SyncStatus.ERROR, error_message="refused")
    done, many = retry_all()
    assert done == 12 and many == few
    # The account in Error is another category: untouched.
    assert SyncLink.objects.get(kind="customer", local_id=data["diner"].pk).status == SyncStatus.ERROR


def test_retry_all_leaves_records_that_may_not_be_sent(client_as, data, firm, conn):
    # The account of one failing invoice is no longer synced: that invoice stays in Error.
    SyncLink.objects.filter(kind="customer", local_id=data["cars"].pk).update(status=SyncStatus.SKIPPED)
    owner = client_as("owner")
    response = owner.post(reverse("quickbooks:problems_retry_all", args=["invoice"]))
    assert response.status_code == 302
    assert SyncLink.objects.filter(kind="invoice", status=SyncStatus.ERROR).count() == 3
    page = owner.get(response["Location"])
    assert "Nothing could be retried now" in page.content.decode()


def test_banner_while_anything_needs_attention(client_as, data, conn):
    home = reverse("clients:account_list")
    owner = client_as("owner")
    with CaptureQueriesContext(db_connection) as ctx:
        html = owner.get(home).content.decode()
    assert 'id="qbo-problems-banner"' in html and PAGE in html
    banner_queries = [
        q for q in ctx.captured_queries if "quickbooks_synclink" in q["sql"] and "EXISTS" in q["sql"].upper()
    ]
    assert len(banner_queries) == 1
    assert 'id="qbo-problems-banner"' in client_as("admin").get(home).content.decode()
    assert 'id="qbo-problems-banner"' not in client_as("employee").get(home).content.decode()
    # Fixed: no banner.
    SyncLink.objects.filter(status=SyncStatus.ERROR).update(status=SyncStatus.NOT_SYNCED)
    assert "qbo-problems-banner" not in owner.get(home).content.decode()
    # Connection problems come first and link to the settings page.
    Connection.objects.filter(pk=conn.pk).update(status="needs_reconnect")
    html = owner.get(home).content.decode()
    assert 'id="qbo-reconnect-banner"' in html and "qbo-problems-banner" not in html
    page = owner.get(PAGE)
    assert 'id="qbo-connection-problem"' in page.content.decode()


def test_banner_in_spanish(client_as, data):
    c = client_as("owner")
    html = c.get(reverse("clients:account_list"), HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "Ver los problemas" in html
    page = c.get(PAGE, HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "Facturas" in page and "Reintentar" in page


def test_attention_is_one_query(firm, conn, data, rf):
    request = rf.get("/")
    request.firm = firm
    with CaptureQueriesContext(db_connection) as ctx:
        first = problems.attention_for_request(request)
        second = problems.attention_for_request(request)
    assert len(ctx) == 1 and first is second and first.has_errors

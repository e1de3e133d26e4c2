"""QuickBooks statuses and actions on services, invoices and payments (issue 10, item 4).

Display states come from SyncLink rows made directly (the sync kinds are built elsewhere); the
actions are asserted by the link and history changes they make.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from practice.billing import services
from practice.billing.models import Invoice, Payment, Service
from practice.clients.models import ClientAccount
from practice.quickbooks import actions
from practice.quickbooks.models import Connection, SyncAttempt, SyncLink
from practice.quickbooks.statuses import SyncStatus

ISSUE = datetime.date(2026, 11, 2)
DUE = datetime.date(2026, 12, 2)
START = datetime.date(2026, 10, 1)


@pytest.fixture
def conn(firm, settings) -> Connection:
    # No QBO call happens on these pages or in these actions: a connected row is enough.
    settings.QBO_SANDBOX_URL = "http://sandbox.test"
    return Connection.objects.create(
        firm=firm,
        realm_id="4620816365",
        status="connected",
        environment="sandbox-local",
        setup_completed_at=timezone.now(),
        sync_start_date=START,
    )


def link(conn, kind: str, local_id: int, status: str, **fields) -> SyncLink:
    return SyncLink.objects.create(
        firm=conn.firm, connection=conn, kind=kind, local_id=local_id, status=status, **fields
    )


@pytest.fixture
def acct(firm, conn) -> ClientAccount:
    account = ClientAccount.objects.create(firm=firm, name="Cool Cars")
    link(conn, "customer", account.pk, SyncStatus.SYNCED, qbo_id="58", qbo_name="Cool Cars")
    return account


@pytest.fixture
def lone_acct(firm) -> ClientAccount:
    return ClientAccount.objects.create(firm=firm, name="Red Rock Diner")  # not synced


@pytest.fixture
def service(firm) -> Service:
    return services.service_create(firm=firm, name="Bookkeeping", rate=Decimal("100.00"))


def invoice(firm, account, service, *, issued: bool = True, day: datetime.date = ISSUE) -> Invoice:
    inv = services.invoice_create(
        firm=firm,
        account=account,
        issue_date=day,
        due_date=day + datetime.timedelta(days=30),
        lines=[{"service": service, "quantity": "1", "rate": "100.00", "description": "Work"}],
    )
    return services.invoice_issue(invoice=inv) if issued else inv


def payment(firm, account, **kw) -> Payment:
    kw.setdefault("date", ISSUE)
    return services.payment_record(firm=firm, account=account, amount="50.00", method="check", **kw)


def page(client, url: str, **params) -> str:
    response = client.get(url, params)
    assert response.status_code == 200
    return response.content.decode()


# --------------------------------------------------------------------------------------------
# Lists


@pytest.fixture
def invoice_states(firm, conn, acct, lone_acct, service):
    inv = {
        name: invoice(firm, acct, service) for name in ("synced", "error", "syncing", "skipped", "waiting")
    }
    link(conn, "invoice", inv["synced"].pk, SyncStatus.SYNCED, qbo_id="901", qbo_name="")
    link(
        conn,
        "invoice",
        inv["error"].pk,
        SyncStatus.ERROR,
        error_kind="docnumber_clash",
        error_code="6140",
        error_message="QuickBooks already has an invoice with this number for another customer.",
    )
    link(
        conn,
        "invoice",
        inv["syncing"].pk,
        SyncStatus.SYNCING,
        next_retry_at=timezone.now() + datetime.timedelta(minutes=5),
    )
    link(conn, "invoice", inv["skipped"].pk, SyncStatus.SKIPPED)
    link(
        conn,
        "invoice",
        inv["waiting"].pk,
        SyncStatus.NOT_SYNCED,
        error_message="Waiting for the service “Bookkeeping” to reach QuickBooks.",
    )
    inv["draft"] = invoice(firm, acct, service, issued=False)
    inv["old"] = invoice(firm, acct, service, day=datetime.date(2026, 9, 15))
    inv["lone"] = invoice(firm, lone_acct, service)
    return inv


def test_invoice_list_statuses_tooltips_and_counts(client_as, invoice_states):
    html = page(client_as("employee"), reverse("billing:invoice_list"))
    assert '<th class="qbo-col">QuickBooks</th>' in html
    for text in (
        "QuickBooks: all (8)",
        "Synced (1)",
        "Syncing (1)",
        "Error (1)",
        "Not synced (4)",
        "Skipped (1)",
    ):
        assert text in html, text
    inv = invoice_states
    for expected in (
        f"In QuickBooks as invoice {inv['synced'].number}.",
        "http://sandbox.test/app/invoice?txnId=901&amp;realmId=4620816365",
        "QuickBooks already has an invoice with this number for another customer.",
        "(QuickBooks code 6140)",
        "Waiting to retry after a temporary QuickBooks problem.",
        f"Sync was turned off for invoice {inv['skipped'].number}",
        "Waiting for the service “Bookkeeping” to reach QuickBooks.",
        "Sent to QuickBooks when it is issued.",
        "Dated before the QuickBooks sync start date (2026-10-01), so it is not sent to QuickBooks.",
        "Waiting for the account “Red Rock Diner” to be synced to QuickBooks.",
    ):
        assert expected in html, expected
    for colour in ("green", "blue", "red", "grey", "amber"):
        assert f'class="badge badge-{colour}"' in html


def test_invoice_list_filter_keeps_counts(client_as, invoice_states):
    html = page(client_as("owner"), reverse("billing:invoice_list"), qbo="not_synced")
    assert "Not synced (4)" in html and "QuickBooks: all (8)" in html  # counts ignore the filter
    rows = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    assert rows.count("<tr>") == 4
    assert invoice_states["draft"].number in rows and invoice_states["synced"].number not in rows
    errors = page(client_as("owner"), reverse("billing:invoice_list"), qbo="error")
    rows = errors.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    assert rows.count("<tr>") == 1 and invoice_states["error"].number in rows
    assert 'name="qbo" value="error"' in errors  # the search form keeps the filter


def test_invoice_list_in_spanish(client_as, invoice_states):
    html = client_as("owner").get(reverse("billing:invoice_list"), HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "Sincronizada (1)" in html and "Omitida (1)" in html
    assert "Se envía a QuickBooks cuando se emite." in html
    assert "Esperando a que la cuenta «Red Rock Diner» se sincronice con QuickBooks." in html


def list_queries(client, url: str) -> int:
    with CaptureQueriesContext(db_connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_list_queries_do_not_grow_with_rows(firm, conn, acct, lone_acct, service, client_as):
    owner = client_as("owner")

    def add(n: int) -> None:
        for i in range(n):
            inv = invoice(firm, acct if i % 2 else lone_acct, service)
            if i % 3 == 0:
                link(conn, "invoice", inv.pk, SyncStatus.SYNCED, qbo_id=str(1000 + inv.pk))
            pay = payment(firm, acct)
            link(conn, "payment", pay.pk, SyncStatus.ERROR, error_message="No.")
            svc = services.service_create(firm=firm, name=f"Service {inv.pk}", rate="1")
            link(conn, "service", svc.pk, SyncStatus.SYNCED, qbo_id=str(inv.pk))

    add(2)
    few = {u: list_queries(owner, reverse(u)) for u in ("billing:invoice_list", "billing:payment_list")}
    few["billing:service_list"] = list_queries(owner, reverse("billing:service_list"))
    add(12)
    for url, n in few.items():
        assert list_queries(owner, reverse(url)) == n, url


def test_no_quickbooks_column_without_a_connection(firm, service, client_as):
    account = ClientAccount.objects.create(firm=firm, name="Cool Cars")
    invoice(firm, account, service)
    payment(firm, account)
    for url in ("billing:invoice_list", "billing:payment_list", "billing:service_list"):
        html = page(client_as("owner"), reverse(url))
        assert "qbo-col" not in html and "qbo-status" not in html and "QuickBooks: all" not in html, url


def test_payment_list_explains_payments_that_are_not_sent(firm, conn, acct, client_as):
    off = payment(firm, acct, sync_to_quickbooks=False)
    synced = payment(firm, acct, reference="CHK-1")
    link(conn, "payment", synced.pk, SyncStatus.SYNCED, qbo_id="77")
    html = page(client_as("owner"), reverse("billing:payment_list"))
    assert "Sync to QuickBooks is turned off for this payment." in html
    assert "http://sandbox.test/app/recvpayment?txnId=77&amp;realmId=4620816365" in html
    assert "In QuickBooks as a payment received (QBO Id 77)." in html
    assert "Synced (1)" in html and "Not synced (1)" in html
    # The firm's setting decides for manual payments left on "use the setting".
    conn.sync_manual_payments = False
    conn.save()
    default = payment(firm, acct)
    html = page(client_as("owner"), reverse("billing:payment_list"))
    assert "Payments recorded by hand are not sent to QuickBooks (QuickBooks settings)" in html
    assert off.pk != default.pk


def test_service_list_statuses(firm, conn, service, client_as):
    link(conn, "service", service.pk, SyncStatus.SYNCED, qbo_id="12", qbo_name="Bookkeeping")
    old = services.service_create(firm=firm, name="Old work", rate="1")
    services.service_archive(service=old, archived=True)
    html = page(client_as("owner"), reverse("billing:service_list"), archived="1")
    assert "Linked to the QuickBooks item “Bookkeeping”." in html
    assert "http://sandbox.test/app/items?realmId=4620816365" in html
    assert "Archived services are not sent to QuickBooks." in html
    assert "Synced (1)" in html and "Not synced (1)" in html


# --------------------------------------------------------------------------------------------
# Detail pages


def test_invoice_detail_menu_for_managers_status_for_employees(
    firm, conn, acct, lone_acct, service, client_as
):
    inv = invoice(firm, lone_acct, service)
    url = reverse("billing:invoice_detail", args=[inv.pk])
    owner = page(client_as("owner"), url)
    assert 'id="qbo-panel"' in owner and "Waiting for the account “Red Rock Diner”" in owner
    assert 'class="qbo-sync" disabled aria-describedby="qbo-sync-blocked"' in owner
    assert "The account “Red Rock Diner” is not synced to QuickBooks. Sync the account first." in owner
    employee = page(client_as("employee"), url)
    assert 'id="qbo-panel"' in employee and "qbo-menu" not in employee
    # Once the account is synced the button works.
    link(conn, "customer", lone_acct.pk, SyncStatus.SYNCED, qbo_id="3")
    owner = page(client_as("admin"), url)
    action = reverse("quickbooks:record_action", args=["invoice", inv.pk, "sync"])
    assert (
        f'hx-post="{action}"' in owner
        and "disabled" not in owner.split("qbo-menu", 1)[1].split("</details>")[0]
    )


def test_invoice_detail_error_with_history_and_retry(firm, conn, acct, service, client_as):
    inv = invoice(firm, acct, service)
    row = link(
        conn,
        "invoice",
        inv.pk,
        SyncStatus.ERROR,
        qbo_id="",
        error_kind="total_mismatch",
        error_code="",
        error_message="QuickBooks computed 108.25 for this invoice; the app says 100.00.",
    )
    SyncAttempt.objects.create(
        link=row,
        operation="create",
        outcome="rejected",
        request_id="rid-123",
        fault_code="6000",
        fault_detail="Business validation error",
        message="Refused.",
    )
    html = page(client_as("owner"), reverse("billing:invoice_detail", args=[inv.pk]))
    assert "QuickBooks computed 108.25 for this invoice; the app says 100.00." in html
    assert reverse("quickbooks:record_action", args=["invoice", inv.pk, "retry"]) in html
    assert "Sync history" in html and "rid-123" in html and "Fault 6000: Business validation error" in html
    assert "Open in QuickBooks" not in html


def test_synced_records_link_to_quickbooks(firm, conn, acct, service, client_as):
    inv = invoice(firm, acct, service)
    link(conn, "invoice", inv.pk, SyncStatus.SYNCED, qbo_id="901")
    pay = payment(firm, acct)
    link(conn, "payment", pay.pk, SyncStatus.SYNCED, qbo_id="77")
    link(conn, "service", service.pk, SyncStatus.SYNCED, qbo_id="12", qbo_name="Bookkeeping")
    owner = client_as("owner")
    html = page(owner, reverse("billing:invoice_detail", args=[inv.pk]))
    assert 'class="qbo-open" href="http://sandbox.test/app/invoice?txnId=901&amp;realmId=4620816365"' in html
    assert reverse("quickbooks:record_action", args=["invoice", inv.pk, "unsync"]) in html
    html = page(owner, reverse("billing:payment_detail", args=[pay.pk]))
    assert 'href="http://sandbox.test/app/recvpayment?txnId=77&amp;realmId=4620816365"' in html
    html = page(owner, reverse("billing:service_edit", args=[service.pk]))
    assert 'href="http://sandbox.test/app/items?realmId=4620816365"' in html


def test_real_quickbooks_urls(conn):
    from practice.quickbooks.selectors import qbo_url

    conn.environment = "production"
    assert qbo_url(conn, "invoice", "9") == "https://app.qbo.intuit.com/app/invoice?txnId=9"
    assert qbo_url(conn, "payment", "9") == "https://app.qbo.intuit.com/app/recvpayment?txnId=9"
    assert qbo_url(conn, "item", "9") == "https://app.qbo.intuit.com/app/items"
    assert qbo_url(conn, "customer", "9") == "https://app.qbo.intuit.com/app/customerdetail?nameId=9"
    conn.environment = "sandbox"
    assert qbo_url(conn, "invoice", "9") == "https://app.sandbox.qbo.intuit.com/app/invoice?txnId=9"
    assert qbo_url(conn, "invoice", "") == ""


def test_renumber_form_slot_for_a_docnumber_clash(firm, conn, acct, service, client_as):
    inv = invoice(firm, acct, service)
    link(conn, "invoice", inv.pk, SyncStatus.ERROR, error_kind="docnumber_clash", error_message="Clash.")
    # Renders whether or not the invoices branch's partial exists yet (optional include).
    html = page(client_as("owner"), reverse("billing:invoice_detail", args=[inv.pk]))
    assert "Clash." in html


# --------------------------------------------------------------------------------------------
# Actions: roles, firms, effects


def action_url(kind: str, pk: int, action: str) -> str:
    return reverse("quickbooks:record_action", args=[kind, pk, action])


@pytest.mark.parametrize(
    ("who", "status"), [("owner", 302), ("admin", 302), ("employee", 403), ("other", 404), ("anonymous", 302)]
)
def test_action_roles_and_firms(firm, conn, acct, service, client_as, who, status):
    inv = invoice(firm, acct, service)
    response = client_as(who).post(action_url("invoice", inv.pk, "unsync"))
    assert response.status_code == status
    changed = SyncLink.objects.filter(kind="invoice", local_id=inv.pk, status=SyncStatus.SKIPPED).exists()
    assert changed == (who in ("owner", "admin"))
    if who == "anonymous":
        assert "/login/" in response["Location"]
    if who in ("owner", "admin"):
        assert response["Location"] == reverse("billing:invoice_detail", args=[inv.pk])


def test_action_needs_post_csrf_and_a_known_kind(firm, conn, acct, service, client_as):
    from django.test import Client

    from practice.firms.models import User

    inv = invoice(firm, acct, service)
    owner = client_as("owner")
    assert owner.get(action_url("invoice", inv.pk, "sync")).status_code == 405
    assert owner.post(action_url("customer", acct.pk, "sync")).status_code == 404
    assert owner.post(action_url("invoice", inv.pk, "delete")).status_code == 404
    assert owner.post(action_url("invoice", 10**12, "sync")).status_code == 404
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(User.objects.get(email="owner@acme.test"))
    assert strict.post(action_url("invoice", inv.pk, "unsync")).status_code == 403
    assert not SyncLink.objects.filter(kind="invoice").exists()


def test_unsync_then_sync_again_resumes_a_linked_invoice(
    firm, conn, acct, service, client_as, django_capture_on_commit_callbacks
):
    inv = invoice(firm, acct, service)
    link(conn, "invoice", inv.pk, SyncStatus.SYNCED, qbo_id="901", input_hash="abc")
    owner = client_as("owner")
    response = owner.post(action_url("invoice", inv.pk, "unsync"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert (
        f"Sync turned off for invoice {inv.number}. Nothing in QuickBooks was deleted."
        in response.content.decode()
    )
    row = SyncLink.objects.get(kind="invoice", local_id=inv.pk)
    assert row.status == SyncStatus.SKIPPED and row.qbo_id == "901"
    with django_capture_on_commit_callbacks() as callbacks:
        owner.post(action_url("invoice", inv.pk, "sync"), HTTP_HX_REQUEST="true")
    row.refresh_from_db()
    assert row.status == SyncStatus.SYNCED and row.input_hash == "" and row.qbo_id == "901"
    assert len(callbacks) == 1  # a run is enqueued
    history = list(SyncAttempt.objects.filter(link=row).order_by("id").values_list("operation", "actor"))
    assert history == [("unsync", "owner@acme.test"), ("sync", "owner@acme.test")]


def test_retry_clears_the_error_and_asks_for_a_run(
    firm, conn, acct, service, django_capture_on_commit_callbacks
):
    inv = invoice(firm, acct, service)
    row = link(
        conn,
        "invoice",
        inv.pk,
        SyncStatus.ERROR,
        attempts=5,
        error_kind="rejected",
        error_code="6000",
        error_message="Refused.",
        error_detail="detail",
        input_hash="h",
        pending_op="create",
        request_id="r1",
    )
    with django_capture_on_commit_callbacks() as callbacks:
        actions.record_retry(firm=firm, kind="invoice", local_id=inv.pk, actor="admin@acme.test")
    row.refresh_from_db()
    assert row.status == SyncStatus.NOT_SYNCED and row.attempts == 0
    assert (row.error_kind, row.error_code, row.error_message, row.input_hash, row.pending_op) == (
        "",
        "",
        "",
        "",
        "",
    )
    assert len(callbacks) == 1
    attempt = SyncAttempt.objects.get(link=row)
    assert (attempt.operation, attempt.outcome, attempt.message) == ("retry", "info", "Asked to retry.")
    assert attempt.operation_label == "Retry requested"


def test_in_flight_write_keeps_its_identity(firm, conn, acct, service):
    inv = invoice(firm, acct, service)
    row = link(
        conn, "invoice", inv.pk, SyncStatus.ERROR, batch_request_id="b-1", request_id="r-1", error_kind="x"
    )
    actions.record_sync(firm=firm, kind="invoice", local_id=inv.pk)
    row.refresh_from_db()
    assert row.status == SyncStatus.SYNCING and row.batch_request_id == "b-1" and row.request_id == "r-1"
    actions.record_unsync(firm=firm, kind="invoice", local_id=inv.pk)
    row.refresh_from_db()
    assert row.status == SyncStatus.SKIPPED and row.batch_request_id == "b-1"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("draft", "Sent to QuickBooks when it is issued."),
        ("old", "Dated before the QuickBooks sync start date (2026-10-01)"),
        ("lone", "The account “Red Rock Diner” is not synced to QuickBooks. Sync the account first."),
    ],
)
def test_sync_is_refused_with_the_reason(
    firm, conn, acct, lone_acct, service, client_as, django_capture_on_commit_callbacks, case, message
):
    inv = {
        "draft": lambda: invoice(firm, acct, service, issued=False),
        "old": lambda: invoice(firm, acct, service, day=datetime.date(2026, 9, 1)),
        "lone": lambda: invoice(firm, lone_acct, service),
    }[case]()
    with pytest.raises(actions.SyncActionError, match=message[:30]):
        actions.record_sync(firm=firm, kind="invoice", local_id=inv.pk)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client_as("owner").post(action_url("invoice", inv.pk, "sync"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and 'role="alert"' in response.content.decode()
    assert message in response.content.decode()
    assert callbacks == []
    assert not SyncAttempt.objects.exists()
    assert SyncLink.objects.filter(kind="invoice", local_id=inv.pk, status=SyncStatus.NOT_SYNCED).count() <= 1


def test_payment_and_service_actions(firm, other_firm, conn, acct, service, client_as):
    pay = payment(firm, acct, sync_to_quickbooks=False)
    with pytest.raises(actions.SyncActionError, match="turned off for this payment"):
        actions.record_sync(firm=firm, kind="payment", local_id=pay.pk)
    ok = payment(firm, acct)
    actions.record_sync(firm=firm, kind="payment", local_id=ok.pk)
    assert SyncLink.objects.get(kind="payment", local_id=ok.pk).status == SyncStatus.NOT_SYNCED
    response = client_as("admin").post(action_url("service", service.pk, "unsync"), follow=True)
    assert SyncLink.objects.get(kind="service", local_id=service.pk).status == SyncStatus.SKIPPED
    assert "Sync turned off for service “Bookkeeping”." in response.content.decode()
    # A record of another firm is not found by the action either.
    Connection.objects.create(
        firm=other_firm, realm_id="999", status="connected", environment="sandbox-local"
    )
    with pytest.raises(PermissionDenied):
        actions.record_unsync(firm=other_firm, kind="payment", local_id=ok.pk)
    assert not SyncLink.objects.filter(firm=other_firm).exists()


def test_panel_refresh_for_members_only_of_this_firm(firm, conn, acct, service, client_as):
    inv = invoice(firm, acct, service)
    link(conn, "invoice", inv.pk, SyncStatus.SYNCING)
    url = reverse("quickbooks:record_sync_panel", args=["invoice", inv.pk])
    html = page(client_as("employee"), url)
    assert 'data-status="syncing"' in html and f'hx-get="{url}"' in html and "qbo-menu" not in html
    assert client_as("other").get(url).status_code == 404
    assert (
        client_as("owner").get(reverse("quickbooks:record_sync_panel", args=["refund", inv.pk])).status_code
        == 404
    )


def test_counts_with_a_search_across_allocations(firm, conn, acct, service, client_as):
    one = invoice(firm, acct, service)
    two = invoice(firm, acct, service)
    pay = payment(firm, acct, allocations=[(one, "20.00"), (two, "20.00")])
    link(conn, "payment", pay.pk, SyncStatus.SYNCED, qbo_id="5")
    html = page(client_as("owner"), reverse("billing:payment_list"), q="INV")
    assert "Synced (1)" in html and "QuickBooks: all (1)" in html

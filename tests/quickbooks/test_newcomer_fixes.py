"""What a newcomer tripped on (issue 11 item 4), each against the sandbox over HTTP: a Not synced
account says why, "Sync now" on the Info tab, "Ask me" -> "Create" decides the unmatched accounts
again, and "Sync again" on a Skipped account checks the QuickBooks customer first."""

from __future__ import annotations

import datetime
import re

import pytest
from django.urls import reverse

from practice.billing.services import invoice_create
from practice.quickbooks.connection.client import QBOClient
from practice.quickbooks.models import SyncAttempt, SyncLink
from practice.quickbooks.statuses import SyncStatus
from practice.quickbooks.web.forms import SetupForm
from tests.quickbooks.sync_support import accounts, link_of, qbo_customers, run, set_up

HX = {"HTTP_HX_REQUEST": "true"}
IDLE = "Not synced: this account has no invoices or payments yet"
NOT_LINKED = "Not linked to a QuickBooks customer yet"


def test_not_synced_tooltip_says_why(firm, connection, client_as):
    conn = set_up(connection, scope="with_activity")
    idle, billed = accounts(firm, "Idle Client", "Billed Client")
    today = datetime.date.today()
    invoice_create(firm=firm, account=billed, issue_date=today, due_date=today)
    owner = client_as("owner")
    html = owner.get(reverse("clients:account_list")).content.decode()
    rows = {a.name: a.qbo.tooltip for a in owner.get(reverse("clients:account_list")).context["accounts"]}
    assert rows["Idle Client"].startswith(IDLE)
    assert rows["Billed Client"].startswith(NOT_LINKED)
    assert IDLE in html
    panel = owner.get(reverse("clients:account_detail", args=[idle.pk])).content.decode()
    assert IDLE in panel
    run(conn)
    assert link_of(conn, billed).status == SyncStatus.SYNCED
    assert not SyncLink.objects.filter(kind="customer", local_id=idle.pk).exists()
    # Every account syncs: no "no invoices" reason any more.
    conn.account_scope = "all"
    conn.save()
    rows = {a.name: a.qbo.tooltip for a in owner.get(reverse("clients:account_list")).context["accounts"]}
    assert rows["Idle Client"].startswith(NOT_LINKED)


def test_info_tab_offers_sync_now_for_a_not_synced_account(firm, connection, client_as):
    conn = set_up(connection, scope="with_activity")
    (idle,) = accounts(firm, "Idle Client")
    owner = client_as("owner")
    page = owner.get(reverse("clients:account_detail", args=[idle.pk])).content.decode()
    assert 'class="qbo-sync-now"' in page
    response = owner.post(reverse("quickbooks:account_retry", args=[idle.pk]), **HX)
    assert response.status_code == 200
    assert link_of(conn, idle).status == SyncStatus.SYNCING
    run(conn)
    link = link_of(conn, idle)
    (customer,) = qbo_customers(conn, "Idle Client")
    assert link.status == SyncStatus.SYNCED and link.qbo_id == customer["Id"]
    page = owner.get(reverse("clients:account_detail", args=[idle.pk])).content.decode()
    assert "qbo-sync-now" not in page  # only while Not synced
    assert (
        "qbo-sync-now"
        not in client_as("employee").get(reverse("clients:account_detail", args=[idle.pk])).content.decode()
    )


def _setup_form(conn, **changes):
    accounts_in_qbo = list(QBOClient(conn).query_all("Account"))
    form = SetupForm(connection=conn, accounts=accounts_in_qbo)
    data = {**form.initial, **changes}
    data = {k: v for k, v in data.items() if v not in (None, False)}
    bound = SetupForm(data, connection=conn, accounts=accounts_in_qbo, actor="owner@acme.test")
    assert bound.is_valid(), bound.errors
    return bound.save()


def test_ask_me_to_create_decides_the_unmatched_accounts_again(firm, connection):
    conn = set_up(connection, unmatched="ask")
    nobody, other = accounts(firm, "Nobody Like This", "Someone Else Entirely")
    run(conn)
    assert link_of(conn, nobody).status == SyncStatus.ERROR
    assert link_of(conn, nobody).error_kind == "no_match"
    # Another Error reason is not this setting's business: it stays.
    SyncLink.objects.filter(pk=link_of(conn, other).pk).update(error_kind="ambiguous")
    _setup_form(conn, unmatched_customer="create")
    link = link_of(conn, nobody)
    assert (link.status, link.error_message) == (SyncStatus.NOT_SYNCED, "")
    assert SyncAttempt.objects.filter(link=link, operation="sync", actor="owner@acme.test").count() == 1
    assert link_of(conn, other).status == SyncStatus.ERROR
    run(conn)
    (customer,) = qbo_customers(conn, "Nobody Like This")
    link = link_of(conn, nobody)
    assert link.status == SyncStatus.SYNCED and link.qbo_id == customer["Id"]
    assert qbo_customers(conn, "Someone Else Entirely") == []


def test_create_to_create_changes_nothing(firm, connection):
    conn = set_up(connection, unmatched="ask")
    (nobody,) = accounts(firm, "Nobody Like This")
    run(conn)
    _setup_form(conn, unmatched_customer="ask", account_scope="all")
    assert link_of(conn, nobody).status == SyncStatus.ERROR


@pytest.fixture
def skipped(firm, connection, client_as):
    conn = set_up(connection)
    (acct,) = accounts(firm, "Cool Cars")
    run(conn)
    owner = client_as("owner")
    owner.post(reverse("quickbooks:account_unsync", args=[acct.pk]), **HX)
    assert link_of(conn, acct).status == SyncStatus.SKIPPED
    return conn, acct, owner


def test_sync_again_on_skipped_checks_the_customer_is_active(skipped):
    conn, acct, owner = skipped
    link = link_of(conn, acct)
    client = QBOClient(conn)
    found = client.read("Customer", link.qbo_id)
    current = found.get("Customer", found)
    client.update(
        "Customer",
        {"Id": link.qbo_id, "SyncToken": current["SyncToken"], "Active": False},
        request_id="test-deactivate",
    )
    response = owner.post(reverse("quickbooks:account_retry", args=[acct.pk]), **HX)
    link = link_of(conn, acct)
    assert link.status == SyncStatus.ERROR and link.error_kind == "inactive_match"
    assert "is inactive" in response.content.decode() and "Reactivate and link" in response.content.decode()
    owner.post(reverse("quickbooks:account_reactivate", args=[acct.pk]), {"customer_id": link.qbo_id}, **HX)
    run(conn)
    link = link_of(conn, acct)
    assert link.status == SyncStatus.SYNCED
    (customer,) = qbo_customers(conn, "Cool Cars")
    assert customer["Active"] is True and customer["Id"] == link.qbo_id


def test_sync_again_on_skipped_whose_customer_is_gone_decides_again(skipped):
    conn, acct, owner = skipped
    (customer,) = qbo_customers(conn, "Cool Cars")
    SyncLink.objects.filter(kind="customer", local_id=acct.pk).update(qbo_id="999999", qbo_name="Gone")
    owner.post(reverse("quickbooks:account_retry", args=[acct.pk]), **HX)
    link = link_of(conn, acct)
    assert (link.status, link.qbo_id) == (SyncStatus.SYNCING, "")  # decided afresh on the next run
    assert SyncAttempt.objects.filter(link=link, operation="check").count() == 1
    run(conn)
    link = link_of(conn, acct)
    assert link.status == SyncStatus.SYNCED and link.qbo_id == customer["Id"]  # matched by name again
    assert len(qbo_customers(conn, "Cool Cars")) == 1


def test_sync_again_on_skipped_with_an_active_customer_resumes(skipped):
    conn, acct, owner = skipped
    qbo_id = link_of(conn, acct).qbo_id
    owner.post(reverse("quickbooks:account_retry", args=[acct.pk]), **HX)
    link = link_of(conn, acct)
    assert (link.status, link.qbo_id) == (SyncStatus.SYNCED, qbo_id)


# transaction=True: the worker closes the database connection between tasks.
@pytest.mark.django_db(transaction=True)
def test_start_syncing_stays_disabled_until_the_preview_has_loaded(firm, connection, client_as):
    from tests.quickbooks.test_sync_preview import poll_url, run_worker

    connection.account_scope = "all"
    connection.income_account_id = "1"
    connection.save()
    accounts(firm, "Preview Brand New")
    owner = client_as("owner")
    review = owner.get(reverse("quickbooks:setup_confirm")).content.decode()
    assert re.search(r'<button[^>]*id="qbo-start-sync"[^>]*disabled', review)
    assert "Available once the preview above has loaded." in review
    first = owner.get(reverse("quickbooks:sync_preview"), **HX).content.decode()
    assert "qbo-start-sync" not in first  # still reading: the button stays disabled
    run_worker()
    done = owner.get(poll_url(first), **HX).content.decode()
    assert "1 customer will be created" in done
    oob = re.search(r'<span id="qbo-start-sync-gate" hx-swap-oob="true">(.*?)</span>', done, re.S)
    assert oob is not None and "disabled" not in oob.group(1) and "Start syncing" in oob.group(1)
    # An admin sees the preview, never the owner's button.
    admin_first = client_as("admin").get(reverse("quickbooks:sync_preview"), **HX).content.decode()
    run_worker()
    assert "qbo-start-sync" not in client_as("admin").get(poll_url(admin_first), **HX).content.decode()


def test_history_lines_are_translated(firm, connection, client_as):
    from django.utils import translation

    from practice.quickbooks.history_text import translate

    conn = set_up(connection)
    (acct,) = accounts(firm, "Amy's Bird Sanctuary")  # in the sample company: linked by name
    run(conn)
    link = link_of(conn, acct)
    (attempt,) = SyncAttempt.objects.filter(link=link, operation="match")
    assert attempt.message == "Linked by name to “Amy's Bird Sanctuary”."  # stored in English
    page = (
        client_as("owner")
        .get(reverse("clients:account_detail", args=[acct.pk]), HTTP_ACCEPT_LANGUAGE="es")
        .content.decode()
    )
    assert "Vinculada por nombre a «Amy&#x27;s Bird Sanctuary»." in page
    assert "Linked by name to" not in page
    with translation.override("es"):
        assert translate("Number changed from INV-1 to INV-9; sending it again.") == (
            "Número cambiado de INV-1 a INV-9; se envía de nuevo."
        )
        assert translate("QuickBooks said something new.") == "QuickBooks said something new."
    with translation.override("en"):
        assert translate("Asked to retry.") == "Asked to retry."


def test_bulk_sync_again_checks_each_skipped_customer(firm, connection, client_as):
    """ "Sync selected" on Skipped accounts does the single action's live check, in one QBO query
    for the page: the one whose customer was made inactive shows Error offering "Reactivate and
    link", the one whose customer is gone is decided afresh, the active one resumes."""
    from practice.quickbooks import actions

    conn = set_up(connection)
    inactive, gone, fine = accounts(firm, "Cool Cars", "Bulk Gone Client", "Brand New Bulk Client")
    run(conn)
    ids = [inactive.pk, gone.pk, fine.pk]
    assert actions.accounts_sync_bulk(firm=firm, action="unsync", account_ids=ids, actor="x") == 3
    client = QBOClient(conn)
    qbo_id = link_of(conn, inactive).qbo_id
    current = client.read("Customer", qbo_id)
    client.update(
        "Customer",
        {"Id": qbo_id, "SyncToken": current["SyncToken"], "Active": False},
        request_id="test-bulk-deactivate",
    )
    (was,) = qbo_customers(conn, "Bulk Gone Client")
    SyncLink.objects.filter(kind="customer", local_id=gone.pk).update(qbo_id="999999", qbo_name="Gone")
    fine_id = link_of(conn, fine).qbo_id

    owner = client_as("owner")
    response = owner.post(reverse("quickbooks:accounts_bulk"), {"action": "sync", "ids": ids})
    assert response.status_code == 302

    link = link_of(conn, inactive)
    assert (link.status, link.error_kind, link.qbo_id) == (SyncStatus.ERROR, "inactive_match", qbo_id)
    assert link.error_message == "The QuickBooks customer “Cool Cars” is inactive."
    link = link_of(conn, gone)
    assert (link.status, link.qbo_id) == (SyncStatus.SYNCING, "")
    assert (link_of(conn, fine).status, link_of(conn, fine).qbo_id) == (SyncStatus.SYNCED, fine_id)
    checks = SyncAttempt.objects.filter(operation="check").order_by("link__local_id")
    assert [(a.link.local_id, a.outcome) for a in checks] == [(inactive.pk, "error"), (gone.pk, "info")]
    # Asked to sync: the gone and the active one, not the inactive one.
    assert SyncAttempt.objects.filter(operation="sync", actor="owner@acme.test").count() == 2

    run(conn)
    assert link_of(conn, gone).status == SyncStatus.SYNCED
    assert link_of(conn, gone).qbo_id == was["Id"]  # matched by name again, not duplicated
    assert len(qbo_customers(conn, "Bulk Gone Client")) == 1
    assert link_of(conn, inactive).status == SyncStatus.ERROR  # waits for a person's choice

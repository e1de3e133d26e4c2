"""The QuickBooks column, status filter, counts, bulk bar and live polling on Clients > Accounts."""

from __future__ import annotations

import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from practice.clients.models import ClientAccount
from practice.quickbooks.models import Connection, SyncLink
from practice.quickbooks.statuses import SyncStatus

CYCLE = [SyncStatus.SYNCED, SyncStatus.ERROR, SyncStatus.SKIPPED, SyncStatus.SYNCING, None]


@pytest.fixture
def local_conn(firm):
    # No QBO call happens on the list page: a connected row is enough.
    return Connection.objects.create(
        firm=firm,
        realm_id="123",
        status="connected",
        environment="sandbox-local",
        setup_completed_at=timezone.now(),
    )


def make_accounts(firm, conn, n: int) -> list[ClientAccount]:
    accts = ClientAccount.objects.bulk_create(
        [ClientAccount(firm=firm, name=f"Account {i:05d}", email=f"a{i}@x.test") for i in range(n)]
    )
    links = []
    for i, a in enumerate(accts):
        status = CYCLE[i % len(CYCLE)]
        if status is None:
            continue
        links.append(
            SyncLink(
                firm=firm,
                connection=conn,
                kind="customer",
                local_id=a.pk,
                status=status,
                qbo_id=str(i) if status == SyncStatus.SYNCED else "",
                qbo_name=a.name if status == SyncStatus.SYNCED else "",
                error_message="Something is wrong; fix it." if status == SyncStatus.ERROR else "",
            )
        )
    SyncLink.objects.bulk_create(links)
    return accts


def list_queries(client) -> int:
    with CaptureQueriesContext(db_connection) as ctx:
        response = client.get(reverse("clients:account_list"))
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_column_counts_and_filter(firm, local_conn, client_as):
    make_accounts(firm, local_conn, 10)
    owner = client_as("owner")
    page = owner.get(reverse("clients:account_list")).content.decode()
    assert "QuickBooks" in page
    assert "Synced (2)" in page and "Error (2)" in page and "Not synced (2)" in page
    assert "Skipped (2)" in page and "Syncing (2)" in page and "All (10)" in page
    assert 'class="badge badge-green"' in page and 'class="badge badge-red"' in page
    assert "Something is wrong; fix it." in page  # tooltip body
    assert 'form="qbo-bulk"' in page and "Retry all errors" in page
    errors = owner.get(reverse("clients:account_list") + "?qbo=error").content.decode()
    assert errors.count('data-status="error"') == 2 + 1  # two badges and the active chip
    assert "Account 00000" not in errors and "Account 00001" in errors


def test_employee_sees_statuses_without_bulk_actions(firm, local_conn, client_as):
    make_accounts(firm, local_conn, 5)
    page = client_as("employee").get(reverse("clients:account_list")).content.decode()
    assert "badge-green" in page
    assert "qbo-bulk" not in page and 'name="ids"' not in page


def test_query_count_does_not_grow_with_accounts(firm, local_conn, client_as, django_assert_num_queries):
    owner = client_as("owner")
    make_accounts(firm, local_conn, 10)
    small = list_queries(owner)
    make_accounts(firm, local_conn, 990)
    with django_assert_num_queries(small):
        owner.get(reverse("clients:account_list"))
    assert list_queries(owner) == small


def test_live_polling_only_while_syncing(firm, local_conn, client_as):
    accts = make_accounts(firm, local_conn, 5)  # index 3 is Syncing
    owner = client_as("owner")
    page = owner.get(reverse("clients:account_list")).content.decode()
    assert 'hx-trigger="every 2s"' in page
    ids = ",".join(str(a.pk) for a in accts)
    poll = owner.get(reverse("quickbooks:account_status_poll") + f"?ids={ids}").content.decode()
    assert poll.count('hx-swap-oob="true"') == len(accts) + 1
    assert "every 2s" in poll  # still syncing: keep polling
    SyncLink.objects.filter(status=SyncStatus.SYNCING).update(status=SyncStatus.SYNCED, qbo_name="Done")
    poll = owner.get(reverse("quickbooks:account_status_poll") + f"?ids={ids}").content.decode()
    assert "every 2s" not in poll  # the poller is replaced by an inert one: polling stops
    page = owner.get(reverse("clients:account_list")).content.decode()
    assert 'hx-trigger="every 2s"' not in page


def test_tooltips_per_status(firm, local_conn, client_as, settings):
    settings.QBO_SANDBOX_URL = "http://sandbox.test"
    accts = make_accounts(firm, local_conn, 5)
    SyncLink.objects.filter(status=SyncStatus.SYNCING).update(next_retry_at=timezone.now())
    page = client_as("owner").get(reverse("clients:account_list")).content.decode()
    assert "Linked to QuickBooks customer “Account 00000”" in page
    assert "http://sandbox.test/app/customerdetail?nameId=0" in page
    assert "Not synced: this account has no invoices or payments yet" in page  # why (issue 11)
    assert "Sync was turned off for this account" in page
    assert "Waiting to retry" in page and "Next attempt at" in page
    assert len(accts) == 5


def test_syncing_while_disconnected_says_so_and_does_not_poll(firm, local_conn, client_as):
    make_accounts(firm, local_conn, 5)
    Connection.objects.filter(pk=local_conn.pk).update(status="needs_reconnect")
    page = client_as("owner").get(reverse("clients:account_list")).content.decode()
    assert "Waiting until QuickBooks is reconnected" in page
    assert 'hx-trigger="every 2s"' not in page

"""Bulk actions of Clients > Accounts: a constant number of SQL queries per page, whatever the
number of accounts, and exactly the per-account outcome of the single actions."""

from __future__ import annotations

import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from practice.clients.models import ClientAccount
from practice.quickbooks import actions
from practice.quickbooks.models import SyncAttempt, SyncLink
from practice.quickbooks.statuses import SyncStatus
from tests.quickbooks.sync_support import accounts, link_of, qbo_customers, run, set_up


@pytest.fixture
def conn(connection):
    return set_up(connection)


def many(firm, prefix: str, count: int) -> list[ClientAccount]:
    return list(
        ClientAccount.objects.bulk_create(
            ClientAccount(firm=firm, name=f"{prefix} {i:04d}") for i in range(count)
        )
    )


def post_bulk(client, action: str, ids: list[int]) -> tuple[int, str]:
    """Queries the whole request costs, and the message it leaves."""
    with CaptureQueriesContext(db_connection) as queries:
        response = client.post(
            reverse("quickbooks:accounts_bulk"), {"action": action, "ids": ids}, follow=False
        )
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    return len(queries), page


@pytest.mark.parametrize("action", ["unsync", "sync"])
def test_bulk_action_costs_the_same_queries_for_10_or_400_accounts(firm, conn, client_as, action):
    owner = client_as("owner")
    small = [a.pk for a in many(firm, "Small", 10)]
    large = [a.pk for a in many(firm, "Large", 400)]

    small_queries, small_page = post_bulk(owner, action, small)
    large_queries, large_page = post_bulk(owner, action, large)

    assert large_queries == small_queries, (small_queries, large_queries)
    assert large_queries <= 20  # session, user, firm, connection, then the page's few statements
    assert "10 account(s) updated." in small_page and "400 account(s) updated." in large_page
    expected = SyncStatus.SKIPPED if action == "unsync" else SyncStatus.SYNCING
    links = SyncLink.objects.filter(connection=conn, local_id__in=small + large)
    assert links.count() == 410
    assert set(links.values_list("status", flat=True)) == {expected}
    history = SyncAttempt.objects.filter(link__in=links, actor="owner@acme.test")
    assert history.count() == 410
    assert set(history.values_list("operation", flat=True)) == {action}


def test_bulk_of_more_than_a_page_changes_every_account(firm, conn):
    ids = [a.pk for a in many(firm, "Paged", actions.BULK_PAGE_SIZE + 7)]
    assert actions.accounts_sync_bulk(firm=firm, action="unsync", account_ids=ids, actor="x") == len(ids)
    assert SyncLink.objects.filter(connection=conn, status=SyncStatus.SKIPPED).count() == len(ids)


def test_bulk_sync_gives_each_account_the_single_actions_outcome(firm, conn, other_firm):
    cool, pyes, archived, fresh = accounts(firm, "Cool Cars", "Pyes Cakes", "Old Client", "Brand New Bulk")
    run(conn)
    cool_link = link_of(conn, cool)
    assert (cool_link.status, link_of(conn, pyes).status) == (SyncStatus.SYNCED, SyncStatus.ERROR)
    actions.account_unsync(firm=firm, account=cool)  # linked, then turned off: resumes as Synced
    archived.archived = True
    archived.save()
    (foreign,) = accounts(other_firm, "Not Ours")
    already_synced = link_of(conn, fresh)
    assert already_synced.status == SyncStatus.SYNCED
    history_before = SyncAttempt.objects.count()

    ids = [cool.pk, pyes.pk, archived.pk, fresh.pk, foreign.pk]
    assert actions.accounts_sync_bulk(firm=firm, action="sync", account_ids=ids, actor="boss") == 2

    cool_after = link_of(conn, cool)
    assert (cool_after.status, cool_after.qbo_id) == (SyncStatus.SYNCED, cool_link.qbo_id)
    pyes_after = link_of(conn, pyes)
    assert (pyes_after.status, pyes_after.error_kind, pyes_after.attempts) == (SyncStatus.SYNCING, "", 0)
    assert link_of(conn, fresh).updated_at == already_synced.updated_at  # Synced: left alone
    assert not SyncLink.objects.filter(local_id=foreign.pk).exists()
    assert SyncAttempt.objects.count() == history_before + 2
    run(conn)
    assert link_of(conn, pyes).status == SyncStatus.ERROR  # decided afresh: still a near match
    assert len(qbo_customers(conn, "Cool Cars")) == 1


def test_bulk_unsync_keeps_a_sent_write_for_its_answer(firm, conn):
    (acct,) = accounts(firm, "In Flight Co")
    link = SyncLink.objects.create(
        firm=firm,
        connection=conn,
        kind="customer",
        local_id=acct.pk,
        status=SyncStatus.SYNCING,
        pending_op="create",
        batch_request_id="b" * 36,
        batch_bid="1",
        pending_body={"DisplayName": "In Flight Co"},
    )
    assert actions.accounts_sync_bulk(firm=firm, action="unsync", account_ids=[acct.pk]) == 1
    link.refresh_from_db()
    assert (link.status, link.batch_request_id, link.pending_op) == (SyncStatus.SKIPPED, "b" * 36, "create")


def test_bulk_with_an_unknown_action_names_the_field(firm, conn):
    with pytest.raises(actions.ValidationError) as caught:
        actions.accounts_sync_bulk(firm=firm, action="delete", account_ids=[1])
    assert caught.value.message_dict == {"action": ["Choose sync, unsync or retry errors."]}

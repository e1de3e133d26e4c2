"""Unknown outcomes keep their identity; nothing loops; errors stay typed (issue 8 items 1, 3, 5).

Every test runs the engine against qbo_sandbox over HTTP. Per-item faults of a batch come from
`batch_faults.BatchItemFaults`, a real HTTP hop in front of the sandbox (see its docstring).
"""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from practice.quickbooks import actions
from practice.quickbooks.models import SyncAttempt, SyncLink
from practice.quickbooks.statuses import SyncStatus
from practice.quickbooks.sync import engine
from tests.quickbooks.batch_faults import batch_item_faults
from tests.quickbooks.sync_support import accounts, link_of, make_due, qbo_customers, run, set_up


@pytest.fixture
def conn(connection):
    return set_up(connection)


@pytest.fixture
def proxy(sandbox, settings):
    with batch_item_faults(sandbox.url) as server:
        settings.QBO_API_BASE_URL = server.url
        yield server


@pytest.fixture
def strict_replays(sandbox):
    """QBO may answer 600 to a requestid that comes back with a different request (qbo-api.md §5):
    with this on, any replay that is not byte-identical fails the test."""
    sandbox.set_config(requestid_mismatch_fault=True)


def api_requests(sandbox, realm_id, **match):
    return [r for r in sandbox.requests(realm_id) if all(r.get(k) == v for k, v in match.items())]


def all_customer_names(sandbox, realm_id) -> list[str]:
    rows = sandbox.query(realm_id, "SELECT * FROM Customer WHERE Active IN (true, false) MAXRESULTS 1000")
    return [c["DisplayName"] for c in rows.get("Customer", [])]


@pytest.mark.parametrize("mode", ["unanswered", "system_fault"])
def test_a_committed_item_without_an_answer_is_found_not_created_twice(
    firm, conn, sandbox, realm_id, proxy, strict_replays, settings, mode
):
    settings.QBO_TRANSIENT_RETRIES = 0
    first, middle, last = accounts(firm, "Item Zero Co", "Item One Co", "Item Two Co")
    proxy.fault_next_batch(mode, "b1")
    run(conn)
    assert link_of(conn, first).status == link_of(conn, last).status == SyncStatus.SYNCED
    link = link_of(conn, middle)
    sent_rid = link.request_id
    # The same write, now keyed by its own requestid: same op, same body, not a new attempt id.
    assert link.status == SyncStatus.SYNCING and link.next_retry_at is not None
    assert (link.batch_request_id, link.batch_bid, link.op_seq) == (sent_rid, "", 1)
    assert link.pending_body["alone"] and link.pending_body["body"]["DisplayName"] == "Item One Co"
    assert SyncAttempt.objects.filter(link=link, outcome="retry").count() == 1

    make_due(conn)
    before = len(sandbox.requests(realm_id))
    run(conn)
    link = link_of(conn, middle)
    assert link.status == SyncStatus.SYNCED
    (customer,) = qbo_customers(conn, "Item One Co")
    assert customer["Id"] == link.qbo_id
    # Found with one query, never sent again.
    later = sandbox.requests(realm_id)[before:]
    assert [r for r in later if r["operation"] in ("create", "batch")] == []
    assert SyncAttempt.objects.get(link=link, outcome="success").message.startswith("Found in QuickBooks")
    assert sorted(all_customer_names(sandbox, realm_id)).count("Item One Co") == 1


def test_an_item_faulted_before_it_ran_is_sent_alone_with_the_same_requestid_until_answered(
    firm, conn, sandbox, realm_id, proxy, strict_replays, settings
):
    settings.QBO_TRANSIENT_RETRIES = 0
    _zero, one = accounts(firm, "Alone Zero Co", "Alone One Co")
    proxy.fault_next_batch("fault_not_run", "b1")
    run(conn)
    link = link_of(conn, one)
    rid = link.request_id
    assert link.status == SyncStatus.SYNCING and qbo_customers(conn, "Alone One Co") == []

    # The write goes out alone; QBO commits it but the answer is lost on the way back.
    sandbox.inject_fault(realm_id, "drop", count=1, operation="create", entity="Customer")
    make_due(conn)
    run(conn)
    link = link_of(conn, one)
    assert link.status == SyncStatus.SYNCING and link.request_id == rid
    assert len(qbo_customers(conn, "Alone One Co")) == 1

    # Nothing says it was written, so the same request goes again: QBO replays its answer.
    make_due(conn)
    run(conn)
    link = link_of(conn, one)
    assert link.status == SyncStatus.SYNCED
    (customer,) = qbo_customers(conn, "Alone One Co")
    assert customer["Id"] == link.qbo_id
    creates = api_requests(sandbox, realm_id, operation="create", entity="Customer")
    assert [r["requestid"] for r in creates] == [rid, rid]
    assert [r["replayed"] for r in creates] == [False, True]
    assert SyncAttempt.objects.filter(link=link, outcome="success", request_id=rid).count() == 1


@pytest.mark.parametrize("fault", ["drop", "503"])
def test_a_whole_batch_is_replayed_byte_for_byte(
    firm, conn, sandbox, realm_id, strict_replays, settings, fault
):
    settings.QBO_TRANSIENT_RETRIES = 0
    accts = accounts(firm, "Bytes One", "Bytes Two", "Bytes Three")
    sandbox.inject_fault(realm_id, fault, count=1, operation="batch")
    run(conn)
    rid = link_of(conn, accts[0]).batch_request_id
    assert {link_of(conn, a).batch_request_id for a in accts} == {rid}
    make_due(conn)
    run(conn)
    assert {link_of(conn, a).status for a in accts} == {SyncStatus.SYNCED}
    batches = api_requests(sandbox, realm_id, operation="batch")
    assert [b["requestid"] for b in batches] == [rid, rid] and batches[1]["status"] == 200
    for a in accts:
        assert len(qbo_customers(conn, a.name)) == 1


@pytest.mark.parametrize("first_fault", ["503", "drop"])
def test_a_skipped_member_of_a_batch_is_not_sent_again(
    firm, conn, sandbox, realm_id, strict_replays, settings, first_fault
):
    settings.QBO_TRANSIENT_RETRIES = 0
    kept, skipped = accounts(firm, "Kept Member", "Skipped Member")
    sandbox.inject_fault(realm_id, first_fault, count=1, operation="batch")
    run(conn)
    rid = link_of(conn, kept).batch_request_id
    actions.account_unsync(firm=firm, account=skipped)
    make_due(conn)
    run(conn)
    assert link_of(conn, kept).status == SyncStatus.SYNCED
    assert len(qbo_customers(conn, "Kept Member")) == 1
    s = link_of(conn, skipped)
    # Turned off: nothing sent for it, its stored write kept for a later Retry.
    assert s.status == SyncStatus.SKIPPED and s.batch_request_id == rid and not s.qbo_id
    if first_fault == "503":
        # Nothing ran the first time, and the re-sent batch carried only the kept account.
        assert qbo_customers(conn, "Skipped Member") == []
        assert [b["batch_items"] for b in api_requests(sandbox, realm_id, operation="batch")] == [0, 1]
    else:
        # The first send ran (its answer was lost). QBO knows the requestid with two items, so
        # it answers 600 to the shorter batch: the kept account went alone, found, not doubled.
        assert len(qbo_customers(conn, "Skipped Member")) == 1
    # Synced again later: the same write, never a second customer.
    actions.account_sync_retry(firm=firm, account=skipped)
    make_due(conn)
    run(conn)
    make_due(conn)
    run(conn)
    s = link_of(conn, skipped)
    assert s.status == SyncStatus.SYNCED
    (customer,) = qbo_customers(conn, "Skipped Member")
    assert customer["Id"] == s.qbo_id


def test_a_skipped_in_flight_write_alone_is_never_sent(firm, conn, sandbox, realm_id, settings):
    settings.QBO_TRANSIENT_RETRIES = 0
    (acct,) = accounts(firm, "Only Skipped")
    sandbox.inject_fault(realm_id, "503", count=1, operation="batch")
    run(conn)
    actions.account_unsync(firm=firm, account=acct)
    make_due(conn)
    SyncLink.objects.filter(connection=conn).update(next_retry_at=None)
    before = len(api_requests(sandbox, realm_id, operation="batch"))
    for _ in range(3):
        assert run(conn).reason == ""
    assert len(api_requests(sandbox, realm_id, operation="batch")) == before
    link = link_of(conn, acct)
    assert link.status == SyncStatus.SKIPPED and link.batch_request_id  # kept for a later Retry
    # Sync again: the same write, under the same requestid.
    actions.account_sync_retry(firm=firm, account=acct)
    run(conn)
    assert link_of(conn, acct).status == SyncStatus.SYNCED
    assert api_requests(sandbox, realm_id, operation="batch")[-1]["requestid"] == link.batch_request_id
    assert len(qbo_customers(conn, "Only Skipped")) == 1


def test_a_ten_minute_outage_costs_a_bounded_number_of_calls(firm, conn, sandbox, realm_id, settings):
    """QBO answers 503 to every batch for 10 minutes, time-scaled 1:100 (back-off 15 s -> 0.15 s,
    the outage 600 s -> 6 s) while a worker runs the realm as often as it likes."""
    settings.QBO_TRANSIENT_RETRIES = 0
    settings.QBO_RETRY_BASE_SECONDS = 0.15
    settings.QBO_RETRY_MAX_SECONDS = 36.0
    settings.QBO_MAX_ATTEMPTS = 4
    due, skipped = accounts(firm, "Outage Due Co", "Outage Skipped Co")
    sandbox.inject_fault(realm_id, "503", count=10_000, operation="batch")
    run(conn)
    actions.account_unsync(firm=firm, account=skipped)
    rows_after_unsync = SyncAttempt.objects.filter(link=link_of(conn, skipped)).count()
    reasons = []
    stop = time.monotonic() + 6.0
    while time.monotonic() < stop:
        reasons.append(engine.run_realm(conn.pk).reason)
        time.sleep(0.02)
    sandbox.clear_faults(realm_id)
    assert "more work" not in reasons and len(reasons) > 20
    # Attempts 1..4 (back-off 0.15, 0.3, 0.6 s), then Error: four batch calls in all, and quiet
    # for the remaining ~5 s. The Skipped account neither sends nor gains history rows.
    assert len(api_requests(sandbox, realm_id, operation="batch")) == 4
    d = link_of(conn, due)
    assert d.status == SyncStatus.ERROR and d.error_kind == "unavailable" and d.attempts == 4
    outcomes = list(SyncAttempt.objects.filter(link=d).order_by("id").values_list("outcome", flat=True))
    assert outcomes == ["retry", "retry", "retry", "error"]
    assert SyncAttempt.objects.filter(link=link_of(conn, skipped)).count() == rows_after_unsync
    # When QBO is back, Retry sends the same batch again and nothing is doubled.
    actions.account_sync_retry(firm=firm, account=due)
    run(conn)
    assert link_of(conn, due).status == SyncStatus.SYNCED
    assert len(qbo_customers(conn, "Outage Due Co")) == 1


def test_a_404_without_a_fault_is_an_error_at_once(firm, conn, sandbox, realm_id, proxy, settings):
    (acct,) = accounts(firm, "Not Found Route Co")
    proxy.fault_next_batch("status_404")
    run(conn)
    link = link_of(conn, acct)
    assert link.status == SyncStatus.ERROR and link.error_code == "http_404" and link.attempts == 0
    assert not link.batch_request_id
    assert link.error_message.startswith("QuickBooks refused the request (HTTP 404) without saying why")
    assert SyncAttempt.objects.filter(link=link, outcome="retry").count() == 0
    assert api_requests(sandbox, realm_id, operation="batch") == []  # the hop answered, not QBO
    assert qbo_customers(conn, "Not Found Route Co") == []


def test_a_429_while_looking_into_a_6240_keeps_the_account_syncing(
    firm, conn, sandbox, realm_id, settings, monkeypatch
):
    """The name appears in QBO after the run read the realm: the 6240 needs one query, and that
    query is throttled. Before, this became an Error "duplicate_name" nobody retried."""
    settings.QBO_RATE_LIMIT_RETRIES = 0
    (acct,) = accounts(firm, "Arrived Meanwhile Co")
    original = engine.dispatch

    def dispatch_after_someone_adds_the_name(ctx, ops):
        if ops:
            sandbox.bulk_insert(realm_id, "Customer", [{"DisplayName": "Arrived Meanwhile Co"}])
            sandbox.inject_fault(realm_id, "429", count=1, operation="query")
            monkeypatch.setattr(engine, "dispatch", original)
        return original(ctx, ops)

    monkeypatch.setattr(engine, "dispatch", dispatch_after_someone_adds_the_name)
    start = timezone.now()
    run(conn)
    link = link_of(conn, acct)
    assert link.status == SyncStatus.SYNCING and link.error_kind == ""
    assert (link.next_retry_at - start).total_seconds() >= 60  # Intuit: wait 60 s after a 429
    make_due(conn)
    run(conn)
    link = link_of(conn, acct)
    (customer,) = qbo_customers(conn, "Arrived Meanwhile Co")
    assert link.status == SyncStatus.SYNCED and link.qbo_id == customer["Id"]


def test_6240s_are_explained_from_the_name_index_not_one_query_each(firm, conn, sandbox, realm_id):
    vendors = sandbox.query(realm_id, "SELECT * FROM Vendor MAXRESULTS 5")["Vendor"]
    assert len(vendors) == 5
    accts = accounts(firm, *[f"Wants Vendor Name {i}" for i in range(5)])
    for acct, vendor in zip(accts, vendors, strict=True):
        actions.account_sync_create(firm=firm, account=acct, name=vendor["DisplayName"])
    before = len(sandbox.requests(realm_id))
    run(conn)
    for acct in accts:
        link = link_of(conn, acct)
        assert (link.status, link.error_kind, link.error_code) == (SyncStatus.ERROR, "vendor_clash", "6240")
    queries = [r for r in sandbox.requests(realm_id)[before:] if r["operation"] == "query"]
    # Customers, vendors, employees (one page each) and customer types: not 5 x up to 3 look-ups.
    assert len(queries) == 4

"""Account sync against qbo_sandbox over HTTP: matching, creation, eligibility, idempotency."""

from __future__ import annotations

import datetime
import threading

import pytest
from django.db import connection as db_connection
from django.utils import timezone

from practice.clients.services import account_archive, account_update
from practice.quickbooks import actions
from practice.quickbooks.connection.client import QBOClient
from practice.quickbooks.models import SyncAttempt, SyncLink
from practice.quickbooks.statuses import SyncStatus
from practice.quickbooks.sync import engine
from practice.quickbooks.sync.kinds import customers
from practice.quickbooks.sync.preview import account_sync_preview
from tests.quickbooks.sync_support import accounts, link_of, make_due, qbo_customers, run, set_up


@pytest.fixture
def conn(connection):
    return set_up(connection)


def statuses(connection, accts):
    return {a.name: link_of(connection, a).status for a in accts}


def test_matching_matrix_over_http(firm, conn, sandbox, realm_id):
    sandbox.bulk_insert(realm_id, "Customer", [{"DisplayName": "Harbor Dental Group", "Active": False}])
    accts = accounts(
        firm,
        "Amy's Bird Sanctuary",  # exact
        "  KOOKIES   by kathy ",  # case and spacing
        "Brand New Client",  # no match: created
        "Pyes Cakes",  # near match (punctuation)
        "Rondonuwu Fruit & Vegi",  # near match (&/and)
        "Diego Rodríguez",  # near match (accent)
        "Barnett Design LLC",  # near match (suffix)
        "Books by Bessie",  # a vendor
        "Emily Platt",  # an employee
        "Harbor Dental Group",  # inactive customer
        "Smith: Tax Client",  # refused by QBO
    )
    result = run(conn)
    assert result.ran, result
    s = statuses(conn, accts)
    assert s == {
        "Amy's Bird Sanctuary": "synced",
        "KOOKIES   by kathy": "synced",
        "Brand New Client": "synced",
        "Pyes Cakes": "error",
        "Rondonuwu Fruit & Vegi": "error",
        "Diego Rodríguez": "error",
        "Barnett Design LLC": "error",
        "Books by Bessie": "error",
        "Emily Platt": "error",
        "Harbor Dental Group": "error",
        "Smith: Tax Client": "error",
    }
    by = {a.name: link_of(conn, a) for a in accts}
    assert by["KOOKIES   by kathy"].qbo_name == "Kookies by Kathy"
    assert by["Pyes Cakes"].error_kind == "near_match" and "Pye's Cakes" in by["Pyes Cakes"].error_message
    assert (
        by["Books by Bessie"].error_kind == "vendor_clash" and "vendor" in by["Books by Bessie"].error_message
    )
    assert by["Emily Platt"].error_kind == "employee_clash"
    assert by["Harbor Dental Group"].error_kind == "inactive_match"
    assert "Reactivate and link" in by["Harbor Dental Group"].error_message
    assert "colon" in by["Smith: Tax Client"].error_message
    # Never created for near matches, clashes or refused names.
    for name in ("Pyes Cakes", "Rondonuwu Fruit & Vegi", "Diego Rodríguez", "Barnett Design LLC"):
        assert qbo_customers(conn, name) == []
    assert len(qbo_customers(conn, "Books by Bessie")) == 0
    # Every decision has a history row.
    assert SyncAttempt.objects.filter(link__connection=conn).count() >= len(accts)


def test_new_customer_gets_type_contact_and_address(firm, conn):
    (acct,) = accounts(
        firm,
        "Zeta Analytics",
        kind="company",
        email="Books@Zeta.test",
        phone="555-0100",
        address_line1="1 Main St",
        city="Springfield",
        region="IL",
        postal_code="62701",
        country="USA",
    )
    run(conn)
    link = link_of(conn, acct)
    assert link.status == SyncStatus.SYNCED and link.qbo_id
    (customer,) = qbo_customers(conn, "Zeta Analytics")
    assert customer["Id"] == link.qbo_id
    types = {t["Name"]: t["Id"] for t in QBOClient(conn).query_all("CustomerType")}
    assert customer["CustomerTypeRef"]["value"] == types["Individual"]
    assert customer["PrimaryEmailAddr"]["Address"] == "books@zeta.test"
    assert customer["PrimaryPhone"]["FreeFormNumber"] == "555-0100"
    assert customer["BillAddr"]["City"] == "Springfield"
    assert customer["CompanyName"] == "Zeta Analytics"
    attempt = SyncAttempt.objects.filter(link=link, operation="create").get()
    # The write's own requestid stays on the link; the history row names the batch requestid QBO
    # saw (the batch of this one create), and the answered batch is no longer held by the link.
    item_rid = engine.request_id_for(conn.realm_id, "customer", acct.pk, "create", link.op_seq)
    batch_rid = engine.batch_request_id_for(conn.realm_id, [item_rid])
    assert (link.request_id, link.batch_request_id) == (item_rid, "")
    assert (attempt.outcome, attempt.request_id, attempt.qbo_id) == ("success", batch_rid, link.qbo_id)


def test_inactive_individual_type_leaves_field_empty(firm, conn, sandbox, realm_id):
    # CustomerType is read-only in the API, so the test edits the sandbox's company directly.
    for ctype in sandbox.sandbox.realms[realm_id].data["CustomerType"].values():
        if ctype["Name"] == "Individual":
            ctype["Active"] = False
    accounts(firm, "Plain Customer")
    run(conn)
    (customer,) = qbo_customers(conn, "Plain Customer")
    assert "CustomerTypeRef" not in customer


def test_ask_me_mode_errors_instead_of_creating(firm, connection):
    conn = set_up(connection, unmatched="ask")
    (acct,) = accounts(firm, "Nobody Like This")
    run(conn)
    link = link_of(conn, acct)
    assert link.status == SyncStatus.ERROR
    assert link.error_message.startswith("No QuickBooks customer named “Nobody Like This”")
    assert qbo_customers(conn, "Nobody Like This") == []


def test_eligibility_with_billing_and_archived(firm, connection):
    from practice.billing.services import invoice_create

    conn = set_up(connection, scope="with_activity")
    idle, billed, archived = accounts(firm, "Idle Client", "Billed Client", "Archived Client")
    today = datetime.date.today()
    invoice_create(firm=firm, account=billed, issue_date=today, due_date=today)
    invoice_create(firm=firm, account=archived, issue_date=today, due_date=today)
    account_archive(account=archived)
    run(conn)
    assert not SyncLink.objects.filter(local_id__in=[idle.pk, archived.pk]).exists()
    assert link_of(conn, billed).status == SyncStatus.SYNCED
    assert qbo_customers(conn, "Idle Client") == [] and qbo_customers(conn, "Archived Client") == []
    # "All accounts" takes the idle one too, never the archived one.
    set_up(conn, scope="all")
    run(conn)
    assert link_of(conn, idle).status == SyncStatus.SYNCED
    assert not SyncLink.objects.filter(local_id=archived.pk).exists()


def test_customer_list_read_in_pages_of_1000(firm, conn, sandbox, realm_id):
    sandbox.bulk_insert(
        realm_id, "Customer", [{"DisplayName": f"Bulk Customer {i:05d}"} for i in range(2100)]
    )
    accts = accounts(firm, *(f"Bulk Customer {i:05d}" for i in (5, 1500, 2099)), "Not In QBO")
    sandbox.reset_counters(realm_id)
    before = len(sandbox.requests(realm_id))
    run(conn)
    assert {link_of(conn, a).status for a in accts} == {SyncStatus.SYNCED}
    queries = [
        r
        for r in sandbox.requests(realm_id)[before:]
        if "query" in str(r.get("path", "")).lower() or r.get("operation") == "query"
    ]
    # 3 customer pages (2,129 customers), 1 vendor, 1 employee, 1 customer type: never one per account.
    assert len(queries) <= 7, queries


def test_rename_after_linking_keeps_link_and_does_not_rename(firm, conn):
    (acct,) = accounts(firm, "Cool Cars")
    run(conn)
    link = link_of(conn, acct)
    assert link.status == SyncStatus.SYNCED
    account_update(account=acct, name="Cool Cars Renamed")
    run(conn)
    link.refresh_from_db()
    assert link.status == SyncStatus.SYNCED and link.qbo_name == "Cool Cars"
    (customer,) = qbo_customers(conn, "Cool Cars")
    assert customer["Id"] == link.qbo_id
    assert qbo_customers(conn, "Cool Cars Renamed") == []


def test_fixing_a_refused_name_redecides(firm, conn):
    (acct,) = accounts(firm, "Smith: Tax Client")
    run(conn)
    assert link_of(conn, acct).status == SyncStatus.ERROR
    account_update(account=acct, name="Smith Tax Client")
    run(conn)
    assert link_of(conn, acct).status == SyncStatus.SYNCED
    assert len(qbo_customers(conn, "Smith Tax Client")) == 1


def test_repeated_runs_create_nothing_twice(firm, conn):
    accounts(firm, "Once Only LLC", "Twice Never")
    run(conn)
    run(conn)
    run(conn)
    assert len(qbo_customers(conn, "Once Only LLC")) == 1
    assert len(qbo_customers(conn, "Twice Never")) == 1


def test_two_accounts_with_the_same_new_name_create_one_customer(firm, conn):
    a, b = accounts(firm, "Same Name Co", "same  name co")
    run(conn)
    assert len(qbo_customers(conn, "Same Name Co")) == 1
    assert sorted([link_of(conn, a).status, link_of(conn, b).status]) == ["error", "synced"]


@pytest.mark.parametrize("fault", ["drop", "500", "timeout"])
def test_unknown_outcome_is_replayed_not_duplicated(firm, conn, sandbox, realm_id, settings, fault):
    settings.QBO_TRANSIENT_RETRIES = 0  # let the engine, not the client, do the retry
    settings.QBO_HTTP_TIMEOUT_SECONDS = 1.0
    accts = accounts(firm, "Replay One", "Replay Two")
    extra = {"seconds": 3} if fault == "timeout" else {}
    sandbox.inject_fault(realm_id, fault, count=1, operation="batch", **extra)
    run(conn)
    links = [link_of(conn, a) for a in accts]
    assert {link.status for link in links} == {SyncStatus.SYNCING}
    assert all(link.next_retry_at and link.batch_request_id for link in links)
    rid = links[0].batch_request_id
    assert SyncAttempt.objects.filter(link=links[0], outcome="retry", request_id=rid).exists()
    make_due(conn)
    run(conn)
    for link in links:
        link.refresh_from_db()
        assert link.status == SyncStatus.SYNCED
        assert len(qbo_customers(conn, link.qbo_name)) == 1
    if fault in ("drop", "timeout"):
        # The first request was committed in QBO: the replay got the original answer back.
        assert SyncAttempt.objects.filter(link=links[0], outcome="success", request_id=rid).exists()


def test_transient_failures_back_off_then_become_error(firm, conn, sandbox, realm_id, settings):
    settings.QBO_TRANSIENT_RETRIES = 0
    settings.QBO_MAX_ATTEMPTS = 3
    (acct,) = accounts(firm, "Flaky Co")
    sandbox.inject_fault(realm_id, "503", count=10, operation="batch")
    delays = []
    for _ in range(3):
        start = timezone.now()
        run(conn)
        link = link_of(conn, acct)
        if link.next_retry_at:
            delays.append((link.next_retry_at - start).total_seconds())
        make_due(conn)
    assert link.status == SyncStatus.ERROR and link.error_kind == "unavailable"
    assert len(delays) == 2 and delays[1] > delays[0]  # exponential
    sandbox.clear_faults(realm_id)
    actions.account_sync_retry(firm=firm, account=acct)
    run(conn)
    assert link_of(conn, acct).status == SyncStatus.SYNCED
    assert len(qbo_customers(conn, "Flaky Co")) == 1


def test_rejected_item_does_not_stop_the_batch(firm, conn):
    clash, fine = accounts(firm, "Clash Account", "Fine Account")
    # Ask for a customer named like a vendor: QBO answers 6240 for that item only.
    actions.account_sync_create(firm=firm, account=clash, name="Hicks Hardware")
    run(conn)
    a, b = link_of(conn, clash), link_of(conn, fine)
    assert a.status == SyncStatus.ERROR and a.error_kind == "vendor_clash" and a.error_code == "6240"
    assert b.status == SyncStatus.SYNCED
    attempt = SyncAttempt.objects.filter(link=a, outcome="rejected").get()
    assert attempt.fault_code == "6240" and attempt.fault_detail


def test_reauth_pauses_without_failing_records(firm, conn, sandbox, realm_id):
    accounts(firm, "Paused Co")
    sandbox.inject_fault(realm_id, "revoke", count=1)
    assert run(conn).reason == "reauth"
    conn.refresh_from_db()
    assert conn.status == "needs_reconnect"
    assert not SyncLink.objects.filter(connection=conn, status=SyncStatus.ERROR).exists()
    assert engine.run_realm(conn.pk).reason.startswith("connection")


def test_nothing_runs_before_setup_is_confirmed(firm, connection):
    accounts(firm, "Too Early")
    assert engine.run_realm(connection.pk).reason == "setup not confirmed"
    assert qbo_customers(connection, "Too Early") == []


def test_lease_is_exclusive_until_released_or_expired(conn):
    assert engine.claim_lease(conn.pk, "a")
    assert not engine.claim_lease(conn.pk, "b")
    assert engine.claim_lease(conn.pk, "a")  # re-entrant for its owner
    engine.release_lease(conn.pk, "a")
    assert engine.claim_lease(conn.pk, "b")
    type(conn).objects.filter(pk=conn.pk).update(
        lease_expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    assert engine.claim_lease(conn.pk, "c")
    assert engine.run_realm(conn.pk).reason == "busy"


@pytest.mark.django_db(transaction=True)
def test_two_runners_at_once_create_each_customer_once(firm, realm_id, sandbox):
    from tests.quickbooks.conftest import connect_firm

    conn = set_up(connect_firm(firm, realm_id, sandbox))
    names = [f"Race Client {i}" for i in range(12)]
    accounts(firm, *names)
    results = []

    def worker():
        try:
            results.append(engine.run_realm(conn.pk))
        finally:
            db_connection.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert any(r.ran for r in results)
    run(conn)  # whoever was busy: a later run finds nothing left to do
    for name in names:
        assert len(qbo_customers(conn, name)) == 1


def test_preview_agrees_with_the_first_run(firm, conn, sandbox, realm_id):
    accts = accounts(firm, "Amy's Bird Sanctuary", "Preview New", "Pyes Cakes", "Books by Bessie")
    preview = account_sync_preview(connection=conn)
    assert preview.link_by_name == ["Amy's Bird Sanctuary"]
    assert preview.create == ["Preview New"]
    assert [n for n, _m in preview.need_a_person] == ["Books by Bessie", "Pyes Cakes"]
    assert not SyncLink.objects.exists() and qbo_customers(conn, "Preview New") == []
    run(conn)
    assert [link_of(conn, a).status for a in accts] == ["synced", "synced", "error", "error"]
    assert account_sync_preview(connection=conn).as_counts()["already_linked"] == 2


def test_customer_ref_only_for_synced_accounts(firm, conn):
    synced, errored = accounts(firm, "Cool Cars", "Pyes Cakes")
    run(conn)
    ref = customers.customer_ref(connection=conn, account_id=synced.pk)
    assert ref and ref["name"] == "Cool Cars"
    assert customers.customer_ref(connection=conn, account_id=errored.pk) is None
    actions.account_unsync(firm=firm, account=synced)
    assert customers.customer_ref(connection=conn, account_id=synced.pk) is None


def test_a_person_acting_between_plan_and_send_wins(firm, conn):
    unsynced, linked = accounts(firm, "Race Unsync", "Race Linked")
    ctx = engine.RunContext(connection=conn, client=QBOClient(conn), owner="t", now=timezone.now())
    assert engine.claim_lease(conn.pk, "t")
    ops = customers.plan_customers(ctx)
    assert {op.link.local_id for op in ops} == {unsynced.pk, linked.pk}
    actions.account_unsync(firm=firm, account=unsynced)
    cid = qbo_customers(conn, "Cool Cars")[0]["Id"]
    actions.account_sync_link(firm=firm, account=linked, customer_id=cid)
    assert engine.dispatch(ctx, ops) == 0
    engine.release_lease(conn.pk, "t")
    assert qbo_customers(conn, "Race Unsync") == [] and qbo_customers(conn, "Race Linked") == []
    assert link_of(conn, unsynced).status == SyncStatus.SKIPPED
    assert link_of(conn, linked).qbo_id == cid


def test_replay_after_qbo_forgot_the_requestid_links_instead_of_duplicating(
    firm, conn, sandbox, realm_id, settings
):
    settings.QBO_TRANSIENT_RETRIES = 0
    sandbox.set_config(requestid_retention_seconds=0.0)  # QBO's retention window is undocumented
    (acct,) = accounts(firm, "Forgotten Request Co")
    sandbox.inject_fault(realm_id, "drop", count=1, operation="batch")
    run(conn)
    assert link_of(conn, acct).status == SyncStatus.SYNCING
    make_due(conn)
    run(conn)  # the replay is executed again: 6240, and the engine finds its own customer
    link = link_of(conn, acct)
    assert link.status == SyncStatus.SYNCED
    (customer,) = qbo_customers(conn, "Forgotten Request Co")
    assert customer["Id"] == link.qbo_id
    assert SyncAttempt.objects.filter(link=link, fault_code="6240", outcome="success").exists()


def test_throttled_batch_waits_at_least_a_minute(firm, conn, sandbox, realm_id, settings):
    settings.QBO_RATE_LIMIT_RETRIES = 0  # the client gives up at once; the engine schedules
    (acct,) = accounts(firm, "Throttled Co")
    sandbox.inject_fault(realm_id, "429", count=1, operation="batch")
    start = timezone.now()
    run(conn)
    link = link_of(conn, acct)
    assert link.status == SyncStatus.SYNCING
    assert (link.next_retry_at - start).total_seconds() >= 60
    assert qbo_customers(conn, "Throttled Co") == []


def test_a_run_with_nothing_to_do_costs_the_same_for_10_or_200_accounts(firm, conn):
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    from practice.clients.models import ClientAccount

    def idle_run_queries() -> int:
        with CaptureQueriesContext(db) as ctx:
            assert run(conn).ran
        return len(ctx.captured_queries)

    ClientAccount.objects.bulk_create([ClientAccount(firm=firm, name=f"Idle {i}") for i in range(10)])
    run(conn)
    small = idle_run_queries()
    ClientAccount.objects.bulk_create([ClientAccount(firm=firm, name=f"Idle {i}") for i in range(10, 200)])
    run(conn)
    assert idle_run_queries() == small


def test_archived_accounts_are_not_pushed_even_when_asked(firm, conn):
    waiting, archived = accounts(firm, "Archived While Waiting", "Archived First")
    actions.account_sync_retry(firm=firm, account=waiting)  # marked Syncing
    account_archive(account=waiting)
    account_archive(account=archived)
    with pytest.raises(actions.SyncActionError):
        actions.account_sync_retry(firm=firm, account=archived)
    run(conn)
    assert link_of(conn, waiting).status == SyncStatus.NOT_SYNCED
    assert qbo_customers(conn, "Archived While Waiting") == []


@pytest.mark.parametrize("crash_point", ["before_send", "after_qbo_answered"])
def test_worker_crash_is_recovered_by_replay(firm, conn, monkeypatch, crash_point):
    """A worker killed between storing the requestid and recording QBO's answer: the next run
    re-sends the same batch, QBO replays, and each customer exists once."""
    accts = accounts(firm, "Crash One", "Crash Two")

    class Killed(BaseException):  # like SIGKILL: nothing in the engine catches it
        pass

    target = "_send" if crash_point == "before_send" else "_record_outcomes"
    original = getattr(engine, target)

    def crash(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(engine, target, crash)
    with pytest.raises(Killed):
        run(conn)
    monkeypatch.setattr(engine, target, original)
    links = [link_of(conn, a) for a in accts]
    assert all(link.batch_request_id and link.status == SyncStatus.SYNCING for link in links)
    assert (qbo_customers(conn, "Crash One") != []) == (crash_point == "after_qbo_answered")
    run(conn)
    for a in accts:
        link = link_of(conn, a)
        assert link.status == SyncStatus.SYNCED and not link.batch_request_id
        assert [c["Id"] for c in qbo_customers(conn, a.name)] == [link.qbo_id]


def test_messages_are_rebuilt_in_the_readers_language(firm, conn, sandbox, realm_id):
    from django.utils import translation

    from practice.quickbooks.sync.messages import error_text

    sandbox.bulk_insert(realm_id, "Customer", [{"DisplayName": "Harbor Dental Group", "Active": False}])
    names = ["Pyes Cakes", "Books by Bessie", "Emily Platt", "Harbor Dental Group", "Smith: Tax Client"]
    accts = accounts(firm, *names)
    set_up(conn, unmatched="ask")
    (nobody,) = accounts(firm, "Nobody Named So")
    run(conn)
    for acct in [*accts, nobody]:
        link = link_of(conn, acct)
        # In English the rebuilt message is exactly what the engine stored.
        with translation.override("en"):
            assert error_text(link.error_kind, name=acct.name, candidates=link.candidates, stored="") == (
                link.error_message
            ), link.error_kind
    with translation.override("en"):
        english = error_text("vendor_clash", name="X", candidates=[{"name": "X"}], stored="")
    with translation.override("es"):
        spanish = error_text("vendor_clash", name="X", candidates=[{"name": "X"}], stored="")
    # The same stored error reads in Spanish for a Spanish reader (the catalogue has it).
    assert spanish != english and "«X»" in spanish and "proveedor" in spanish.lower()


@pytest.mark.parametrize("in_qbo", [False, True], ids=["created", "linked_by_name"])
def test_a_run_costs_a_few_queries_per_batch_of_30_not_per_account(firm, conn, sandbox, realm_id, in_qbo):
    """Planning and recording are bulk: SQL statements grow with batches of 30, not accounts
    (before: ~7 per account: a get_or_create each, one transaction per outcome)."""
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    from practice.clients.models import ClientAccount

    def queries_for(n: int, prefix: str) -> int:
        names = [f"{prefix} {i:03d}" for i in range(n)]
        if in_qbo:
            sandbox.bulk_insert(realm_id, "Customer", [{"DisplayName": name} for name in names])
        ClientAccount.objects.bulk_create([ClientAccount(firm=firm, name=name) for name in names])
        with CaptureQueriesContext(db) as ctx:
            assert run(conn).ran
        ids = ClientAccount.objects.filter(name__in=names).values("pk")
        links = SyncLink.objects.filter(connection=conn, local_id__in=ids)
        assert [link.status for link in links] == [SyncStatus.SYNCED] * n
        assert SyncAttempt.objects.filter(link__in=links, outcome="success").count() == n
        return len(ctx.captured_queries)

    small = queries_for(30, "Guard Small")
    large = queries_for(90, "Guard Large")
    print("queries", small, large)
    # 60 more accounts = 2 more batches of 30: at most a small constant each.
    assert large - small <= 2 * 12, (small, large)


def test_a_person_acting_while_the_plan_decides_wins(firm, conn, monkeypatch):
    """Decisions without a write are saved together at the end of the plan; a link a person
    changed meanwhile (here: unsynced) is left as the person left it."""
    (acct,) = accounts(firm, "Amy's Bird Sanctuary")  # matches by name: linked without a write
    real = engine.save_decisions

    def person_first(ctx, decisions):
        actions.account_unsync(firm=firm, account=acct)
        return real(ctx, decisions)

    monkeypatch.setattr(engine, "save_decisions", person_first)
    assert run(conn).ran
    link = link_of(conn, acct)
    assert link.status == SyncStatus.SKIPPED and not link.qbo_id
    assert not SyncAttempt.objects.filter(link=link, operation="match").exists()

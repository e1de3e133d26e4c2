"""The engine against a misbehaving QBO and a dying worker (issue 8 items 2, 4, 10, 11), over HTTP.

- Planning failures (QBO unreadable while a run decides) defer the run: records show Syncing
  with their next attempt, a run is scheduled, the sweep picks the realm up, nothing is lost.
- The realm lease holds: renewed during long waits, checked where outcomes are recorded, safe
  from stale `Connection.save()`; a runner that died holding it is resumed at its expiry.
- Company-level faults (6190, 3100/3200 inside an answer) and refused app keys
  (`invalid_client`) pause the connection with a banner naming the cause, and the same writes
  go through once QuickBooks answers normally again.
"""

from __future__ import annotations

import datetime
import threading
import time

import pytest
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from practice.quickbooks.connection.client import QBOClient
from practice.quickbooks.models import Connection, RealmSyncState, SyncAttempt, SyncLink
from practice.quickbooks.statuses import SyncStatus
from practice.quickbooks.sync import engine, tasks
from tests.quickbooks.sync_support import accounts, link_of, qbo_customers, run, set_up

SYNC_TASK = "practice.quickbooks.sync.tasks.sync_realm"


@pytest.fixture
def conn(connection, settings):
    settings.QBO_TRANSIENT_RETRIES = 0  # the engine, not the client, retries here
    return set_up(connection)


def queued_runs() -> list[DBTaskResult]:
    return list(DBTaskResult.objects.filter(task_path=SYNC_TASK, status="READY").order_by("run_after"))


def state_of(conn) -> RealmSyncState:
    return RealmSyncState.objects.get(connection=conn)


def requests_sent(sandbox, realm_id) -> int:
    return int(sandbox.counters(realm_id).get("requests", 0))


# --------------------------------------------------------------------------------------------
# Item 2: planning failures are retried, never silent


@pytest.mark.parametrize("fault", ["503", "timeout"])
def test_a_planning_failure_defers_the_run_and_shows_syncing(
    firm, conn, sandbox, realm_id, settings, fault, django_capture_on_commit_callbacks
):
    settings.QBO_HTTP_TIMEOUT_SECONDS = 1.0
    accts = accounts(firm, "Amy's Bird Sanctuary", "Deferred New Co", "Deferred Other Co")
    DBTaskResult.objects.all().delete()
    extra = {"seconds": 2} if fault == "timeout" else {}
    sandbox.inject_fault(realm_id, fault, count=1, operation="query", **extra)

    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        summary = tasks.run_now(conn.pk)

    assert summary["reason"] == "deferred"
    state = state_of(conn)
    assert state.run_failures == 1 and state.run_retry_at is not None and state.run_retry_at > before
    assert state.run_error
    links = [link_of(conn, a) for a in accts]
    # Every account the run was deciding shows Syncing with its next attempt; none is an Error.
    assert {link.status for link in links} == {SyncStatus.SYNCING}
    assert {link.next_retry_at for link in links} == {state.run_retry_at}
    assert not SyncAttempt.objects.filter(link__connection=conn).exists()
    assert qbo_customers(conn, "Deferred New Co") == []
    # ...and the next run is scheduled for then, by itself.
    (delayed,) = queued_runs()
    assert delayed.run_after == state.run_retry_at

    # Not before its back-off: a run now changes nothing and sends nothing.
    sent = requests_sent(sandbox, realm_id)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.run_now(conn.pk)
    assert requests_sent(sandbox, realm_id) == sent
    assert {link_of(conn, a).status for a in accts} == {SyncStatus.SYNCING}

    # Due: the run goes through and the back-off is forgotten.
    RealmSyncState.objects.filter(connection=conn).update(run_retry_at=timezone.now())
    SyncLink.objects.filter(connection=conn).update(next_retry_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.run_now(conn.pk)["reason"] == ""
    assert {link_of(conn, a).status for a in accts} == {SyncStatus.SYNCED}
    assert len(qbo_customers(conn, "Deferred New Co")) == 1
    assert len(qbo_customers(conn, "Deferred Other Co")) == 1
    state = state_of(conn)
    assert (state.run_failures, state.run_retry_at, state.run_error) == (0, None, "")


def test_a_throttled_planning_read_waits_at_least_a_minute(firm, conn, sandbox, realm_id, settings):
    settings.QBO_RATE_LIMIT_RETRIES = 0
    settings.QBO_RATE_LIMIT_WAIT_SECONDS = 60
    settings.QBO_RETRY_BASE_SECONDS = 1
    (acct,) = accounts(firm, "Throttled Planning Co")
    sandbox.inject_fault(realm_id, "429", count=1, operation="query")
    start = timezone.now()
    assert run(conn).reason == "deferred"
    wait = (state_of(conn).run_retry_at - start).total_seconds()
    assert 60 <= wait <= 60 * 1.25 + 1
    assert link_of(conn, acct).status == SyncStatus.SYNCING


def test_repeated_planning_failures_back_off_and_never_turn_into_errors(
    firm, conn, sandbox, realm_id, settings
):
    settings.QBO_MAX_ATTEMPTS = 2  # a record's own retries would give up after 2; the realm's don't
    (acct,) = accounts(firm, "Long Outage Co")
    sandbox.inject_fault(realm_id, "503", count=5, operation="query")
    waits = []
    for _ in range(5):
        start = timezone.now()
        assert run(conn).reason == "deferred"
        waits.append((state_of(conn).run_retry_at - start).total_seconds())
        RealmSyncState.objects.filter(connection=conn).update(run_retry_at=timezone.now())
        SyncLink.objects.filter(connection=conn).update(next_retry_at=timezone.now())
    assert state_of(conn).run_failures == 5
    assert waits[4] > waits[2] > waits[0]  # exponential
    assert link_of(conn, acct).status == SyncStatus.SYNCING
    assert run(conn).reason == ""
    assert link_of(conn, acct).status == SyncStatus.SYNCED


def test_the_sweep_picks_up_deferred_and_aborted_runs(
    firm, conn, monkeypatch, django_capture_on_commit_callbacks
):
    accounts(firm, "Aborted Run Co")
    DBTaskResult.objects.all().delete()

    def broken_plan(ctx):
        raise RuntimeError("a bug in planning")

    (kind,) = [k for k in engine.kinds() if k.name == "customer"]
    monkeypatch.setattr(kind, "plan", broken_plan)
    with pytest.raises(RuntimeError), django_capture_on_commit_callbacks(execute=True):
        tasks.run_now(conn.pk)
    monkeypatch.undo()
    state = state_of(conn)
    assert state.run_failures == 1 and "RuntimeError" in state.run_error
    assert state.last_run_summary["reason"] == "aborted"
    # The lease was released by the engine (an exception, not a crash).
    assert Connection.objects.filter(pk=conn.pk, lease_owner="").exists()

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.sweep_now() == 0  # not due yet
    RealmSyncState.objects.filter(connection=conn).update(run_retry_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.sweep_now() == 1
    assert len(queued_runs()) == 1


def _work_the_queue(conn, capture, *, until: float, sweep_every: float = 0.5, stop_when=None) -> None:
    """What `run_worker` does, in this process: run due sync tasks, sweep now and then."""
    last_sweep = 0.0
    while time.monotonic() < until:
        if stop_when is not None and stop_when():
            return
        if time.monotonic() - last_sweep >= sweep_every:
            with capture(execute=True):
                tasks.sweep_now()
            last_sweep = time.monotonic()
        due = DBTaskResult.objects.ready().filter(task_path=SYNC_TASK)
        task = due.order_by("enqueued_at").first()
        if task is None:
            if not SyncLink.objects.filter(connection=conn, status=SyncStatus.SYNCING).exists() and (
                state_of(conn).run_retry_at is None
            ):
                return
            time.sleep(0.05)
            continue
        task.delete()
        with capture(execute=True):
            tasks.run_now(conn.pk)


def test_a_minute_of_503s_ends_with_every_account_in_its_right_status(
    firm, conn, sandbox, realm_id, settings, django_capture_on_commit_callbacks
):
    """QBO answers 503 to everything for a while (three deferred runs, time-scaled): nobody touches
    anything, and every account ends where it belongs, each customer once."""
    settings.QBO_RETRY_BASE_SECONDS = 0.2
    settings.QBO_RETRY_MAX_SECONDS = 0.8
    names = ["Amy's Bird Sanctuary", "Outage New One", "Outage New Two", "Pyes Cakes"]
    accts = accounts(firm, *names)
    DBTaskResult.objects.all().delete()
    sandbox.inject_fault(realm_id, "503", count=100_000)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.enqueue_sync(conn.pk)
    # The outage lasts while the worker defers the run three times by itself (a minute of
    # back-offs, time-scaled); counted, not timed, so a loaded machine cannot shorten it.
    try:
        _work_the_queue(
            conn,
            django_capture_on_commit_callbacks,
            until=time.monotonic() + 120,
            stop_when=lambda: state_of(conn).run_failures >= 3,
        )
        # Mid-outage: waiting, not failed.
        assert {link_of(conn, a).status for a in accts} == {SyncStatus.SYNCING}
        assert state_of(conn).run_failures >= 2  # retried by itself, backing off
    finally:
        sandbox.clear_faults(realm_id)
    _work_the_queue(conn, django_capture_on_commit_callbacks, until=time.monotonic() + 120)
    statuses = {a.name: link_of(conn, a).status for a in accts}
    assert statuses == {
        "Amy's Bird Sanctuary": SyncStatus.SYNCED,
        "Outage New One": SyncStatus.SYNCED,
        "Outage New Two": SyncStatus.SYNCED,
        "Pyes Cakes": SyncStatus.ERROR,  # a near match asks a person, as without the outage
    }
    assert link_of(conn, accts[3]).error_kind == "near_match"
    for name in ("Amy's Bird Sanctuary", "Outage New One", "Outage New Two"):
        assert len(qbo_customers(conn, name)) == 1
    assert state_of(conn).run_failures == 0


def test_the_account_list_shows_the_next_attempt_of_a_deferred_run(firm, conn, sandbox, realm_id, client_as):
    accounts(firm, "Waiting Visibly Co")
    sandbox.inject_fault(realm_id, "503", count=1, operation="query")
    run(conn)
    page = client_as("owner").get(reverse("clients:account_list")).content.decode()
    assert 'data-status="syncing"' in page and "Next attempt at" in page


# --------------------------------------------------------------------------------------------
# Item 4: a lease that holds


def test_a_runner_that_lost_its_lease_records_nothing_and_stops(firm, conn, monkeypatch):
    accts = accounts(firm, "Lease Lost One", "Lease Lost Two")
    real_batch = QBOClient.batch

    def another_runner_takes_over(self, ops, *, request_id):
        # Our lease expired during a long wait and another runner claimed the realm; QBO
        # still receives and commits our batch.
        Connection.objects.filter(pk=conn.pk).update(
            lease_owner="the-other-runner", lease_expires_at=timezone.now() + datetime.timedelta(seconds=90)
        )
        self.heartbeat = None  # the client's own check would stop it before sending
        return real_batch(self, ops, request_id=request_id)

    monkeypatch.setattr(QBOClient, "batch", another_runner_takes_over)
    assert run(conn).reason == "lease lost"
    monkeypatch.undo()
    links = [link_of(conn, a) for a in accts]
    # Nothing recorded: still in flight with their requestid, no history row, the other
    # runner's lease untouched.
    assert all(
        link.status == SyncStatus.SYNCING and link.batch_request_id and not link.qbo_id for link in links
    )
    assert not SyncAttempt.objects.filter(link__connection=conn).exists()
    assert Connection.objects.get(pk=conn.pk).lease_owner == "the-other-runner"
    assert len(qbo_customers(conn, "Lease Lost One")) == 1  # QBO did commit it

    # The other runner is gone (its lease ran out): the next run replays the same batch.
    rid = links[0].batch_request_id
    Connection.objects.filter(pk=conn.pk).update(
        lease_expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    assert run(conn).reason == ""
    for a in accts:
        link = link_of(conn, a)
        assert link.status == SyncStatus.SYNCED
        assert [c["Id"] for c in qbo_customers(conn, a.name)] == [link.qbo_id]
    assert SyncAttempt.objects.filter(link=links[0], outcome="success", request_id=rid).exists()


def test_the_client_stops_before_sending_once_the_lease_is_gone(firm, conn, sandbox, realm_id, monkeypatch):
    accounts(firm, "Never Sent Co")
    (kind,) = [k for k in engine.kinds() if k.name == "customer"]
    real_plan = kind.plan

    def plan_then_lose_the_lease(ctx):
        ops = real_plan(ctx)
        Connection.objects.filter(pk=conn.pk).update(lease_owner="the-other-runner")
        return ops

    monkeypatch.setattr(kind, "plan", plan_then_lose_the_lease)
    assert run(conn).reason == "lease lost"
    assert [r for r in sandbox.requests(realm_id) if r["operation"] == "batch"] == []
    assert qbo_customers(conn, "Never Sent Co") == []


@pytest.mark.django_db(transaction=True)
def test_the_lease_is_renewed_through_a_long_throttle_wait(firm, realm_id, sandbox, settings):
    """A 429 makes the client wait longer than the whole lease; the lease is renewed while it
    waits, so no other runner can claim the realm meanwhile."""
    from tests.quickbooks.conftest import connect_firm

    conn = set_up(connect_firm(firm, realm_id, sandbox))
    settings.QBO_LEASE_SECONDS = 1.5
    settings.QBO_BACKOFF_SCALE = 1.0
    settings.QBO_RATE_LIMIT_WAIT_SECONDS = 3.0
    settings.QBO_RATE_LIMIT_RETRIES = 1
    accounts(firm, "Patient Co")
    sandbox.inject_fault(realm_id, "429", count=1, operation="query")
    results: list[engine.RunResult] = []

    def patient_runner() -> None:
        from django.db import connection as db_connection

        try:
            results.append(engine.run_realm(conn.pk, owner="patient"))
        finally:
            db_connection.close()

    runner = threading.Thread(target=patient_runner)
    runner.start()
    try:
        time.sleep(2.5)  # well past the lease length, inside the 3 s wait
        assert runner.is_alive()
        assert not engine.claim_lease(conn.pk, "intruder")
        held = Connection.objects.get(pk=conn.pk)
        assert held.lease_owner == "patient" and held.lease_expires_at > timezone.now()
    finally:
        runner.join(30)
    assert results and results[0].reason == "", results
    assert len(qbo_customers(conn, "Patient Co")) == 1


def test_a_stale_connection_save_does_not_undo_the_lease_or_the_pause(conn):
    stale = Connection.objects.get(pk=conn.pk)  # loaded before the run claimed the realm
    assert engine.claim_lease(conn.pk, "runner")
    Connection.objects.filter(pk=conn.pk).update(paused_code="company_status", paused_message="6190")
    stale.account_scope = "with_activity"
    stale.save()  # e.g. the owner saving the setup form
    fresh = Connection.objects.get(pk=conn.pk)
    assert fresh.account_scope == "with_activity"
    assert fresh.lease_owner == "runner" and fresh.lease_expires_at is not None
    assert fresh.paused_code == "company_status"
    assert not engine.claim_lease(conn.pk, "second-runner")


def test_a_busy_realm_is_looked_at_again_when_the_lease_runs_out(
    firm, conn, django_capture_on_commit_callbacks
):
    accounts(firm, "Busy Realm Co")
    DBTaskResult.objects.all().delete()
    expires = timezone.now() + datetime.timedelta(seconds=60)
    Connection.objects.filter(pk=conn.pk).update(lease_owner="long-runner", lease_expires_at=expires)
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            assert tasks.run_now(conn.pk)["reason"] == "busy"
    # One delayed run, just after the holder's lease expires: not a poll every few seconds.
    (delayed,) = queued_runs()
    assert expires < delayed.run_after <= expires + datetime.timedelta(seconds=2)


def test_the_sweep_resumes_a_realm_whose_runner_died_holding_the_lease(
    firm, conn, django_capture_on_commit_callbacks
):
    accounts(firm, "Orphaned Lease Co")
    DBTaskResult.objects.all().delete()
    # A runner killed with SIGKILL: its `finally` never released the lease.
    expires = timezone.now() + datetime.timedelta(seconds=30)
    Connection.objects.filter(pk=conn.pk).update(lease_owner="killed-runner", lease_expires_at=expires)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.sweep_now()
    (delayed,) = queued_runs()
    assert expires < delayed.run_after <= expires + datetime.timedelta(seconds=2)  # at its expiry

    # Expired: the sweep enqueues a run now, which claims the realm and finishes the work.
    DBTaskResult.objects.all().delete()
    RealmSyncState.objects.filter(connection=conn).update(retry_run_at=None)
    Connection.objects.filter(pk=conn.pk).update(
        lease_expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.sweep_now() == 1
    assert DBTaskResult.objects.ready().filter(task_path=SYNC_TASK).count() == 1  # due now
    assert tasks.run_now(conn.pk)["reason"] == ""
    assert SyncLink.objects.get(connection=conn).status == SyncStatus.SYNCED
    assert Connection.objects.get(pk=conn.pk).lease_owner == ""


# --------------------------------------------------------------------------------------------
# Items 10 and 11: company-level faults pause the connection, not the records


def _banner(client_as) -> str:
    return client_as("owner").get(reverse("clients:account_list")).content.decode()


@pytest.mark.parametrize(
    ("code", "reason", "banner_words"),
    [
        ("6190", "company_status", "subscription has ended or has a billing problem"),
        ("3100", "app_refused", "access to the company, so pushes to QuickBooks are paused"),
    ],
)
def test_a_company_fault_in_a_batch_pauses_the_connection_and_resumes_the_same_writes(
    firm, conn, sandbox, realm_id, client_as, code, reason, banner_words
):
    accts = accounts(firm, *[f"Paused Batch {i}" for i in range(3)])
    sandbox.inject_fault(realm_id, "fault_200", count=1, operation="batch", code=code)
    result = run(conn)
    assert result.reason == "paused" and result.retry_at is not None
    paused = Connection.objects.get(pk=conn.pk)
    assert paused.status == "connected" and paused.paused_code == reason and code in paused.paused_message
    links = [link_of(conn, a) for a in accts]
    # The records are not at fault: Syncing, still in flight with their requestid, no Error.
    assert {link.status for link in links} == {SyncStatus.SYNCING}
    rid = links[0].batch_request_id
    assert rid and {link.batch_request_id for link in links} == {rid}
    assert not SyncLink.objects.filter(connection=conn, status=SyncStatus.ERROR).exists()
    assert not SyncAttempt.objects.filter(link__connection=conn, outcome="rejected").exists()
    page = _banner(client_as)
    assert 'id="qbo-paused-banner"' in page and banner_words in page and code in page

    # Until the next probe is due, a run sends nothing.
    sent = requests_sent(sandbox, realm_id)
    assert run(conn).reason == "paused"
    assert requests_sent(sandbox, realm_id) == sent

    # The fault has cleared: the probe passes, the same batch goes through, each customer once.
    Connection.objects.filter(pk=conn.pk).update(pause_retry_at=timezone.now())
    assert run(conn).reason == ""
    for a in accts:
        link = link_of(conn, a)
        assert link.status == SyncStatus.SYNCED
        assert [c["Id"] for c in qbo_customers(conn, a.name)] == [link.qbo_id]
        assert SyncAttempt.objects.filter(link=link, outcome="success", request_id=rid).exists()
    resumed = Connection.objects.get(pk=conn.pk)
    assert (resumed.paused_code, resumed.pause_retry_at, resumed.pause_attempts) == ("", None, 0)
    assert 'id="qbo-paused-banner"' not in _banner(client_as)


def test_a_company_fault_while_planning_pauses_and_the_probe_backs_off(firm, conn, sandbox, realm_id):
    (acct,) = accounts(firm, "Lapsed Subscription Co")
    sandbox.inject_fault(realm_id, "fault_200", count=2)  # the planning read, then the first probe
    start = timezone.now()
    assert run(conn).reason == "paused"
    first = Connection.objects.get(pk=conn.pk)
    assert first.pause_attempts == 1 and first.paused_code == "company_status"
    Connection.objects.filter(pk=conn.pk).update(pause_retry_at=timezone.now())
    assert run(conn).reason == "paused"  # the probe met the fault again
    second = Connection.objects.get(pk=conn.pk)
    assert second.pause_attempts == 2 and second.paused_at == first.paused_at
    assert (second.pause_retry_at - timezone.now()) > (first.pause_retry_at - start) * 0.9
    assert link_of(conn, acct).status != SyncStatus.ERROR
    Connection.objects.filter(pk=conn.pk).update(pause_retry_at=timezone.now())
    assert run(conn).reason == ""
    assert link_of(conn, acct).status == SyncStatus.SYNCED
    assert len(qbo_customers(conn, "Lapsed Subscription Co")) == 1


def test_refused_app_keys_pause_the_connection_instead_of_failing(
    firm, conn, sandbox, realm_id, settings, client_as
):
    (acct,) = accounts(firm, "Rotated Secret Co")
    settings.QBO_CLIENT_SECRET = "a-rotated-secret-nobody-told-us-about"
    stored = Connection.objects.get(pk=conn.pk)
    Connection.objects.filter(pk=conn.pk).update(access_token_expires_at=timezone.now())  # must refresh
    sent = requests_sent(sandbox, realm_id)
    result = run(conn)
    assert result.reason == "paused"
    paused = Connection.objects.get(pk=conn.pk)
    # Not "needs reconnect": the owner's sign-in is fine, the server's keys are not.
    assert paused.status == "connected" and paused.paused_code == "app_keys"
    assert paused.refresh_token_enc == stored.refresh_token_enc and paused.refresh_lock_owner == ""
    assert requests_sent(sandbox, realm_id) == sent  # no API call without a token
    assert link_of(conn, acct).status != SyncStatus.ERROR
    page = _banner(client_as)
    assert 'data-reason="app_keys"' in page and "keys, so pushes to QuickBooks are paused" in page
    assert "QBO_CLIENT_SECRET" in page
    # Until the probe is due, nothing is tried again (no refresh every few seconds).
    assert run(conn).reason == "paused"

    settings.QBO_CLIENT_SECRET = "practice-tests-secret"  # fixed by whoever runs the server
    Connection.objects.filter(pk=conn.pk).update(pause_retry_at=timezone.now())
    assert run(conn).reason == ""
    assert link_of(conn, acct).status == SyncStatus.SYNCED
    assert len(qbo_customers(conn, "Rotated Secret Co")) == 1
    assert Connection.objects.get(pk=conn.pk).paused_code == ""


def test_a_paused_realm_is_probed_on_schedule_by_the_sweep(
    firm, conn, sandbox, realm_id, django_capture_on_commit_callbacks
):
    accounts(firm, "Probed Co")
    DBTaskResult.objects.all().delete()
    sandbox.inject_fault(realm_id, "fault_200", count=1, operation="batch")
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.run_now(conn.pk)["reason"] == "paused"
    probe_at = Connection.objects.get(pk=conn.pk).pause_retry_at
    (delayed,) = queued_runs()
    assert delayed.run_after == probe_at
    Connection.objects.filter(pk=conn.pk).update(pause_retry_at=timezone.now())
    DBTaskResult.objects.all().delete()
    RealmSyncState.objects.filter(connection=conn).update(retry_run_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.sweep_now() == 1


# --------------------------------------------------------------------------------------------
# Item 4: a real worker process killed with SIGKILL in the middle of a batch


def _shared_rows(shared, sql: str) -> list[tuple]:
    """Rows of the database the worker subprocesses use (a file copy on SQLite)."""
    import sqlite3

    from django.db import connection as db

    if shared.sqlite_path is not None:
        with sqlite3.connect(shared.sqlite_path, timeout=20) as file_db:
            return list(file_db.execute(sql).fetchall())
    with db.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_is_resumed_by_the_next_one_without_duplicates(
    firm, realm_id, sandbox, tmp_path
):
    """SIGKILL, not an exception: the dying runner's `finally` never runs, so its lease stays
    taken and its batch in flight while QBO commits it. The next worker resumes the realm when
    the lease expires, replays the batch with the same requestid, and every account ends up
    linked to exactly one customer."""
    import collections
    import os
    import signal
    import subprocess

    from django.conf import settings as django_settings

    from tests.common.shared_db import MANAGE, SharedDatabase
    from tests.quickbooks.conftest import TEST_CLIENT_ID, TEST_CLIENT_SECRET, connect_firm

    lease = 4.0
    conn = set_up(connect_firm(firm, realm_id, sandbox))
    names = [f"Killed Worker Client {i:02d}" for i in range(40)]  # two batches: 30 + 10
    accounts(firm, *names)
    assert DBTaskResult.objects.filter(task_path=SYNC_TASK, status="READY").count() == 1  # on commit
    shared = SharedDatabase(tmp_path)
    shared.env.update(
        DJANGO_SETTINGS_MODULE="tests.quickbooks.worker_settings",
        QBO_ENVIRONMENT="sandbox-local",
        QBO_SANDBOX_URL=sandbox.url,
        QBO_CLIENT_ID=TEST_CLIENT_ID,
        QBO_CLIENT_SECRET=TEST_CLIENT_SECRET,
        QBO_LEASE_SECONDS=str(lease),
        QBO_RETRY_BASE_SECONDS="0.5",
        QBO_RETRY_MAX_SECONDS="2",
        QBO_HTTP_TIMEOUT_SECONDS="10",
        LOG_LEVEL="WARNING",
    )
    shared.publish()
    sandbox.set_config(latency_seconds=1.0)  # every call takes a second: time to kill mid-batch
    command = [*MANAGE, "run_worker", "--no-startup-delay", "--interval", "0.1", "--reap-every", "0"]

    def start_worker() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*command, "--sweep-every", "1"],
            env=shared.env,
            cwd=django_settings.BASE_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    in_flight_sql = "SELECT batch_request_id FROM quickbooks_synclink WHERE batch_request_id <> ''"
    worker = start_worker()
    try:
        deadline = time.monotonic() + 60
        while not _shared_rows(shared, in_flight_sql):
            assert worker.poll() is None, worker.stdout.read() if worker.stdout else ""
            assert time.monotonic() < deadline, "the worker never sent a batch"
            time.sleep(0.05)
        time.sleep(0.3)  # the batch is on the wire, inside QBO's second
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=5)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    killed_at = time.monotonic()
    (rid,) = {row[0] for row in _shared_rows(shared, in_flight_sql)}
    ((lease_owner,),) = _shared_rows(shared, "SELECT lease_owner FROM quickbooks_connection")
    assert lease_owner  # a real crash releases nothing

    # QBO finishes the batch the dead worker sent: committed, but nobody heard the answer.
    deadline = time.monotonic() + 10
    while not [r for r in sandbox.requests(realm_id) if r["operation"] == "batch" and r["status"] == 200]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    sandbox.set_config(latency_seconds=0.0)

    worker = start_worker()
    try:
        deadline = time.monotonic() + 60
        open_sql = "SELECT COUNT(*) FROM quickbooks_synclink WHERE status <> 'synced'"
        while (
            _shared_rows(shared, open_sql)[0][0]
            or len(_shared_rows(shared, "SELECT id FROM quickbooks_synclink")) < 40
        ):
            assert worker.poll() is None, worker.stdout.read() if worker.stdout else ""
            assert time.monotonic() < deadline, "the realm was not resumed"
            time.sleep(0.1)
        resumed_after = time.monotonic() - killed_at
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    # Resumed once the dead runner's lease ran out (plus the worker's start), not minutes later.
    assert resumed_after < lease + 20, resumed_after

    customers = [
        c["DisplayName"]
        for c in QBOClient(conn).query_all("Customer", "Active IN (true, false)")
        if c["DisplayName"].startswith("Killed Worker Client")
    ]
    assert collections.Counter(customers) == collections.Counter(names)  # each exactly once
    linked = _shared_rows(
        shared, "SELECT COUNT(DISTINCT qbo_id) FROM quickbooks_synclink WHERE status = 'synced'"
    )
    assert linked == [(40,)]
    # The killed batch was replayed with its requestid, and QBO answered with the original.
    replayed = _shared_rows(
        shared,
        f"SELECT COUNT(*) FROM quickbooks_syncattempt WHERE outcome = 'success' AND request_id = '{rid}'",
    )
    assert replayed == [(30,)]
    assert [r for r in sandbox.requests(realm_id) if r["requestid"] == rid and r["replayed"]]
    ((owner_after,),) = _shared_rows(shared, "SELECT lease_owner FROM quickbooks_connection")
    assert owner_after == ""


def test_reconnecting_a_paused_connection_probes_on_the_next_run(firm, conn, sandbox, realm_id):
    from tests.quickbooks.conftest import connect_firm

    (acct,) = accounts(firm, "Reconsented Co")
    sandbox.inject_fault(realm_id, "fault_200", count=1, operation="batch", code="3100")
    assert run(conn).reason == "paused"
    assert Connection.objects.get(pk=conn.pk).pause_retry_at > timezone.now()
    connect_firm(firm, realm_id, sandbox)  # the owner goes through the sign-in again
    assert Connection.objects.get(pk=conn.pk).pause_retry_at <= timezone.now()
    assert run(conn).reason == ""
    assert link_of(conn, acct).status == SyncStatus.SYNCED
    assert Connection.objects.get(pk=conn.pk).paused_code == ""


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("6190", None, "company_status"),  # a batch item (items carry no status of their own)
        ("3100", None, "app_refused"),
        ("3200", None, "app_refused"),
        ("3200", 401, "reauth"),  # from the gateway: the token, refresh then reconnect
        ("3100", 403, "reauth"),
        ("6240", None, "record"),
    ],
)
def test_which_faults_speak_of_the_company_or_the_app(code, status, expected):
    """The classification the client applies to each Fault, batch items included (they carry no
    HTTP status of their own)."""
    from practice.quickbooks.connection.errors import (
        CompanyUnavailable,
        ReauthRequired,
        RecordRejected,
        error_from_fault,
    )

    err = error_from_fault(
        {"Error": [{"Message": "m", "Detail": "d", "code": code}], "type": "x"}, status=status
    )
    kind = {CompanyUnavailable: "", ReauthRequired: "reauth", RecordRejected: "record"}[type(err)]
    assert (kind or getattr(err, "reason", "")) == expected


@pytest.mark.parametrize("code", ["6190", "3100"])
def test_a_company_fault_on_one_batch_item_pauses_and_keeps_the_neighbours_answers(
    firm, conn, sandbox, realm_id, code
):
    first, second, third = accounts(firm, "Item Pause One", "Item Pause Two", "Item Pause Three")
    sandbox.inject_batch_item_fault(realm_id, "item_fault", item=2, code=code)
    assert run(conn).reason == "paused"
    assert Connection.objects.get(pk=conn.pk).paused_code == (
        "company_status" if code == "6190" else "app_refused"
    )
    # The batch is not a transaction: its neighbours were written and are recorded as such.
    for acct in (first, third):
        link = link_of(conn, acct)
        assert link.status == SyncStatus.SYNCED
        assert [c["Id"] for c in qbo_customers(conn, acct.name)] == [link.qbo_id]
    # The refused item was not written; it waits, out of flight (its cached answer would only
    # repeat the refusal), and is no Error.
    waiting = link_of(conn, second)
    assert waiting.status == SyncStatus.SYNCING and not waiting.batch_request_id and waiting.attempts == 0
    assert qbo_customers(conn, "Item Pause Two") == []
    (attempt,) = SyncAttempt.objects.filter(link=waiting)
    assert attempt.outcome == "retry" and attempt.fault_code == code

    Connection.objects.filter(pk=conn.pk).update(pause_retry_at=timezone.now())
    assert run(conn).reason == ""
    for acct in (first, second, third):
        link = link_of(conn, acct)
        assert link.status == SyncStatus.SYNCED
        assert [c["Id"] for c in qbo_customers(conn, acct.name)] == [link.qbo_id]
    assert Connection.objects.get(pk=conn.pk).paused_code == ""

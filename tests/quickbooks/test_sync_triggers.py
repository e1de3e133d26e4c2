"""What starts a sync run: changes (on commit, de-duplicated), connecting, the sweep, commands."""

from __future__ import annotations

import datetime

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from practice.clients.services import account_create, account_update
from practice.quickbooks.models import RealmSyncState, SyncLink
from practice.quickbooks.statuses import SyncStatus
from practice.quickbooks.sync.tasks import run_now, sweep_now
from tests.quickbooks.sync_support import accounts, link_of, qbo_customers, set_up

SYNC_TASK = "practice.quickbooks.sync.tasks.sync_realm"


def queued():
    return DBTaskResult.objects.filter(task_path=SYNC_TASK, status="READY").count()


@pytest.fixture
def conn(connection, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        set_up(connection)
    DBTaskResult.objects.all().delete()
    RealmSyncState.objects.update(queued_at=None)
    return connection


def test_changes_enqueue_one_run_on_commit(firm, conn, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        a = account_create(firm=firm, name="Trigger One")
        account_create(firm=firm, name="Trigger Two")
        account_update(account=a, email="x@y.test")
    assert queued() == 1  # a burst enqueues one run
    with django_capture_on_commit_callbacks(execute=True):
        account_create(firm=firm, name="Trigger Three")
    assert queued() == 1  # still one while it is queued
    run_now(conn.pk)  # the worker starts it: the flag clears
    with django_capture_on_commit_callbacks(execute=True):
        account_create(firm=firm, name="Trigger Four")
    assert queued() == 2


def test_rolled_back_change_enqueues_nothing(firm, conn, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        account_create(firm=firm, name="Never Committed")
    assert queued() == 0 and callbacks  # registered for commit only


def test_no_run_enqueued_while_disconnected(firm, conn, django_capture_on_commit_callbacks):
    type(conn).objects.filter(pk=conn.pk).update(status="needs_reconnect")
    with django_capture_on_commit_callbacks(execute=True):
        account_create(firm=firm, name="Waits")
    assert queued() == 0


def test_confirming_setup_enqueues_the_first_run(connection, django_capture_on_commit_callbacks):
    DBTaskResult.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        set_up(connection)
    assert queued() == 1


def test_worker_runs_the_queued_task(firm, conn, django_capture_on_commit_callbacks, settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    with django_capture_on_commit_callbacks(execute=True):
        (acct,) = accounts(firm, "Immediate Client")
    assert link_of(conn, acct).status == SyncStatus.SYNCED
    assert len(qbo_customers(conn, "Immediate Client")) == 1


def test_sweep_enqueues_due_retries_and_lost_runs(firm, conn, django_capture_on_commit_callbacks):
    (acct,) = accounts(firm, "Due Client")
    DBTaskResult.objects.all().delete()
    RealmSyncState.objects.update(queued_at=None)
    SyncLink.objects.create(
        firm=firm,
        connection=conn,
        kind="customer",
        local_id=acct.pk,
        status=SyncStatus.SYNCING,
        next_retry_at=timezone.now() + datetime.timedelta(minutes=5),
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_now() == 0  # not due yet
    SyncLink.objects.update(next_retry_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_now() == 1
    assert queued() == 1
    # A queued run that never started (its worker died) is forgotten after a while.
    RealmSyncState.objects.update(queued_at=timezone.now() - datetime.timedelta(hours=1))
    DBTaskResult.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        sweep_now()
    assert queued() == 1


def test_commands(firm, conn, capsys):
    accounts(firm, "Command Client")
    call_command("qbo_sync", "--firm", str(firm.pk))
    out = capsys.readouterr().out
    assert "synced=1" in out
    call_command("qbo_sync", "--firm", str(firm.pk), "--status")
    assert "synced=1" in capsys.readouterr().out
    call_command("qbo_sweep")
    assert "enqueued 0" in capsys.readouterr().out
    call_command("qbo_sweep", "--all", "--run")
    assert "connection" in capsys.readouterr().out


# transaction=True: the worker closes the database connection between tasks (close_old_connections),
# which a test wrapped in one transaction would not survive on PostgreSQL.
@pytest.mark.django_db(transaction=True)
def test_setup_then_worker_runs_the_first_sync(firm, connection, django_capture_on_commit_callbacks):
    accounts(firm, "Worker Client")
    DBTaskResult.objects.all().delete()
    RealmSyncState.objects.update(queued_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        set_up(connection)  # what saving the setup page does
    assert queued() == 1
    call_command("run_worker", "--batch", "--no-startup-delay", "--reap-every", "0")
    assert DBTaskResult.objects.get(task_path=SYNC_TASK).status == "SUCCESSFUL"
    assert SyncLink.objects.get(connection=connection).status == SyncStatus.SYNCED
    assert len(qbo_customers(connection, "Worker Client")) == 1


def test_a_waiting_retry_schedules_its_own_run(
    firm, conn, sandbox, realm_id, settings, django_capture_on_commit_callbacks
):
    settings.QBO_TRANSIENT_RETRIES = 0
    (acct,) = accounts(firm, "Retry Scheduled Co")
    DBTaskResult.objects.all().delete()
    sandbox.inject_fault(realm_id, "503", count=2, operation="batch")
    with django_capture_on_commit_callbacks(execute=True):
        run_now(conn.pk)
    link = link_of(conn, acct)
    delayed = DBTaskResult.objects.get(task_path=SYNC_TASK)
    assert delayed.run_after == link.next_retry_at
    with django_capture_on_commit_callbacks(execute=True):
        run_now(conn.pk)  # not due yet: nothing sent, and no second delayed run
    assert DBTaskResult.objects.filter(task_path=SYNC_TASK).count() == 1


@pytest.mark.django_db(transaction=True)  # run_worker closes the connection (see above)
def test_the_worker_sweeps_beside_its_tasks_and_survives_a_failing_sweep(monkeypatch, caplog):
    """run_worker calls the QBO sweep periodically in a thread; an exception is logged and the
    next sweep still happens (the worker itself is never stopped by it)."""
    import threading

    from practice.common.management.commands import run_worker
    from practice.quickbooks.sync import tasks

    calls = []
    swept_again = threading.Event()

    def flaky_sweep(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        swept_again.set()
        return 0

    def fake_db_worker(name, **options):
        assert name == "db_worker"
        # The worker is "running tasks" until the sweep has failed once and then run again.
        assert swept_again.wait(10)

    monkeypatch.setattr(tasks, "sweep_now", flaky_sweep)
    monkeypatch.setattr(run_worker, "call_command", fake_db_worker)
    call_command("run_worker", "--sweep-every", "0.05", "--reap-every", "0", "--no-startup-delay")
    assert len(calls) >= 2
    assert "tasks.sweep.error" in caplog.text


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("args", "started"), [((), [60.0]), (("--batch",), [])], ids=["loop", "batch"])
def test_the_worker_sweeps_once_a_minute_by_default_and_not_in_batch_mode(monkeypatch, args, started):
    from practice.common.management.commands import run_worker

    seen = []

    class Recorder(run_worker.SweepThread):
        def start(self):
            seen.append(self.every_seconds)

        def join(self, timeout=None):
            pass

    monkeypatch.setattr(run_worker, "SweepThread", Recorder)
    monkeypatch.setattr(run_worker, "call_command", lambda name, **options: None)
    call_command("run_worker", "--reap-every", "0", "--no-startup-delay", *args)
    assert seen == started

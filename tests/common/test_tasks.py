"""Background-work plumbing: enqueue on commit, the reaper, run_worker; a real killed worker."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from practice.common.models import WorkerHeartbeat
from practice.common.tasks import (
    WORKER_LOST,
    ReaperThread,
    enqueue_on_commit,
    heartbeat,
    heartbeat_stop,
    reap_stale_tasks,
)
from tests.common.sample_tasks import record_run
from tests.common.shared_db import MANAGE, SharedDatabase


def make_running(marker: str, *, age_seconds: float, worker_ids: list[str] | None = None) -> DBTaskResult:
    """A task row as a worker leaves it when it is killed mid-task."""
    result = record_run.enqueue(marker)
    row = DBTaskResult.objects.get(pk=result.id)
    row.status = TaskResultStatus.RUNNING
    row.started_at = timezone.now() - timedelta(seconds=age_seconds)
    row.worker_ids = worker_ids if worker_ids is not None else ["dead-worker"]
    row.save()
    return row


# --- enqueue_on_commit -----------------------------------------------------------------------


def test_enqueue_on_commit_waits_for_commit(db, tmp_path, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        enqueue_on_commit(record_run, str(tmp_path / "m"), first_run_sleep=0)
        assert DBTaskResult.objects.count() == 0
    (row,) = DBTaskResult.objects.all()
    assert row.status == TaskResultStatus.READY
    assert row.args_kwargs == {"args": [str(tmp_path / "m")], "kwargs": {"first_run_sleep": 0}}


def test_enqueue_on_commit_drops_the_task_on_rollback(db, tmp_path, django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(ValueError),
        transaction.atomic(),
    ):
        enqueue_on_commit(record_run, str(tmp_path / "m"))
        raise ValueError
    assert DBTaskResult.objects.count() == 0


# --- reaper ----------------------------------------------------------------------------------


def test_reaper_requeues_only_stale_running_tasks(db, tmp_path):
    stale = make_running(str(tmp_path / "a"), age_seconds=120)
    fresh = make_running(str(tmp_path / "b"), age_seconds=5)
    ready = DBTaskResult.objects.get(pk=record_run.enqueue(str(tmp_path / "c")).id)

    result = reap_stale_tasks(60)

    assert result.requeued == [str(stale.pk)]
    assert result.failed == []
    stale.refresh_from_db()
    fresh.refresh_from_db()
    ready.refresh_from_db()
    assert (stale.status, stale.started_at) == (TaskResultStatus.READY, None)
    assert stale.worker_ids == ["dead-worker"]  # the claim history is kept: it counts attempts
    assert fresh.status == TaskResultStatus.RUNNING
    assert ready.status == TaskResultStatus.READY
    assert not reap_stale_tasks(60)  # nothing left to do: idempotent


def test_reaper_uses_the_setting_by_default(db, tmp_path, settings):
    settings.TASK_REAPER_STALE_SECONDS = 1000
    row = make_running(str(tmp_path / "a"), age_seconds=900)
    assert not reap_stale_tasks()
    settings.TASK_REAPER_STALE_SECONDS = 800
    assert reap_stale_tasks().requeued == [str(row.pk)]


def test_reaper_fails_a_task_that_keeps_killing_workers(db, tmp_path):
    row = make_running(str(tmp_path / "a"), age_seconds=120, worker_ids=["w1", "w2", "w3"])
    result = reap_stale_tasks(60, max_attempts=3)
    assert result.failed == [str(row.pk)]
    row.refresh_from_db()
    assert row.status == TaskResultStatus.FAILED
    assert row.exception_class_path == WORKER_LOST
    assert "3 times" in row.traceback
    assert row.finished_at is not None


def test_a_live_workers_long_task_is_left_alone(db, tmp_path):
    row = make_running(str(tmp_path / "a"), age_seconds=3 * 3600, worker_ids=["w-live"])
    heartbeat("w-live")
    assert not reap_stale_tasks(60)
    row.refresh_from_db()
    assert row.status == TaskResultStatus.RUNNING


def test_a_dead_workers_task_is_requeued_however_young(db, tmp_path, settings):
    settings.TASK_WORKER_DEAD_AFTER_SECONDS = 30
    row = make_running(str(tmp_path / "a"), age_seconds=1, worker_ids=["w-old", "w-dead"])
    heartbeat("w-dead", now=timezone.now() - timedelta(seconds=31))
    heartbeat("w-old")  # an earlier claimer being alive does not matter: the last one holds it
    assert reap_stale_tasks(3600).requeued == [str(row.pk)]


def test_a_worker_that_stops_marks_itself_dead(db, tmp_path):
    row = make_running(str(tmp_path / "a"), age_seconds=1, worker_ids=["w-1"])
    heartbeat("w-1")
    assert not reap_stale_tasks(3600)
    heartbeat_stop("w-1")
    assert reap_stale_tasks(3600).requeued == [str(row.pk)]


def test_heartbeats_of_long_gone_workers_are_pruned(db):
    heartbeat("w-gone", now=timezone.now() - timedelta(days=2))
    heartbeat("w-here")
    reap_stale_tasks()
    assert list(WorkerHeartbeat.objects.values_list("pk", flat=True)) == ["w-here"]


def test_reap_tasks_command(db, tmp_path, capsys):
    row = make_running(str(tmp_path / "a"), age_seconds=30)
    call_command("reap_tasks", "--older-than", "10")
    assert "Requeued 1 task(s)" in capsys.readouterr().out
    row.refresh_from_db()
    assert row.status == TaskResultStatus.READY


@pytest.mark.django_db(transaction=True)  # the worker closes connections between tasks
def test_run_worker_reaps_at_start_then_runs_the_task(tmp_path):
    marker = tmp_path / "m"
    row = make_running(str(marker), age_seconds=120)
    call_command(
        "run_worker",
        "--batch",
        "--no-startup-delay",
        "--stale-seconds",
        "60",
        "--worker-id",
        "w-9",
        verbosity=0,
    )
    row.refresh_from_db()
    assert row.status == TaskResultStatus.SUCCESSFUL
    assert row.worker_ids == ["dead-worker", "w-9"]
    assert marker.read_text().count("done") == 1
    # It signed its heartbeat, and marked itself gone on the way out.
    beat = WorkerHeartbeat.objects.get(pk="w-9")
    assert beat.pid == os.getpid()
    assert beat.last_seen.year == 2000


@pytest.mark.django_db(transaction=True)
def test_reaper_thread_runs_periodically(tmp_path):
    row = make_running(str(tmp_path / "a"), age_seconds=120)
    reaper = ReaperThread(every_seconds=0.05, older_than_seconds=60)
    reaper.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            row.refresh_from_db()
            if row.status == TaskResultStatus.READY:
                break
            time.sleep(0.05)
    finally:
        reaper.stop()
        reaper.join(timeout=5)
    assert row.status == TaskResultStatus.READY
    assert not reaper.is_alive()


# --- a real worker, killed mid-task ----------------------------------------------------------


DEAD_AFTER = 1.5


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_killed_worker_task_is_reaped_and_completes_exactly_once(tmp_path):
    shared = SharedDatabase(tmp_path)
    shared.env.update(TASK_WORKER_HEARTBEAT_SECONDS="0.2", TASK_WORKER_DEAD_AFTER_SECONDS=str(DEAD_AFTER))
    marker = tmp_path / "runs.txt"
    task_id = str(record_run.enqueue(str(marker), first_run_sleep=60).id)
    shared.publish()

    worker = subprocess.Popen(
        [*MANAGE, "run_worker", "--no-startup-delay", "--interval", "0.1", "--reap-every", "0"],
        env=shared.env,
        cwd=settings.BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # Generous: a worker's start-up (Django import) is slow on a loaded 2-core box, and this
        # bound only stops a hung test; it measures nothing.
        deadline = time.monotonic() + 90
        while not (marker.exists() and "start" in marker.read_text()):
            assert worker.poll() is None, worker.stdout.read() if worker.stdout else ""
            assert time.monotonic() < deadline, "the worker never started the task"
            time.sleep(0.05)
        os.kill(worker.pid, signal.SIGKILL)  # mid-task, as the OOM killer would
        worker.wait(timeout=5)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    killed_at = time.monotonic()
    status, worker_ids = shared.task_row(task_id)
    assert status == TaskResultStatus.RUNNING
    assert len(worker_ids) == 1

    # Without the reaper a new worker skips the orphan (stack-notes G3)...
    shared.manage("db_worker", "--batch", "--no-startup-delay", "--no-reload")
    assert shared.task_row(task_id)[0] == TaskResultStatus.RUNNING

    # ...the reaper sees the killed worker's heartbeat go silent and puts the task back (the
    # task is far younger than TASK_REAPER_STALE_SECONDS: the heartbeat is what tells)...
    time.sleep(max(0.0, DEAD_AFTER + 0.3 - (time.monotonic() - killed_at)))
    out = shared.manage("reap_tasks").stdout
    assert "Requeued 1 task(s)" in out
    assert shared.task_row(task_id)[0] == TaskResultStatus.READY
    # ...and the next worker runs it to the end, once.
    shared.manage("run_worker", "--batch", "--no-startup-delay")

    status, worker_ids = shared.task_row(task_id)
    assert status == TaskResultStatus.SUCCESSFUL
    assert len(worker_ids) == 2 and worker_ids[0] != worker_ids[1]
    lines = marker.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["start", "start", "done"]

"""What several bench scripts do alike: the environment of the Django processes they start, the
`run_worker` processes they start and stop, the client pacing they lift or compress, the
connection a benchmark firm is set up with, and the machine figures every result carries.

Not a benchmark: imported by its neighbours (bench/ is a folder of scripts on sys.path, not a
package), so it imports nothing of theirs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from account_sync_bench import Sandbox

ROOT = Path(__file__).resolve().parent.parent

# The client's own pacing (connection/pacing.py). With the sandbox's limits off, these are lifted
# so that wall time is the engine's and the sandbox's, not a budget nobody enforces.
PACING_LIMITS = ("QBO_REQUESTS_PER_WINDOW", "QBO_REQUESTS_PER_SECOND", "QBO_BATCHES_PER_WINDOW")
# The same, for a child process that reads its settings from the environment (config/settings.py
# reads these three; the burst is not an environment setting).
UNPACED_ENV = dict.fromkeys(PACING_LIMITS, "1e9")


def child_env(
    sandbox_url: str,
    *,
    database_url: str | None,
    sqlite_path: str,
    log_level: str,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a `manage.py` process run against the local sandbox: this process's,
    less its database, plus `database_url` (PostgreSQL) or else a SQLite file at `sqlite_path`."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SQLITE_PATH")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PYTHONPATH": str(ROOT),
            "QBO_ENVIRONMENT": "sandbox-local",
            "QBO_SANDBOX_URL": sandbox_url,
            "LOG_LEVEL": log_level,
            **(extra or {}),
        }
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    else:
        env["SQLITE_PATH"] = sqlite_path
    return env


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )


def setup_django(env: dict[str, str]) -> None:
    """Django in this process, on the same settings and database as the children."""
    os.environ.update(env)
    import django

    django.setup()


def start_run_worker(
    worker_id: str, log_path: str, env: dict[str, str], *, interval: float, extra_args: Iterable[str] = ()
) -> subprocess.Popen[bytes]:
    """The production worker command (`manage.py run_worker`) in a process of its own, its output
    in `log_path`."""
    log = open(log_path, "wb")  # noqa: SIM115 - the child holds it; closed when this process exits
    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "run_worker",
            "--worker-id",
            worker_id,
            "--interval",
            str(interval),
            "--no-startup-delay",
            *extra_args,
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop_processes(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    """SIGTERM every process still running (the worker finishes its task and leaves), then wait;
    one that has not left after `timeout` seconds is killed."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Run:
    """A real worker (`manage.py run_worker`) started, SIGKILLed and restarted by fault_run.py and
    soak.py. Its settings module is bench/soak_settings.py: config/settings.py plus the clocks a
    compressed sandbox minute needs, read from the environment only when the script sets them."""

    def __init__(self, args: argparse.Namespace, workdir: str, sandbox: Sandbox) -> None:
        self.args = args
        self.workdir = workdir
        self.sb = sandbox
        self.rng = random.Random(args.seed)
        self.env = child_env(
            sandbox.url,
            database_url=args.database_url,
            sqlite_path=f"{workdir}/fault-run.sqlite3",
            log_level="INFO",
            extra={
                "DJANGO_SETTINGS_MODULE": "soak_settings",
                "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}",
                "QBO_LEASE_SECONDS": str(args.lease_seconds),
                # A killed worker is noticed within seconds, not the production minute.
                "TASK_WORKER_HEARTBEAT_SECONDS": "1",
                "TASK_WORKER_DEAD_AFTER_SECONDS": "5",
                "QBO_SWEEP_INTERVAL_SECONDS": "5",
            },
        )
        self.worker: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kill_log: list[dict[str, Any]] = []

    def start_worker(self) -> str:
        self.starts += 1
        worker_id = f"fault-run-{self.starts:02d}"
        self.worker = start_run_worker(
            worker_id,
            f"{self.workdir}/worker-{self.starts:02d}.log",
            self.env,
            interval=0.2,
            extra_args=("--reap-every", "2"),
        )
        return worker_id

    def wait_for_heartbeat(self, timeout: float = 60) -> bool:
        """Whether the worker just started signed its first heartbeat (Django set up by the caller)."""
        from practice.common.models import WorkerHeartbeat

        worker_id = f"fault-run-{self.starts:02d}"
        deadline = time.monotonic() + timeout
        while not WorkerHeartbeat.objects.filter(pk=worker_id).exists():
            if time.monotonic() > deadline or (self.worker and self.worker.poll() is not None):
                print(f"worker {worker_id} did not start; see {self.workdir}", file=sys.stderr)
                return False
            time.sleep(0.05)
        return True

    def kill_at_random_point(
        self, realm: str, *, aim_at_batch: bool, max_wait: float = 8.0, batches: int = 1
    ) -> str:
        """SIGKILL the running worker; returns where the kill was aimed.

        `aim_at_batch`: wait for its `batches`-th next batch call to reach QBO, then kill while
        QBO is still answering it (the sandbox's latency) or while the answer is being recorded.
        Otherwise a random moment 0.5 s to `max_wait` s from now, wherever the worker is."""
        moment = "random"
        if aim_at_batch:
            target = self.sb.counters(realm)["batch_calls"] + batches
            deadline = time.monotonic() + 120
            while self.sb.counters(realm)["batch_calls"] < target and time.monotonic() < deadline:
                time.sleep(0.02)
            if self.sb.counters(realm)["batch_calls"] >= target:
                moment = "batch sent"
                time.sleep(self.rng.uniform(0, self.args.latency + 0.2))
            else:
                moment = "no batch within 120 s"
        else:
            time.sleep(self.rng.uniform(0.5, max_wait))
        self.kill_worker()
        return moment

    def kill_worker(self) -> None:
        assert self.worker is not None
        os.kill(self.worker.pid, signal.SIGKILL)
        self.worker.wait()

    def stop_worker(self) -> None:
        if self.worker is not None:
            stop_processes([self.worker])


@contextmanager
def killable_worker(args: argparse.Namespace, sandbox: Sandbox, *, prefix: str) -> Iterator[Run]:
    """A `Run` in a fresh temp folder (its database and worker logs). On the way out, however the
    script ends: the worker stopped, the sandbox closed, the folder removed (kept with `--keep`)."""
    workdir = tempfile.mkdtemp(prefix=prefix)
    run = Run(args, workdir, sandbox)
    try:
        yield run
    finally:
        run.stop_worker()
        sandbox.close()
        if args.keep:
            print(f"kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def child_setup(spec_path: str) -> dict[str, Any]:
    """The start of a benchmark's engine child (`<bench>.py --worker spec.json`, a fresh process
    for clean CPU accounting): the spec its parent wrote, Django set up against the parent's
    sandbox, and cheap password hashing (creating the firm hashes its owner's password)."""
    spec: dict[str, Any] = json.loads(Path(spec_path).read_text())
    os.environ["QBO_SANDBOX_URL"] = spec["sandbox_url"]
    os.environ["QBO_ENVIRONMENT"] = "sandbox-local"
    import django

    django.setup()
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return spec


class Instruments:
    """Instrumentation of an engine child, nothing else: when each QBO call went out (`sends`,
    monotonic time and operation, for the budget figures) and how many SQL statements ran inside
    `counting_sql()` (`sql`)."""

    def __init__(self) -> None:
        from practice.quickbooks.connection import client as qbo_client

        self.sends: list[tuple[float, str]] = []
        self.sql = 0
        original_send = qbo_client.QBOClient._send

        def timed_send(client: Any, method: str, path: str, **kw: Any) -> Any:
            self.sends.append((time.monotonic(), str(kw.get("op", path))))
            return original_send(client, method, path, **kw)

        qbo_client.QBOClient._send = timed_send  # type: ignore[method-assign,assignment]

    def _count(self, execute: Any, *args: Any) -> Any:
        self.sql += 1
        return execute(*args)

    def counting_sql(self) -> Any:
        from django.db import connection

        return connection.execute_wrapper(self._count)


def apply_pacing(
    settings: Any, *, paced: bool, window_seconds: float, batches_per_window: float | None = None
) -> None:
    """The client's pacing in a benchmark child (Django settings, set before the first client).

    Paced: QBO's minute compressed to `window_seconds` (the sandbox's `time_scale` x 60), with an
    optional batch budget per window. Unpaced: the client's limits lifted, as the sandbox's are.
    Either way a 429's waits follow the compressed clock (Intuit's 60 s becomes 60 x scale)."""
    if paced:
        settings.QBO_RATE_WINDOW_SECONDS = float(window_seconds)
        if batches_per_window:
            settings.QBO_BATCHES_PER_WINDOW = float(batches_per_window)
    else:
        for name in PACING_LIMITS:
            setattr(settings, name, 1e9)
        settings.QBO_PACING_BURST = 1e9
    settings.QBO_BACKOFF_SCALE = float(window_seconds) / 60.0


def bench_firm(label: str, email_domain: str) -> tuple[Any, Any]:
    """A new firm named `label` and a random tag (runs share a database), and its owner."""
    import uuid

    from practice.firms.services import firm_create

    tag = uuid.uuid4().hex[:8]
    firm = firm_create(
        name=f"{label} {tag}", owner_email=f"owner-{tag}@{email_domain}", owner_password="x" * 12
    )
    return firm, firm.memberships.get(role="owner").user


def choose_billing_setup(conn: Any, accts: dict[str, str]) -> None:
    """A benchmark firm's setup choices: every account synced (the unmatched created), no start
    date, the realm's income and deposit accounts (`accts`, from `billing_sync_bench.pick_accounts`),
    manual payments synced. Not saved: the caller decides whether saving completes the setup
    (which enqueues the first run)."""
    conn.account_scope = "all"
    conn.unmatched_customer = "create"
    conn.sync_start_date = None
    conn.income_account_id, conn.income_account_name = accts["income_id"], accts["income_name"]
    conn.deposit_account_id, conn.deposit_account_name = accts["deposit_id"], accts["deposit_name"]
    conn.sync_manual_payments = True


def machine(**extra: Any) -> dict[str, Any]:
    """The machine a result was measured on (shared and noisy: the load average says how much)."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        **extra,
        "loadavg_at_end": os.getloadavg(),
    }

"""`manage.py run_stack` (used by `make demo`): the whole product in one terminal.

Starts and supervises, as child processes:
  1. the local QBO sandbox (only when QBO_ENVIRONMENT is "sandbox-local"), then prepares it
     (`practice.quickbooks.demo.local_sandbox.prepare()`: registers the app's OAuth client and the
     demo company) once it answers;
  2. the web app: gunicorn serving config.wsgi;
  3. the background worker: `manage.py run_worker`.

Ctrl-C (SIGINT) or SIGTERM stops every child (SIGTERM, then SIGKILL after a grace period) and
exits 0. If any child dies on its own, the others are stopped and the command exits 1, so a
half-running stack never looks healthy. Children run in their own process groups: a Ctrl-C in
the terminal reaches only this supervisor, which stops them in order (web first, so no new
work arrives; the worker gets SIGTERM, on which db_worker finishes its current task).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

GRACE_SECONDS = 10.0
POLL_SECONDS = 0.2


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the supervisor itself is killed (Linux)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
        except OSError:
            pass


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv built below
            self.argv,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def poll(self) -> int | None:
        return self.process.poll() if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal_group(self, sig: int) -> None:
        # The child's own group: gunicorn's workers and the autoreloader's children too.
        if self.running():
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)


def _port_of(url: str, default: int) -> int:
    return urlsplit(url).port or default


def _with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    return urlunsplit((parts.scheme or "http", f"{host}:{port}", parts.path, "", ""))


def _wait_for_port(host: str, port: int, *, timeout: float, child: Child) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.running():
            raise CommandError(f"{child.name} exited with code {child.poll()} while starting")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(POLL_SECONDS)
    raise CommandError(f"{child.name} did not answer on {host}:{port} within {timeout:.0f} s")


def _gunicorn_version() -> tuple[int, ...]:
    try:
        import gunicorn
    except ImportError:
        return (0,)
    return tuple(getattr(gunicorn, "version_info", (0,)))


def _demo_login() -> tuple[str, str] | None:
    try:
        demo = importlib.import_module("practice.billing.demo")
    except ImportError:
        return None
    email = getattr(demo, "DEMO_OWNER_EMAIL", None)
    password = getattr(demo, "DEMO_PASSWORD", None)
    return (email, password) if email and password else None


class Command(BaseCommand):
    help = "Run the app (gunicorn), the worker and, for sandbox-local, the QBO sandbox; Ctrl-C stops all."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("RUN_STACK_HOST", "127.0.0.1"))
        parser.add_argument(
            "--port", type=int, default=int(os.environ.get("RUN_STACK_PORT", "8000")), help="Web port."
        )
        parser.add_argument(
            "--sandbox-port",
            type=int,
            default=int(os.environ.get("RUN_STACK_SANDBOX_PORT", "0")) or None,
            help="Port of the local QBO sandbox (default: the port of settings.QBO_SANDBOX_URL).",
        )
        parser.add_argument(
            "--sandbox-state",
            default=os.environ.get("RUN_STACK_SANDBOX_STATE", ""),
            help="The sandbox's snapshot file (default: BASE_DIR/qbo-sandbox-state.json).",
        )
        parser.add_argument("--web-workers", type=int, default=2)
        parser.add_argument("--web-threads", type=int, default=4)
        parser.add_argument("--no-worker", action="store_true", help="Don't start the background worker.")
        parser.add_argument(
            "--no-sandbox", action="store_true", help="Don't start the local QBO sandbox (sandbox-local)."
        )
        parser.add_argument("--start-timeout", type=float, default=30.0)

    # -- building the children ----------------------------------------------------------------

    def _sandbox(self, port: int, state: str) -> Child:
        # The console script installed next to this Python (the venv), else the module itself.
        exe = shutil.which("qbo-sandbox", path=str(Path(sys.executable).parent))
        argv = [exe] if exe else [sys.executable, "-m", "qbo_sandbox.cli"]
        state = state or str(Path(settings.BASE_DIR) / "qbo-sandbox-state.json")
        return Child(
            "qbo-sandbox", [*argv, "serve", "--host", "127.0.0.1", "--port", str(port), "--state", state]
        )

    def _web(self, host: str, port: int, workers: int, threads: int) -> Child:
        argv = [
            sys.executable, "-m", "gunicorn", "config.wsgi",
            "--bind", f"{host}:{port}",
            "--workers", str(workers),
            "--threads", str(threads),
            "--graceful-timeout", str(int(GRACE_SECONDS) - 2),
            # Access log without query strings (code, state, search terms): config/gunicorn.py.
            "--config", str(Path(settings.BASE_DIR) / "config" / "gunicorn.py"),
        ]  # fmt: skip
        if _gunicorn_version() >= (27,):
            # gunicorn 27 opens a control socket at one fixed path in $HOME; two stacks (or a
            # test run beside a demo) would fight over it, and nothing here uses it.
            argv.append("--no-control-socket")
        return Child("web", argv)

    def _worker(self) -> Child:
        return Child("worker", [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "run_worker"])

    # -- supervision ----------------------------------------------------------------------------

    def handle(self, *args: Any, **options: Any) -> None:
        self._stop_requested: int | None = None
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        children: list[Child] = []

        def request_stop(signum: int, frame: FrameType | None) -> None:
            self._stop_requested = signum

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

        if "QBO_REDIRECT_URI" not in os.environ:
            # The OAuth callback must point at the port the app is really served on.
            redirect = _with_port(settings.QBO_REDIRECT_URI, options["port"])
            env["QBO_REDIRECT_URI"] = settings.QBO_REDIRECT_URI = redirect

        exit_code = 0
        try:
            if settings.QBO_ENVIRONMENT == "sandbox-local" and not options["no_sandbox"]:
                port = options["sandbox_port"] or _port_of(settings.QBO_SANDBOX_URL, 8765)
                sandbox_url = _with_port(settings.QBO_SANDBOX_URL, port)
                # The app (here and in the children) must talk to the sandbox we start.
                env["QBO_SANDBOX_URL"] = sandbox_url
                settings.QBO_SANDBOX_URL = sandbox_url
                sandbox = self._sandbox(port, options["sandbox_state"])
                children.append(sandbox)
                sandbox.start(env, Path(settings.BASE_DIR))
                _wait_for_port("127.0.0.1", port, timeout=options["start_timeout"], child=sandbox)
                self._prepare_sandbox()
                self.stdout.write(f"QBO sandbox: {sandbox_url} (pid {sandbox.pid})")

            web = self._web(options["host"], options["port"], options["web_workers"], options["web_threads"])
            children.append(web)
            web.start(env, Path(settings.BASE_DIR))
            if not options["no_worker"]:
                worker = self._worker()
                children.append(worker)
                # A worker reconnecting for every task is 3x slower on PostgreSQL (stack-notes G4).
                worker.start({"CONN_MAX_AGE": "600", **env}, Path(settings.BASE_DIR))
            _wait_for_port(options["host"], options["port"], timeout=options["start_timeout"], child=web)

            self._announce(options["host"], options["port"], children)
            exit_code = self._supervise(children)
        except CommandError as e:
            self.stderr.write(f"run_stack: {e}")
            exit_code = 1
        finally:
            self._stop_all(children)
        if exit_code:
            sys.exit(exit_code)

    def _prepare_sandbox(self) -> None:
        try:
            module = importlib.import_module("practice.quickbooks.demo.local_sandbox")
        except ModuleNotFoundError as e:
            if e.name != "practice.quickbooks.demo.local_sandbox":
                raise
            return
        prepare = getattr(module, "prepare", None)
        if callable(prepare):
            prepare()

    def _announce(self, host: str, port: int, children: list[Child]) -> None:
        shown_host = "127.0.0.1" if host in {"0.0.0.0", "::"} else host  # noqa: S104
        self.stdout.write(self.style.SUCCESS(f"\nPractice is running at http://{shown_host}:{port}/"))
        login = _demo_login()
        if login:
            self.stdout.write(f"Sign in as {login[0]} / {login[1]}")
        self.stdout.write(", ".join(f"{c.name} pid {c.pid}" for c in children))
        self.stdout.write("Press Ctrl-C to stop everything.\n")
        self.stdout.flush()

    def _supervise(self, children: list[Child]) -> int:
        while self._stop_requested is None:
            for child in children:
                code = child.poll()
                if code is not None:
                    self.stderr.write(f"run_stack: {child.name} exited with code {code}; stopping the rest.")
                    return 1
            time.sleep(POLL_SECONDS)
        self.stdout.write(f"\nrun_stack: {signal.Signals(self._stop_requested).name} received, stopping…")
        return 0

    def _stop_all(self, children: list[Child]) -> None:
        # Web first (no new requests, so no new tasks), then the worker, the sandbox last.
        order = sorted(children, key=lambda c: {"web": 0, "worker": 1}.get(c.name, 2))
        for child in order:
            child.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        for child in order:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"run_stack: {child.name} did not stop in time; killing it.")
                child.signal_group(signal.SIGKILL)
                child.process.wait()

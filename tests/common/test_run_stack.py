"""`manage.py run_stack` for real: children start, the app answers, Ctrl-C stops them all."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from tests.common.shared_db import MANAGE, SharedDatabase

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive_in_group(pgid: int) -> list[int]:
    """Pids (not zombies) whose process group is `pgid`: a child and anything it forked."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


class Stack:
    def __init__(self, shared: SharedDatabase, *args: str) -> None:
        self.port = free_port()
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [
                *MANAGE,
                "run_stack",
                "--port",
                str(self.port),
                "--web-workers",
                "1",
                "--web-threads",
                "2",
                *args,
            ],
            env=shared.env,
            cwd=settings.BASE_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # our signals go to run_stack only, as a terminal's would
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_until_serving(self, timeout: float = 25) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/login/", timeout=2) as r:
                    if r.status == 200 and "pid" in self.output:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"run_stack did not serve /login/ in {timeout} s:\n{self.output}")

    def child_pids(self) -> dict[str, int]:
        return {name: int(pid) for name, pid in re.findall(r"([\w-]+) pid (\d+)", self.output)}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def shared(tmp_path):
    db = SharedDatabase(tmp_path)
    db.publish()
    return db


def test_serves_and_ctrl_c_stops_every_child(shared):
    stack = Stack(shared, "--no-sandbox")
    try:
        stack.wait_until_serving()
        children = stack.child_pids()
        assert set(children) == {"web", "worker"}
        assert f"http://127.0.0.1:{stack.port}/" in stack.output
        # gunicorn runs a master and workers; all of them are in the web child's group.
        assert len(alive_in_group(children["web"])) >= 2

        stack.process.send_signal(signal.SIGINT)
        assert stack.process.wait(timeout=15) == 0, stack.output
    finally:
        stack.stop()
    for pid in children.values():
        assert alive_in_group(pid) == [], stack.output


def test_the_access_log_has_no_query_strings(shared):
    """The OAuth callback's code and state and search terms stay out of gunicorn's access log
    (issue 12; ADR 0004), from the query string and from the Referer alike."""
    stack = Stack(shared, "--no-sandbox")
    try:
        stack.wait_until_serving()
        base = f"http://127.0.0.1:{stack.port}"
        for path, referer in [
            (
                "/settings/integrations/quickbooks/callback/?code=SECRETCODE42&state=SECRETSTATE42&realmId=1",
                "",
            ),
            (
                "/clients/accounts/?q=Zebra+Confidential+LLC",
                f"{base}/clients/accounts/?q=Referred+Secret+Inc",
            ),
        ]:
            request = urllib.request.Request(base + path, headers={"Referer": referer} if referer else {})
            with contextlib.suppress(urllib.error.HTTPError):  # answered, whatever the status
                urllib.request.urlopen(request, timeout=5).close()
        deadline = time.monotonic() + 5
        while "/clients/accounts/ HTTP/1.1" not in stack.output and time.monotonic() < deadline:
            time.sleep(0.1)
        log = stack.output
        assert '"GET /settings/integrations/quickbooks/callback/ HTTP/1.1" 302' in log, log[-2000:]
        assert '"GET /clients/accounts/ HTTP/1.1" 302' in log, log[-2000:]
        for secret in ("SECRETCODE42", "SECRETSTATE42", "Zebra", "Confidential", "Referred", "realmId"):
            assert secret not in log, secret
    finally:
        stack.stop()


def test_a_dying_child_stops_the_rest_and_fails(shared):
    stack = Stack(shared, "--no-sandbox")
    try:
        stack.wait_until_serving()
        children = stack.child_pids()
        os.kill(children["worker"], signal.SIGKILL)
        assert stack.process.wait(timeout=15) == 1
    finally:
        stack.stop()
    assert "worker exited" in stack.output
    assert alive_in_group(children["web"]) == []


@pytest.mark.skipif(importlib.util.find_spec("qbo_sandbox.cli") is None, reason="qbo_sandbox not installed")
def test_sandbox_local_starts_and_stops_the_sandbox(shared, tmp_path):
    shared.env["QBO_ENVIRONMENT"] = "sandbox-local"
    sandbox_port = free_port()
    stack = Stack(
        shared,
        "--no-worker",
        "--sandbox-port",
        str(sandbox_port),
        "--sandbox-state",
        str(tmp_path / "sandbox.json"),
    )
    try:
        stack.wait_until_serving(timeout=40)
        children = stack.child_pids()
        assert set(children) == {"qbo-sandbox", "web"}
        assert f"QBO sandbox: http://127.0.0.1:{sandbox_port}" in stack.output
        stack.process.send_signal(signal.SIGTERM)
        assert stack.process.wait(timeout=15) == 0, stack.output
    finally:
        stack.stop()
    for pid in children.values():
        assert alive_in_group(pid) == []

"""The test database made reachable by subprocesses (workers, run_stack), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

from django.conf import settings
from django.db import connections
from django_tasks_db.models import DBTaskResult

MANAGE = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]


class SharedDatabase:
    """The test database, reachable by worker subprocesses.

    PostgreSQL: the subprocesses connect to the test database itself. SQLite: the test database
    lives in memory, so it is copied (schema and rows) to a file they open instead, and rows
    are read back from that file.
    """

    def __init__(self, tmp_path: Path) -> None:
        self.conn = connections["default"]
        self.env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "TEST_DB_NAME"}}
        self.env["TASK_REAPER_STALE_SECONDS"] = "3600"
        self.env["PYTHONUNBUFFERED"] = "1"
        self.sqlite_path: Path | None = None
        s = self.conn.settings_dict
        if self.conn.vendor == "sqlite":
            self.sqlite_path = tmp_path / "shared.sqlite3"
            self.env["SQLITE_PATH"] = str(self.sqlite_path)
        else:
            password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
            self.env["DATABASE_URL"] = (
                f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
            )

    def publish(self) -> None:
        """Make rows written so far visible to subprocesses."""
        if self.sqlite_path is not None:
            self.conn.ensure_connection()
            dest = sqlite3.connect(self.sqlite_path)
            self.conn.connection.backup(dest)
            dest.close()

    def task_row(self, task_id: str) -> tuple[str, list[str]]:
        if self.sqlite_path is not None:
            with sqlite3.connect(self.sqlite_path) as db:
                status, worker_ids = db.execute(
                    "SELECT status, worker_ids FROM django_tasks_database_dbtaskresult WHERE id = ?",
                    (uuid.UUID(task_id).hex,),
                ).fetchone()
            return status, json.loads(worker_ids)
        row = DBTaskResult.objects.get(pk=task_id)
        return row.status, row.worker_ids

    def manage(self, *args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*MANAGE, *args],
            env=self.env,
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )

"""Tasks used by the worker tests. A module of its own so worker subprocesses can import it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from django_tasks import task


@task()
def record_run(marker: str, first_run_sleep: float = 0.0) -> int:
    """Append "start"/"done" lines to `marker`; the first run sleeps so a test can kill it."""
    path = Path(marker)
    with path.open("a") as f:
        f.write(f"start {os.getpid()}\n")
    starts = path.read_text().count("start")
    if starts == 1 and first_run_sleep:
        time.sleep(first_run_sleep)
    with path.open("a") as f:
        f.write("done\n")
    return starts

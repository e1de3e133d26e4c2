"""Settings of the worker that soak.py and fault_run.py start and kill (`_harness.Run`), and of
their own processes: `config.settings` plus the client's waits, read from the environment.

Production reads these clocks from code defaults (a 429 waits Intuit's 60 s, pacing counts in
60 s windows). The soak compresses QBO's minute in the sandbox (`--time-scale`), so the app's
pacing window and back-off must shrink by the same factor or the worker would pace for a minute
the sandbox no longer has. Access tokens live minutes instead of an hour, so the margin before
expiry at which the app refreshes shrinks with them. Nothing else differs from production.
"""

from __future__ import annotations

import os

from config.settings import *  # noqa: F403

for _name in (
    "QBO_RATE_WINDOW_SECONDS",
    "QBO_BACKOFF_SCALE",
    "QBO_TRANSIENT_BACKOFF_SECONDS",
    "QBO_RATE_LIMIT_WAIT_SECONDS",
    "QBO_REFRESH_MARGIN_SECONDS",
):
    if _name in os.environ:
        globals()[_name] = float(os.environ[_name])

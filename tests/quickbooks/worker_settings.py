"""Settings of the worker subprocesses that the QBO crash test starts and kills.

`config.settings` plus the engine's timings, read from the environment so the test can make the
lease short and the back-off fast without changing how production reads its settings.
"""

from __future__ import annotations

import os

from config.settings import *  # noqa: F403

for _name in (
    "QBO_LEASE_SECONDS",
    "QBO_RETRY_BASE_SECONDS",
    "QBO_RETRY_MAX_SECONDS",
    "QBO_BACKOFF_SCALE",
    "QBO_TRANSIENT_BACKOFF_SECONDS",
    "QBO_HTTP_TIMEOUT_SECONDS",
):
    if _name in os.environ:
        globals()[_name] = float(os.environ[_name])

"""Logging filters (config/settings.py LOGGING)."""

from __future__ import annotations

import logging


class OneLineForbidden(logging.Filter):
    """A refused request (403) is an answer, not a failure: Django's "Forbidden (Permission
    denied): /path" line is kept, the traceback of the PermissionDenied behind it is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403:
            record.exc_info = None
            record.exc_text = None
        return True

"""The process-wide HTTP pool and timeouts shared by the API client and the OAuth code.

Its own module so that `client` may use `oauth` (token refresh) while `oauth` uses the same pool
without importing `client`.
"""

from __future__ import annotations

import os
import threading

import httpx
from django.conf import settings

_http_lock = threading.Lock()
_http_client: httpx.Client | None = None
_http_pid: int | None = None


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def http_timeout() -> httpx.Timeout:
    """Explicit timeouts; QBO itself gives up on requests after 120 s (qbo-api.md §7)."""
    read = _setting("QBO_HTTP_TIMEOUT_SECONDS", 60.0)
    connect = _setting("QBO_HTTP_CONNECT_TIMEOUT_SECONDS", 10.0)
    return httpx.Timeout(read, connect=min(connect, read), pool=read)


def shared_http() -> httpx.Client:
    """The pooled client of this process (re-created after a fork: sockets are not shareable)."""
    global _http_client, _http_pid
    pid = os.getpid()
    with _http_lock:
        if _http_client is None or _http_pid != pid or _http_client.is_closed:
            _http_client = httpx.Client(
                timeout=http_timeout(),
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
                headers={"User-Agent": "practice-qbo/0.1"},
                follow_redirects=False,
            )
            _http_pid = pid
        return _http_client

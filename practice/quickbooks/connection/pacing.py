"""Client-side pacing below QBO's per-realm limits (qbo-api.md §7).

QBO allows per realm (and app): 500 requests/minute, 10 requests/second, 10 concurrent
requests, 40 batch calls/minute (batch calls also count toward the 500). Going over earns HTTP
429 and Intuit asks for a 60 s pause, far more expensive than pacing, so every request first
takes a slot here:

- one token bucket for all requests, refilled at the lower of 450/min and 8/s, holding at most
  one spare token. A bucket of capacity C refilled at r admits at most C + r*T requests in any
  span T: at most 8.5 in any second and 451 in any minute, which leaves room for network
  jitter between our clock and QBO's;
- a second bucket for batch calls (36/min, capacity 2: at most 38 in any minute, two under
  QBO's 40 for jitter in transit, docs/performance.md §3). The spare call is for a realm that
  was quiet: a second change a moment after the first goes out at once instead of waiting for
  the bucket's next token, 1.7 s away (issue 13 item 4, latency);
- a semaphore for concurrency (8 < 10);
- a shared pause after a 429, so the other threads stop too instead of earning more 429s.

Scope: state is per process and shared by all its threads. Several processes talking to the
same realm at once each get the full budget, so the assumption is that one process drives a
realm at a time (the sync engine's per-realm lease guarantees that for workers; interactive
web requests are a handful of reads). Deployments that run more than one process per realm
concurrently should divide the budget: QBO_PACING_PROCESSES=n.

Tunables (settings, all optional): QBO_RATE_WINDOW_SECONDS (60; tests shrink it together with
the sandbox's time_scale; the per-second limit scales with it), QBO_REQUESTS_PER_WINDOW,
QBO_REQUESTS_PER_SECOND, QBO_BATCHES_PER_WINDOW, QBO_MAX_CONCURRENT, QBO_PACING_BURST,
QBO_PACING_PROCESSES.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings

__all__ = ["Limits", "RealmPacer", "pacer_for"]


@dataclass(frozen=True)
class Limits:
    window_seconds: float = 60.0
    requests_per_window: float = 450.0
    requests_per_second: float = 8.0
    batches_per_window: float = 36.0
    burst: float = 1.0
    batch_burst: float = 2.0
    max_concurrent: int = 8

    @classmethod
    def from_settings(cls) -> Limits:
        processes = max(1, int(getattr(settings, "QBO_PACING_PROCESSES", 1)))
        return cls(
            window_seconds=float(getattr(settings, "QBO_RATE_WINDOW_SECONDS", 60.0)),
            requests_per_window=float(getattr(settings, "QBO_REQUESTS_PER_WINDOW", 450)) / processes,
            requests_per_second=float(getattr(settings, "QBO_REQUESTS_PER_SECOND", 8)) / processes,
            batches_per_window=float(getattr(settings, "QBO_BATCHES_PER_WINDOW", 36)) / processes,
            burst=max(1.0, float(getattr(settings, "QBO_PACING_BURST", 1)) / processes),
            batch_burst=max(1.0, 2.0 / processes),
            max_concurrent=max(1, int(getattr(settings, "QBO_MAX_CONCURRENT", 8)) // processes),
        )


class _Bucket:
    """Token bucket that hands out reservations: the caller learns how long to wait.

    Tokens may go negative; each caller reserves the next free slot, so waiting threads are
    served in arrival order and never stampede when the bucket refills.
    """

    def __init__(self, capacity: float, per_second: float, now: float) -> None:
        self.capacity = capacity
        self.per_second = per_second
        self.tokens = capacity
        self.updated = now

    def reserve(self, now: float) -> float:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        self.tokens -= 1.0
        if self.tokens >= 0:
            return 0.0
        return -self.tokens / self.per_second


class RealmPacer:
    """Pacing state of one realm in this process."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        window = max(limits.window_seconds, 1e-6)
        # A "second" shrinks with the window when tests compress time (window 1.2 s → 20 ms).
        second = window / 60.0
        rate = min(limits.requests_per_window / window, limits.requests_per_second / second)
        self._requests = _Bucket(limits.burst, rate, now)
        self._batches = _Bucket(limits.batch_burst, limits.batches_per_window / window, now)
        self._in_flight = threading.BoundedSemaphore(limits.max_concurrent)
        self._paused_until = 0.0

    def _reserve(self, batch: bool) -> float:
        with self._lock:
            now = self._clock()
            wait = self._requests.reserve(now)
            if batch:
                wait = max(wait, self._batches.reserve(now))
            return max(wait, self._paused_until - now)

    @contextmanager
    def slot(self, *, batch: bool = False) -> Iterator[None]:
        """Hold one of the concurrent slots, wait for the budget, then let the request run.

        The concurrency slot is taken first: a thread that reserved its send time and then
        queued for a slot would go out late, together with others, in a burst.
        """
        with self._in_flight:
            wait = self._reserve(batch)
            if wait > 0:
                time.sleep(wait)
            # A pause announced while we waited (another thread got a 429) applies to us too.
            while True:
                with self._lock:
                    remaining = self._paused_until - self._clock()
                if remaining <= 0:
                    break
                time.sleep(remaining)
            yield

    def pause(self, seconds: float) -> None:
        """Hold every request of this realm for `seconds` (after a 429)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)


_registry_lock = threading.Lock()
_registry: dict[str, RealmPacer] = {}


def pacer_for(realm_id: str) -> RealmPacer:
    """The process-wide pacer of a realm (rebuilt if the limits in settings changed)."""
    limits = Limits.from_settings()
    with _registry_lock:
        pacer = _registry.get(realm_id)
        if pacer is None or pacer.limits != limits:
            pacer = RealmPacer(limits)
            _registry[realm_id] = pacer
        return pacer

"""The per-key rate limit, two ways: a token bucket (the "2 requests per second per key" of
the reference, with a burst) and a strict gateway (nginx ``limit_req`` without ``burst``).

The service does not document how it measures its limit; the gateway is the strictest
common reading, so a client that never gets a 429 from it is safe against the others.
Separate from the HTTP layer so the arithmetic can be tested with a fake clock.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

LIMITERS = ("bucket", "gateway")


class TokenBucketLimiter:
    """One token bucket per API key; capacity ``burst``, refill ``rate`` tokens/s.

    ``rate == 0`` means unlimited. Thread-safe.
    """

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = float(rate)
        self._burst = float(burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill time)

    def configure(self, rate: float, burst: float) -> None:
        """Change rate and capacity; every bucket starts full again."""
        with self._lock:
            self._rate = float(rate)
            self._burst = float(burst)
            self._buckets.clear()

    def reset(self) -> None:
        """Refill every bucket."""
        with self._lock:
            self._buckets.clear()

    def try_acquire(self, key: str, arrived: float | None = None) -> bool:
        """Take one token for ``key``; False if the bucket is empty (``arrived`` is unused)."""
        if self._rate <= 0:
            return True
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(key, (self._burst, now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return True
            self._buckets[key] = (tokens, now)
            return False


class GatewayLimiter:
    """Per key, at most one request per ``1/rate`` seconds, no burst; ``rate == 0``: unlimited.

    Like nginx ``limit_req`` with no ``burst``: a request is measured when its headers
    arrived (``arrived``: the kernel's receive time, wall clock; the clock's reading if not
    given), and refused if it comes less than ``1/rate`` from the last one let through. A
    refused request does not move the window, so a client that keeps knocking early is not
    punished twice. Handler threads may ask out of order: the distance counts either way,
    and the window only moves forward. Thread-safe.
    """

    def __init__(self, rate: float, burst: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        self._rate = float(rate)
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}  # key -> arrival of the last request let through

    def configure(self, rate: float, burst: float = 1.0) -> None:
        """Change the rate (``burst`` is ignored: a gateway has none); forget every key."""
        with self._lock:
            self._rate = float(rate)
            self._last.clear()

    def reset(self) -> None:
        """Forget every key's last request."""
        with self._lock:
            self._last.clear()

    def try_acquire(self, key: str, arrived: float | None = None) -> bool:
        """Let a request of ``key`` through, or refuse it (False) without moving the window."""
        if self._rate <= 0:
            return True
        with self._lock:
            now = self._clock() if arrived is None else arrived
            last = self._last.get(key)
            if last is not None and abs(now - last) < 1.0 / self._rate:
                return False
            self._last[key] = now if last is None else max(last, now)
            return True


Limiter = TokenBucketLimiter | GatewayLimiter


def make_limiter(kind: str, rate: float, burst: float) -> Limiter:
    """The limiter named ``kind`` (one of ``LIMITERS``)."""
    if kind == "gateway":
        return GatewayLimiter(rate)
    if kind == "bucket":
        return TokenBucketLimiter(rate, burst)
    raise ValueError(f"limiter must be one of {', '.join(LIMITERS)}, not {kind!r}")


def retry_after_header(seconds: float) -> str:
    """Format a Retry-After value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))

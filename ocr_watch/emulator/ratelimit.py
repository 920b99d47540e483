"""Per-key token buckets: the "2 requests per second per key" limit of the reference.

Separate from the HTTP layer so its arithmetic can be tested with a fake clock.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


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

    def try_acquire(self, key: str) -> bool:
        """Take one token for ``key``; False if the bucket is empty."""
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


def retry_after_header(seconds: float) -> str:
    """Format a Retry-After value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))

"""What the log says about 429s: each one at debug, a sustained rate of them at warning.

A 429 now and then is the service's bucket and ours disagreeing for an instant; the client
absorbs it (the token bucket slows down, the request goes again) and nobody needs to hear of
it. Many of them mean the configured `api.requests_per_second` is above what the key is
allowed, or another client spends the same key: that is worth a warning. "Sustained" is
`SUSTAINED_COUNT` (10) or more 429s within `WINDOW_S` (60 s): at the default 2 requests a
second, one call in twelve refused for a minute, which the occasional disagreement never
reaches. The warning comes when the threshold is crossed,
then at most once a `WINDOW_S` while it lasts, with the count in the last window.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import structlog

__all__ = ["SUSTAINED_COUNT", "WINDOW_S", "RateLimitLog"]

log = structlog.get_logger("ocr_watch.api")

WINDOW_S = 60.0
SUSTAINED_COUNT = 10


class RateLimitLog:
    """Counts 429s and logs them (see the module docstring)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._recent: deque[float] = deque()
        self._warned_at = float("-inf")
        self.total = 0

    def received(self, kind: str, retry_after: float | None) -> None:
        now = self._clock()
        self.total += 1
        self._recent.append(now)
        while self._recent and self._recent[0] <= now - WINDOW_S:
            self._recent.popleft()
        log.debug("rate_limited", kind=kind, retry_after=retry_after, total=self.total)
        if len(self._recent) >= SUSTAINED_COUNT and now - self._warned_at >= WINDOW_S:
            self._warned_at = now
            log.warning("rate_limited_sustained", count=len(self._recent), window_s=WINDOW_S, total=self.total,
                        hint="the service keeps answering 429: api.requests_per_second may be above the key's "
                             "quota, or another client uses the same key")

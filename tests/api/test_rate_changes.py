"""A reload's new rate reaches the token bucket at once; 429s are counted and logged by rate."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
import structlog

from ocr_watch.api import TokenBucket
from ocr_watch.api.throttled import SUSTAINED_COUNT, WINDOW_S, RateLimitLog

pytestmark = pytest.mark.timeout(30)


def test_a_raised_rate_cuts_short_the_wait_worked_out_at_the_old_one() -> None:
    """At 0.5/s the second token is 2 s away; raised to 50/s, it comes within a few ms."""
    async def scenario() -> float:
        bucket = TokenBucket(0.5)
        await bucket.acquire()
        second = asyncio.ensure_future(bucket.acquire())
        for _ in range(5):
            await asyncio.sleep(0)  # the dispatcher is now asleep for the old rate's 2 s
        assert not second.done()
        started = time.monotonic()
        bucket.set_rate(50)
        await asyncio.wait_for(second, 5)
        assert bucket.rate_per_s == 50 and bucket.effective_rate_per_s == 50
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 0.5


def test_a_lowered_rate_spaces_the_next_grants_at_it() -> None:
    async def scenario() -> list[float]:
        bucket = TokenBucket(100)
        await bucket.acquire()
        bucket.set_rate(10)
        times = []
        for _ in range(3):
            await bucket.acquire()
            times.append(time.monotonic())
        return [b - a for a, b in itertools.pairwise(times)]

    assert all(gap >= 0.09 for gap in asyncio.run(scenario()))


def test_a_rate_cut_by_429s_keeps_its_fraction_of_the_new_ceiling() -> None:
    async def scenario() -> float:
        bucket = TokenBucket(8)
        bucket.penalize(None)  # halves the effective rate: 4
        bucket.set_rate(2)
        return bucket.effective_rate_per_s

    assert asyncio.run(scenario()) == 1.0


class TestRateLimitLog:
    def test_each_429_at_debug_a_sustained_rate_once_a_window_at_warning(self) -> None:
        now = [0.0]
        throttles = RateLimitLog(clock=lambda: now[0])
        with structlog.testing.capture_logs() as logged:
            for _ in range(SUSTAINED_COUNT - 1):
                throttles.received("query", None)
                now[0] += 1
            assert not [e for e in logged if e["log_level"] == "warning"]
            throttles.received("create", 2.0)  # the tenth within the window
            throttles.received("query", None)  # still sustained: no second warning yet
            now[0] += WINDOW_S  # the old ones age out...
            throttles.received("query", None)  # ...one alone is not sustained
        warnings = [e for e in logged if e["log_level"] == "warning"]
        assert [(e["event"], e["count"]) for e in warnings] == [("rate_limited_sustained", SUSTAINED_COUNT)]
        assert [e["event"] for e in logged if e["log_level"] == "debug"] == ["rate_limited"] * (SUSTAINED_COUNT + 2)
        assert throttles.total == SUSTAINED_COUNT + 2

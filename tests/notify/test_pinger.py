"""The watchdog pinger with a real event loop: pings at its interval while the loop answers and
the daemon is healthy; a loop blocked on purpose, or an unhealthy watcher, stops them."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import threading
import time
from collections.abc import Iterator

import pytest
import structlog

from ocr_watch.notify import Notifier, WatchdogPinger
from ocr_watch.testing import NotifyReceiver, wait_for

pytestmark = pytest.mark.timeout(30)

INTERVAL_S = 0.05


@pytest.fixture
def receiver() -> Iterator[NotifyReceiver]:
    made = NotifyReceiver(f"@ocr-watch-test-{secrets.token_hex(6)}")
    yield made
    made.close()


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A real event loop running in a thread of its own, as the daemon's runs in the main one."""
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    yield running
    running.call_soon_threadsafe(running.stop)
    thread.join(5)
    running.close()


def pings(receiver: NotifyReceiver) -> list[float]:
    return [t for t, v in receiver.values("WATCHDOG") if v == "1"]


def test_pings_come_at_the_interval(receiver: NotifyReceiver, loop: asyncio.AbstractEventLoop) -> None:
    pinger = WatchdogPinger(Notifier({"NOTIFY_SOCKET": receiver.address}), INTERVAL_S, loop).start()
    try:
        wait_for(lambda: len(pings(receiver)) >= 11, 10, what="11 pings")
    finally:
        pinger.stop()
    times = pings(receiver)
    gaps = sorted(b - a for a, b in itertools.pairwise(times))
    assert INTERVAL_S * 0.6 <= gaps[len(gaps) // 2] <= INTERVAL_S * 1.6, gaps


def test_a_blocked_loop_stops_the_pings_until_it_answers_again(
        receiver: NotifyReceiver, loop: asyncio.AbstractEventLoop) -> None:
    """The loop is wedged for 0.5 s (10 intervals) by a blocking call on it: no ping in that
    time but the one already earned, a warning, then pings again once it answers."""
    pinger = WatchdogPinger(Notifier({"NOTIFY_SOCKET": receiver.address}), INTERVAL_S, loop).start()
    span: dict[str, float] = {}

    def wedge() -> None:
        span["start"] = time.monotonic()
        time.sleep(0.5)  # the deliberate block: a blocking call on the event loop
        span["end"] = time.monotonic()

    try:
        with structlog.testing.capture_logs() as logged:
            wait_for(lambda: len(pings(receiver)) >= 3, 10, what="pings before the block")
            loop.call_soon_threadsafe(wedge)
            wait_for(lambda: "end" in span, 10, what="the block to end")
            wait_for(lambda: [t for t in pings(receiver) if t > span["end"]], 10, what="a ping after the block")
    finally:
        pinger.stop()
    during = [t for t in pings(receiver) if span["start"] + INTERVAL_S * 1.5 < t < span["end"]]
    assert during == [], "pinged while the loop was blocked"
    assert pinger.withheld >= 3
    assert any(e["event"] == "watchdog_withheld" and "loop" in e["reason"] for e in logged)
    assert any(e["event"] == "watchdog_resumed" for e in logged)


def test_an_unhealthy_watcher_stops_the_pings(receiver: NotifyReceiver, loop: asyncio.AbstractEventLoop) -> None:
    """`healthy()` False (the observer thread died): the loop answers, yet no ping goes."""
    healthy = threading.Event()
    healthy.set()
    pinger = WatchdogPinger(Notifier({"NOTIFY_SOCKET": receiver.address}), INTERVAL_S, loop,
                            healthy=healthy.is_set).start()
    try:
        wait_for(lambda: len(pings(receiver)) >= 2, 10, what="pings while healthy")
        healthy.clear()
        cut = time.monotonic()
        wait_for(lambda: pinger.withheld >= 6, 10, what="six withheld pings")
        after = [t for t in pings(receiver) if t > cut + INTERVAL_S]
    finally:
        pinger.stop()
    assert after == []

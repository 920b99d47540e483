"""`WATCHDOG=1` at half of `WATCHDOG_USEC`, sent only while the daemon is really working.

A ping from a thread that merely exists would keep a wedged daemon alive forever, which is
what systemd's watchdog is there to catch. So each ping is earned: every interval the
pinger thread asks the event loop for a heartbeat (`call_soon_threadsafe` of a callback that
sets an event) and waits for the answer until the next interval is due; only an answer, and
`healthy()` (the daemon passes: the inbox watcher's observer thread is alive), lets the ping
go. A loop stuck in a blocking call, or an observer thread that died, stops the pings, and
systemd kills and restarts the service `WATCHDOG_USEC` after the last one. A heartbeat that
comes late (a loop busy for part of an interval) sends its ping at once when it comes.

`WATCHDOG_PID`, when set, names the process the watchdog is meant for: any other process
(a child that inherited the environment) does not ping.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Mapping

import structlog

from .sdnotify import Notifier

__all__ = ["WatchdogPinger", "watchdog_interval"]

log = structlog.get_logger("ocr_watch.notify")


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between pings (half of `WATCHDOG_USEC`), or None if no watchdog is asked of us."""
    env = os.environ if env is None else env
    owner = env.get("WATCHDOG_PID")
    if owner is not None and owner.strip() != str(os.getpid() if pid is None else pid):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None


class WatchdogPinger:
    """A thread that sends `WATCHDOG=1` every `interval_s` while the loop answers and `healthy()`."""

    def __init__(self, notifier: Notifier, interval_s: float, loop: asyncio.AbstractEventLoop, *,
                 healthy: Callable[[], bool] = lambda: True) -> None:
        self._notifier = notifier
        self._interval_s = interval_s
        self._loop = loop
        self._healthy = healthy
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sd-watchdog", daemon=True)
        self.withheld = 0

    def start(self) -> WatchdogPinger:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        due = time.monotonic()
        withholding: str | None = None
        while not self._stop.is_set():
            due += self._interval_s
            answered = threading.Event()
            try:
                self._loop.call_soon_threadsafe(answered.set)
            except RuntimeError:
                return  # the loop is closed: the daemon is gone
            got = answered.wait(max(0.0, due - time.monotonic()))
            if self._stop.is_set():
                return
            why = None if got else "the event loop did not answer"
            if why is None and not self._healthy():
                why = "the inbox watcher is not running"
            if why is None:
                self._notifier.send("WATCHDOG=1")
                if withholding is not None:
                    log.info("watchdog_resumed", after=withholding)
                    withholding = None
            else:
                self.withheld += 1
                if withholding is None:
                    withholding = why
                    log.warning("watchdog_withheld", reason=why,
                                action="no WATCHDOG=1 until it recovers; systemd restarts us if it does not")
            self._stop.wait(max(0.0, due - time.monotonic()))
            if time.monotonic() - due > self._interval_s:
                due = time.monotonic()  # fell behind (a long stall): restart the cadence from now

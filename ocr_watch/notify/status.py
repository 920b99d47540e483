"""The one-line `STATUS=` systemd shows in `systemctl status`, kept current but throttled.

The daemon offers the line at every change of its counts (many a second under load); a line
that differs from the last one sent goes at once if the last send is at least `every_s` old,
otherwise once that time is up (the newest line then). So systemd sees every resting state
and at most one datagram a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .sdnotify import Notifier

__all__ = ["StatusReporter"]


class StatusReporter:
    """Throttles `STATUS=` lines to one per `every_s`; call `offer` on the loop."""

    def __init__(self, notifier: Notifier, *, every_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._notifier = notifier
        self._every_s = every_s
        self._clock = clock
        self._sent: str | None = None
        self._sent_at = float("-inf")
        self._pending: str | None = None
        self._timer: asyncio.TimerHandle | None = None

    @property
    def line(self) -> str | None:
        """The line sent last."""
        return self._sent

    def offer(self, line: str) -> None:
        if not self._notifier.enabled:
            return
        self._pending = line
        if self._timer is not None:
            return  # the newest line goes when the timer fires
        wait = self._sent_at + self._every_s - self._clock()
        if wait <= 0:
            self._flush()
        else:
            self._timer = asyncio.get_running_loop().call_later(wait, self._flush)

    def _flush(self) -> None:
        self._timer = None
        line, self._pending = self._pending, None
        if line is None or line == self._sent:
            return
        self._notifier.send(f"STATUS={line}")
        self._sent, self._sent_at = line, self._clock()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

"""The uplink: one upload bandwidth shared by every connection (``--upload-bps``).

A real office line carries every upload at once: two uploads each get about half of it. The
emulator reads request bodies as a stream, so the cap is put on that reading: each piece read
waits its turn on one shared schedule, in the order the pieces arrived. Connections then take
turns a piece (64 KiB) at a time, and a client's writes back up as they would on a slow line.
Separate from the HTTP layer so its arithmetic can be tested with a fake clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Uplink"]


class Uplink:
    """Paces the bytes of every request body through one `bytes_per_second` (0: unlimited)."""

    def __init__(self, bytes_per_second: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = time.sleep) -> None:
        self._bps = float(bytes_per_second)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._free_at = 0.0  # when the line has carried every piece handed to it so far

    def configure(self, bytes_per_second: float) -> None:
        with self._lock:
            self._bps = float(bytes_per_second)
            self._free_at = 0.0

    def carried(self, size: int) -> float:
        """Book `size` bytes just read on the line; the seconds until they have crossed it."""
        with self._lock:
            if self._bps <= 0 or size <= 0:
                return 0.0
            now = self._clock()
            self._free_at = max(now, self._free_at) + size / self._bps
            return self._free_at - now

    def take(self, size: int) -> None:
        """Wait until `size` bytes just read have crossed the line (called by the reading thread)."""
        wait = self.carried(size)
        if wait > 0:
            self._sleep(wait)

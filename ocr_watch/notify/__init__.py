"""systemd's notify protocol: readiness, a status line, the watchdog, stop and reload.

A no-op unless systemd (or a test) gives `NOTIFY_SOCKET`; no dependency, a datagram socket.
Leaf package: imports nothing else of ours.
"""

from .pinger import WatchdogPinger, watchdog_interval
from .sdnotify import Notifier, monotonic_usec
from .status import StatusReporter

__all__ = ["Notifier", "StatusReporter", "WatchdogPinger", "monotonic_usec", "watchdog_interval"]

"""Send sd_notify messages to the socket systemd names in `NOTIFY_SOCKET`.

The protocol is a datagram of `KEY=value` lines to an AF_UNIX socket: a path, or an
abstract-namespace name written with a leading `@` (systemd's own notation). Without
`NOTIFY_SOCKET` every send does nothing, so `run` behaves the same outside systemd.

A send never raises and never holds the caller for long (the socket has a short timeout):
a lost notification costs systemd's view of us, never a file. Its first failure is logged,
then every hundredth, so a vanished socket does not flood the log. Safe from any thread
(the watchdog pinger sends from its own).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Mapping

import structlog

__all__ = ["Notifier", "monotonic_usec"]

log = structlog.get_logger("ocr_watch.notify")

SEND_TIMEOUT_S = 0.5


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, as `RELOADING=1` wants it in `MONOTONIC_USEC`."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _address(value: str) -> str | None:
    """The socket address for `NOTIFY_SOCKET`'s value; None for one we cannot use."""
    if value.startswith("@"):
        return "\0" + value[1:]  # the abstract namespace
    if value.startswith("/"):
        return value
    return None  # e.g. systemd's vsock: addresses, for VMs; not ours to speak


class Notifier:
    """Sends to `NOTIFY_SOCKET` (read once, from `env`); `enabled` False: sends nothing."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET", "")
        self._address = _address(raw) if raw else None
        if raw and self._address is None:
            log.warning("notify_socket_unsupported", notify_socket=raw)
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._failures = 0

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *lines: str) -> bool:
        """Send one datagram of `lines`; whether it went (always False when not enabled)."""
        if self._address is None:
            return False
        data = "\n".join(lines).encode()
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                    self._sock.settimeout(SEND_TIMEOUT_S)
                self._sock.sendto(data, self._address)
                return True
            except OSError as exc:
                self._failures += 1
                failures, error = self._failures, str(exc)
        if failures % 100 == 1:
            log.warning("notify_failed", message=lines[0], error=error, failures=failures)
        return False

    def ready(self, status: str | None = None) -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def reloading(self) -> None:
        self.send("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}")

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

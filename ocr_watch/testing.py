"""What the tests and the benchmarks share: a deadline wait, test files, folders and a config,
and the real daemon as a subprocess with its JSON log.

It ships in the package (as `structlog.testing` does) because the benchmarks, which are
scripts and never import the test tree, need the same plumbing as the end-to-end tests; before
it, `bench/_harness.py` had its own copy of each. Nothing here imports pytest, and everything
talks to 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pty
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

__all__ = ["EMU_KEY", "PNG", "Daemon", "DaemonProcess", "Folders", "NotifyReceiver", "Workspace", "free_port",
           "json_log", "once_on_a_terminal", "png_bytes", "restore_logging", "sha256", "wait_for"]

PNG = b"\x89PNG\r\n\x1a\n"
EMU_KEY = "emu-key"  # the key the tests' emulators accept
T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@contextmanager
def json_log(secrets: list[str]) -> Iterator[io.StringIO]:
    """The daemon's JSON log into a string, `secrets` redacted; the process's logging as it was after."""
    import logging

    import structlog

    from ocr_watch import logs

    root = logging.getLogger()
    handlers, level, hook, unraisable = list(root.handlers), root.level, threading.excepthook, sys.unraisablehook
    out = io.StringIO()
    logs.configure("info", secrets=secrets, json=True, stream=out)
    try:
        yield out
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        threading.excepthook = hook
        sys.unraisablehook = unraisable
        logging.captureWarnings(False)
        structlog.reset_defaults()


def restore_logging() -> None:
    """After `cli.main` ran in the test's own process (it configures logging for the process):
    logging as pytest had it."""
    import logging

    import structlog

    from ocr_watch.logs import StdlibHandler

    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, StdlibHandler)]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    threading.excepthook = threading.__excepthook__
    logging.captureWarnings(False)
    structlog.reset_defaults()


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def png_bytes(n: int, size: int = 200) -> bytes:
    """A distinct 'PNG' per n (the emulator sniffs the magic; the rest is payload)."""
    body = f"image number {n}\n".encode() * (size // 16 + 1)
    return PNG + body[:size]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def once_on_a_terminal(config: Path, timeout: float = 60.0) -> tuple[int, bytes]:
    """`ocr-watch once` with stderr on a pty: its exit code and everything it drew there."""
    leader, follower = pty.openpty()
    try:
        result = subprocess.run([sys.executable, "-m", "ocr_watch", "once", "--config", str(config)],
                                stderr=follower, stdout=subprocess.DEVNULL, timeout=timeout)
        os.close(follower)
        follower = -1
        screen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every writer has closed the pty
                break
            if not chunk:
                break
            screen += chunk
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    return result.returncode, screen


class Folders:
    """inbox, outbox, quarantine and archive under one root, and the daemon's config there."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    def write_yaml(self, base: dict[str, Any], sections: dict[str, Any]) -> dict[str, Any]:
        """Write `base` with `sections` merged over it (a dict section updates, a value replaces)."""
        config = {key: dict(value) if isinstance(value, dict) else value for key, value in base.items()}
        for key, value in sections.items():
            if isinstance(value, dict):
                config.setdefault(key, {}).update(value)
            else:
                config[key] = value
        self.config_path.write_text(yaml.safe_dump(config))
        return config

    def files(self, folder: Path) -> list[str]:
        """Every file below `folder`, relative and sorted ([] if it does not exist)."""
        if not folder.exists():
            return []
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@dataclass
class Workspace(Folders):
    """The folders of one test (`root`, its inbox made by the caller) and a config with the
    tests' defaults: an emulator at `base_url` taking `EMU_KEY`, fast polls, short waits."""

    root: Path
    base_url: str
    overrides: dict[str, Any] = field(default_factory=dict)

    def write_config(self, **sections: Any) -> Path:
        self.write_yaml({
            "folders": {"inbox": "inbox", "outbox": "outbox", "quarantine": "quarantine"},
            "api": {"base_url": self.base_url, "key": EMU_KEY, "requests_per_second": 50},
            "poll": {"interval_seconds": 0.1, "timeout_seconds": 60},
            "watch": {"settle_seconds": 0.2, "rescan_seconds": 0},
            "retry": {"backoff_initial_seconds": 0.1, "backoff_max_seconds": 1},
        }, sections)
        return self.config_path

    def drop(self, rel: str, data: bytes) -> Path:
        """Write a file into the inbox the way a scanner does: a temp name, then a rename."""
        dest = self.inbox / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, dest)
        return dest


class DaemonProcess:
    """`python -m ocr_watch COMMAND --config FILE` with its stderr (JSON lines) in a file."""

    def __init__(self, config: Path, log_path: Path, *, command: str = "run", cwd: Path | None = None,
                 prefix: Iterable[str] = ()) -> None:
        self.config = config
        self.log_path = log_path
        self.command = command
        self.cwd = cwd
        self.prefix = list(prefix)  # e.g. setpriv ..., to run it with fewer powers
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", "ocr_watch", self.command, "--config", str(self.config)],
                stdout=subprocess.DEVNULL, stderr=log, cwd=self.cwd, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def events(self) -> list[dict[str, Any]]:
        """Every log line so far, parsed; a line that is not JSON is kept as `unparsed`."""
        lines = self.log_path.read_text(errors="replace").splitlines() if self.log_path.exists() else []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                out.append({"event": "unparsed", "text": line})
        return out

    def wait_event(self, name: str, timeout: float = 20.0, count: int = 1) -> list[dict[str, Any]]:
        """The events named `name` once there are `count` of them (the last `count`)."""
        return wait_for(lambda: [e for e in self.events() if e.get("event") == name][count - 1:],
                        timeout, what=f"log event {name} x{count}")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then its exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout: float = 40.0) -> int | None:
        """SIGTERM if running, SIGKILL past `timeout`; its exit code (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def stop_quietly(self) -> None:
        """Kill it if it still runs (a test's teardown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


Daemon = DaemonProcess  # the name the end-to-end tests use


class NotifyReceiver:
    """A datagram socket standing in for systemd's `NOTIFY_SOCKET`: it records every
    notification with the monotonic time it arrived. `address`: a path, or `@name` for the
    abstract namespace (as systemd writes it). Read promptly by its own thread, as systemd
    does: a unix datagram socket's queue is short, and a sender would wait on a full one."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self._sock.settimeout(0.1)
        self._lock = threading.Lock()
        self._received: list[tuple[float, str]] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, name="notify-receiver", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._received.append((time.monotonic(), data.decode()))

    @property
    def datagrams(self) -> list[tuple[float, str]]:
        with self._lock:
            return list(self._received)

    def values(self, key: str) -> list[tuple[float, str]]:
        """(arrival, value) of every `key=value` line received, in order."""
        return [(t, line.split("=", 1)[1]) for t, data in self.datagrams for line in data.split("\n")
                if line.startswith(key + "=")]

    def wait(self, key: str, value: str | None = None, timeout: float = 20.0, count: int = 1) -> float:
        """When the `count`-th `key=value` line (any value if None) arrived."""
        def arrived() -> float:
            times = [t for t, v in self.values(key) if value is None or v == value]
            return times[count - 1] if len(times) >= count else 0.0  # 0.0: not yet (a time never is)
        return wait_for(arrived, timeout, what=f"notification {key}={value or '*'} x{count}")

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        self._sock.close()

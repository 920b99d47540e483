"""A real `ocr-watch run` in a subprocess, real folders, the emulator on loopback."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from ocr_watch.emulator import Emulator
from tests.conftest import EMU_KEY, wait_for

PNG = b"\x89PNG\r\n\x1a\n"


def png_bytes(n: int, size: int = 200) -> bytes:
    """A distinct 'PNG' per n (the emulator sniffs the magic; the rest is payload)."""
    body = f"image number {n}\n".encode() * (size // 16 + 1)
    return PNG + body[:size]


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Workspace:
    root: Path
    base_url: str
    overrides: dict[str, Any] = field(default_factory=dict)

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

    def write_config(self, **sections: Any) -> Path:
        config: dict[str, Any] = {
            "folders": {"inbox": "inbox", "outbox": "outbox", "quarantine": "quarantine"},
            "api": {"base_url": self.base_url, "key": EMU_KEY, "requests_per_second": 50},
            "poll": {"interval_seconds": 0.1, "timeout_seconds": 60},
            "watch": {"settle_seconds": 0.2, "rescan_seconds": 0},
            "retry": {"backoff_initial_seconds": 0.1, "backoff_max_seconds": 1},
        }
        for key, value in sections.items():
            if isinstance(value, dict):
                config.setdefault(key, {}).update(value)
            else:
                config[key] = value
        self.config_path.write_text(yaml.safe_dump(config))
        return self.config_path

    def drop(self, rel: str, data: bytes) -> Path:
        """Write a file into the inbox the way a scanner does: a temp name, then a rename."""
        dest = self.inbox / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, dest)
        return dest

    def files(self, folder: Path) -> list[str]:
        if not folder.exists():
            return []
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


class Daemon:
    """`python -m ocr_watch run` with its JSON log lines in a file."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ocr_watch", "run", "--config", str(self.config)],
            stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        return self

    def events(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_text(errors="replace").splitlines() if self.log_path.exists() else []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                out.append({"event": "unparsed", "text": line})
        return out

    def wait_event(self, name: str, timeout: float = 20.0, count: int = 1) -> list[dict[str, Any]]:
        return wait_for(lambda: [e for e in self.events() if e.get("event") == name][count - 1:] or None,
                        timeout, what=f"log event {name} x{count}")

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop_quietly(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def workspace(tmp_path: Path, emulator: Emulator) -> Workspace:
    ws = Workspace(tmp_path, emulator.base_url)
    ws.inbox.mkdir()
    return ws


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[[Path], Daemon]]:
    made: list[Daemon] = []

    def make(config: Path) -> Daemon:
        daemon = Daemon(config, tmp_path / "daemon.log")
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.stop_quietly()

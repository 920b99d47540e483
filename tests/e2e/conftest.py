"""Fixtures for the end-to-end tests: a workspace by the emulator, daemons stopped at teardown.

The plumbing (Workspace, Daemon, png_bytes, ...) is `ocr_watch.testing`, shared with the
benchmarks; tests import it from there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ocr_watch.emulator import Emulator
from ocr_watch.testing import Daemon, Workspace


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

"""`ocr-watch once`: the same code path as `run`, with exit codes a script can act on."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest

from ocr_watch.emulator import Emulator
from tests.e2e.conftest import Workspace, png_bytes

pytestmark = pytest.mark.timeout(60)


def _once(workspace: Workspace, **popen: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "ocr_watch", "once", "--config", str(workspace.config_path)],
                          timeout=45, **popen)  # type: ignore[call-overload]


def test_once_exits_0_when_every_file_succeeded(workspace: Workspace) -> None:
    workspace.write_config()
    for n in range(3):
        workspace.drop(f"d{n}.png", png_bytes(n))
    assert _once(workspace, capture_output=True).returncode == 0
    assert workspace.files(workspace.outbox) == ["d0.txt", "d1.txt", "d2.txt"]
    assert workspace.files(workspace.inbox) == []


def test_once_exits_1_when_a_file_went_to_quarantine(workspace: Workspace) -> None:
    workspace.write_config()
    workspace.drop("good.png", png_bytes(1))
    workspace.drop("bad.png", b"not an image")
    assert _once(workspace, capture_output=True).returncode == 1
    assert workspace.files(workspace.outbox) == ["good.txt"]
    assert workspace.files(workspace.quarantine) == ["bad.png", "bad.png.error.json"]


def test_once_exits_3_and_leaves_the_files_when_the_key_is_refused(workspace: Workspace, emulator: Emulator) -> None:
    workspace.write_config(api={"key": "not-the-right-key"})
    workspace.drop("kept.png", png_bytes(1))
    result = _once(workspace, capture_output=True)
    assert result.returncode == 3
    assert b"refused the account" in result.stderr and b"not-the-right-key" not in result.stderr
    assert workspace.files(workspace.inbox) == ["kept.png"]
    assert workspace.files(workspace.quarantine) == []
    assert emulator.stats()["create_requests"] == 1


def test_once_draws_a_progress_bar_on_a_terminal(workspace: Workspace) -> None:
    workspace.write_config(log_level="warning")
    for n in range(2):
        workspace.drop(f"p{n}.png", png_bytes(n))
    leader, follower = pty.openpty()
    try:
        result = _once(workspace, stderr=follower, stdout=subprocess.DEVNULL)
        os.close(follower)
        follower = -1
        screen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    assert result.returncode == 0
    assert b"\r[" in screen and b"2/2 finished: 2 done, 0 quarantined" in screen

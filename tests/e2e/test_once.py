"""`ocr-watch once`: the same code path as `run`, with exit codes a script can act on."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from ocr_watch.emulator import Emulator
from ocr_watch.testing import Daemon, Workspace, free_port, once_on_a_terminal, png_bytes


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
    code, screen = once_on_a_terminal(workspace.config_path)
    assert code == 0
    assert b"\r\x1b[K[" in screen and b"2/2 finished: 2 done, 0 quarantined" in screen


def test_once_with_a_timeout_and_the_service_down_exits_75_within_seconds(workspace: Workspace) -> None:
    """A cron job never hangs: --timeout stops as SIGTERM does, and says what is left."""
    workspace.write_config(api={"base_url": f"http://127.0.0.1:{free_port()}"})
    for n in range(2):
        workspace.drop(f"w{n}.png", png_bytes(n))
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "ocr_watch", "once", "--config", str(workspace.config_path),
                             "--timeout", "5"], capture_output=True, timeout=45)
    assert result.returncode == 75, result.stderr[-2000:]
    assert time.monotonic() - started < 25
    (summary,) = [json.loads(ln) for ln in result.stderr.splitlines() if b"once_unfinished" in ln]
    assert summary["unfinished"] == 2 and summary["stopped_by"] == "timeout"
    assert workspace.files(workspace.inbox) == ["w0.png", "w1.png"]


def test_once_stopped_by_sigterm_with_files_left_exits_75_and_the_next_run_finishes(
    workspace: Workspace, emulator: Emulator
) -> None:
    workspace.write_config()
    workspace.drop("long__seconds_4__.png", png_bytes(1))  # the emulator takes 4 s over this one
    assert _once_until_created_then_sigterm(workspace) == 75
    assert _once(workspace, capture_output=True).returncode == 0
    assert workspace.files(workspace.outbox) == ["long__seconds_4__.txt"]
    assert emulator.stats()["creates"] == 1, "the next run polled the task it had, not a new one"


def _once_until_created_then_sigterm(workspace: Workspace) -> int:
    """`once` in the background, stopped by SIGTERM once a task exists; its exit code."""
    once = Daemon(workspace.config_path, workspace.root / "once.log", command="once").start()
    try:
        once.wait_event("task_created", 30)
        return once.terminate()
    finally:
        once.stop_quietly()


def test_once_on_running_out_of_credits_finishes_what_was_paid_then_exits_3(
    workspace: Workspace, emulator: Emulator
) -> None:
    """A task already paid for is fetched before once gives up on the file it cannot pay for."""
    workspace.write_config()
    workspace.drop("paid__seconds_5__.png", png_bytes(1))  # the emulator takes 5 s over this one
    assert _once_until_created_then_sigterm(workspace) == 75
    emulator.update(credits=0)
    workspace.drop("unpaid.png", png_bytes(2))
    result = _once(workspace, capture_output=True)
    assert result.returncode == 3, result.stderr[-2000:]
    assert workspace.files(workspace.outbox) == ["paid__seconds_5__.txt"]
    assert workspace.files(workspace.inbox) == ["unpaid.png"] and workspace.files(workspace.quarantine) == []
    assert b"no credits" in result.stderr

"""`ocr-watch demo`: the emulator and the daemon on a fresh folder, from one command.

The real command as a subprocess: what it prints is read for the folders, a file copied into
the inbox it names must come out in the outbox it names, and Ctrl-C (SIGINT) must end it with
exit 0 and its daemon gone. A second demo on the same folder must refuse, not disturb it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocr_watch.testing import png_bytes, sha256, wait_for

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

EXIT_BUSY = 75
STARTED: list[Path] = []  # every demo folder, so a teardown can find a daemon a failed test left


def start_demo(folder: Path, log: Path) -> subprocess.Popen[str]:
    STARTED.append(folder)
    with log.open("a") as err:
        return subprocess.Popen([sys.executable, "-m", "ocr_watch", "demo", "--dir", str(folder)],
                                stdout=subprocess.PIPE, stderr=err, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


def printed_folders(demo: subprocess.Popen[str]) -> dict[str, Path]:
    """The folders its greeting names, read up to the line that ends it."""
    assert demo.stdout is not None
    text = ""
    for line in demo.stdout:
        text += line
        if line.startswith("Ctrl-C"):
            break
    folders = {label: Path(path) for label, path in re.findall(r"^  (.+?):\s+(/\S+)$", text, re.M)}
    assert "does not really read text" in text, text
    return folders


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def demos() -> Iterator[list[subprocess.Popen[str]]]:
    """Demos stopped at teardown as Ctrl-C would, and any daemon of theirs still alive killed."""
    made: list[subprocess.Popen[str]] = []
    yield made
    for demo in made:
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(60)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait(10)
    for folder in STARTED:
        lock = folder / ".ocr-watch" / "inbox" / "lock"
        text = lock.read_text().strip() if lock.is_file() else ""
        cmdline = Path(f"/proc/{text}/cmdline") if text.isdigit() else None
        if cmdline and cmdline.exists() and str(folder).encode() in cmdline.read_bytes():
            os.kill(int(text), signal.SIGKILL)
    STARTED.clear()


def test_a_file_dropped_where_the_demo_says_comes_out_and_ctrl_c_ends_it_all(
        tmp_path: Path, demos: list[subprocess.Popen[str]]) -> None:
    folder = tmp_path / "fresh" / "demo"
    demo = start_demo(folder, tmp_path / "demo.log")
    demos.append(demo)
    printed = printed_folders(demo)
    inbox, outbox = printed["Drop files (pdf, png, jpg, docx, ...) into"], printed["Results appear in"]
    assert (inbox, outbox) == (folder / "inbox", folder / "outbox")
    assert (folder / "quarantine").is_dir() and (folder / "archive").is_dir()
    config = (folder / "config.yaml").read_text()
    assert re.search(r"base_url: http://127\.0\.0\.1:\d+\n", config) and "\n# " in config

    scan = tmp_path / "scan.png"
    scan.write_bytes(png_bytes(1))
    shutil.copy(scan, inbox / "scan.png")
    result = wait_for(lambda: (outbox / "scan.txt").is_file() and (outbox / "scan.txt").read_text(), 30,
                      what="the result in the printed outbox")
    assert f"source_sha256: {sha256(png_bytes(1))}" in result
    assert wait_for(lambda: (folder / "archive" / "scan.png").is_file(), 10, what="the source archived")

    # The daemon is the demo's child, and holds the state_dir's lock with its pid in it.
    lock = folder / ".ocr-watch" / "inbox" / "lock"
    daemon_pid = int(wait_for(lambda: lock.is_file() and lock.read_text().strip(), 10, what="the daemon's pid"))
    assert Path(f"/proc/{daemon_pid}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(demo.pid)

    # A second demo on the same folder refuses at once and leaves the first one's config alone.
    second = start_demo(folder, tmp_path / "second.log")
    demos.append(second)
    assert second.wait(30) == EXIT_BUSY
    assert "another demo is running on" in (tmp_path / "second.log").read_text()
    assert (folder / "config.yaml").read_text() == config and alive(daemon_pid)

    demo.send_signal(signal.SIGINT)
    assert demo.wait(60) == 0
    assert not alive(daemon_pid), "the daemon outlived the demo"
    log = (tmp_path / "demo.log").read_text()
    assert '"event": "stopped"' in log and "Traceback" not in log


def test_a_closed_terminal_stops_the_demo_and_its_daemon(tmp_path: Path, demos: list[subprocess.Popen[str]]) -> None:
    """SIGHUP: the daemon is in a session of its own, so only the demo can stop it."""
    demo = start_demo(tmp_path / "demo", tmp_path / "demo.log")
    demos.append(demo)
    printed_folders(demo)
    wait_for(lambda: '"event": "watching"' in (tmp_path / "demo.log").read_text(), 20, what="the daemon watching")
    daemon_pid = int((tmp_path / "demo" / ".ocr-watch" / "inbox" / "lock").read_text())
    demo.send_signal(signal.SIGHUP)
    assert demo.wait(60) == 0
    assert not alive(daemon_pid), "the daemon outlived the demo"

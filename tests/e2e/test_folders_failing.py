"""Our own folders failing is an outage, not a file's fault: files wait and go on when fixed.

Root ignores permission bits, so the daemon runs as root *without* the capabilities that let
it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH dropped from its bounding set by `setpriv`): it
then obeys a folder's mode like any service account. (Running it as `nobody` would do the
same, but this machine's interpreter lives under /root, which only root may enter.) The test
process keeps its powers, to look into every folder and to fix them.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ocr_watch.emulator import Emulator, render_result
from ocr_watch.testing import Daemon, Workspace, png_bytes, sha256, wait_for

NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def _can_drop_root_powers() -> str | None:
    """Why these tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root, to run the daemon without its permission overrides (and to fix folders)"
    if shutil.which("setpriv") is None:
        return "needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE"
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp).chmod(0o555)
        probe = subprocess.run([*NO_DAC, sys.executable, "-c", f"open({tmp + '/x'!r}, 'w')"], capture_output=True)
    if probe.returncode == 0 or b"PermissionError" not in probe.stderr:
        return f"could not drop CAP_DAC_OVERRIDE here: {probe.stderr.decode(errors='replace')[-200:]}"
    return None


_SKIP = _can_drop_root_powers()
pytestmark = [pytest.mark.timeout(150), pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")]


class UnprivilegedDaemon(Daemon):
    """`ocr-watch run` that, though root, obeys permission bits."""

    def __init__(self, config: Path, log_path: Path, command: str = "run") -> None:
        super().__init__(config, log_path, command=command, prefix=NO_DAC)

    def folder_failures(self, folder: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == "folder_failing" and e.get("folder") == folder]


@pytest.fixture
def unprivileged(tmp_path: Path) -> Iterator[Callable[..., UnprivilegedDaemon]]:
    made: list[UnprivilegedDaemon] = []

    def make(config: Path, command: str = "run") -> UnprivilegedDaemon:
        daemon = UnprivilegedDaemon(config, tmp_path / "daemon.log", command)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.stop_quietly()
    for path in tmp_path.rglob("*"):  # let pytest clean up what a test left read-only
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)


def journal_rows(workspace: Workspace) -> dict[str, dict[str, Any]]:
    """The journal as the daemon wrote it, read-only: rel -> latest row."""
    path = workspace.root / ".ocr-watch" / "inbox" / "journal.sqlite3"  # the default state_dir
    if not path.exists():
        return {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        return {row["rel"]: dict(row) for row in db.execute("SELECT * FROM files ORDER BY id")}


def states(workspace: Workspace) -> dict[str, str]:
    return {rel: row["state"] for rel, row in journal_rows(workspace).items()}


def report(workspace: Workspace, rel: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((workspace.quarantine / f"{rel}.error.json").read_text())
    return data


def assert_log_is_bounded(daemon: UnprivilegedDaemon, folder: str) -> None:
    """First failure, then every 10th (or once a minute): not a line per retry."""
    lines = daemon.folder_failures(folder)
    assert lines, f"no folder_failing line for {folder}"
    assert all(line["path"].endswith(folder) and line["error"] for line in lines)
    most = max(line["failures"] for line in lines)
    assert len(lines) <= 1 + most // 10, (len(lines), most)


def test_a_read_only_quarantine_holds_failures_until_it_is_writable_with_no_restart(
    workspace: Workspace, emulator: Emulator, unprivileged: Callable[..., UnprivilegedDaemon]
) -> None:
    daemon = unprivileged(workspace.write_config()).start()
    daemon.wait_event("watching", 30)
    workspace.quarantine.chmod(0o555)  # broken while running (start-up refuses a read-only one)
    workspace.drop("notes.xyz", b"hello")  # refused at intake, no API call
    workspace.drop("sub/broken.png", b"this is not an image")  # the service fails the task
    workspace.drop("good.png", png_bytes(1))
    # Meanwhile the other files go on.
    wait_for(lambda: (workspace.archive / "good.png").exists(), 60, what="the good file done meanwhile")
    wait_for(lambda: states(workspace).get("notes.xyz") == "quarantining"
             and states(workspace).get("sub/broken.png") == "quarantining", 60, what="both failures waiting")
    assert workspace.files(workspace.quarantine) == []
    assert workspace.files(workspace.inbox) == ["notes.xyz", "sub/broken.png"], "nothing lost meanwhile"

    workspace.quarantine.chmod(0o755)
    expected = ["notes.xyz", "notes.xyz.error.json", "sub/broken.png", "sub/broken.png.error.json"]
    wait_for(lambda: workspace.files(workspace.quarantine) == expected, 60, what="both quarantined after the fix")
    assert daemon.proc is not None and daemon.proc.poll() is None, "no restart"
    assert "'.xyz'" in report(workspace, "notes.xyz")["reason"]
    broken = report(workspace, "sub/broken.png")
    assert broken["stage"] == "poll" and broken["last_task_state"] == -7
    assert workspace.files(workspace.inbox) == []
    daemon.wait_event("folder_working_again", 30)
    assert_log_is_bounded(daemon, "quarantine")
    # Slots were released: a new failure goes straight through.
    workspace.drop("later.xyz", b"again")
    wait_for(lambda: (workspace.quarantine / "later.xyz.error.json").exists(), 60, what="a later failure")
    assert emulator.stats()["creates"] == 2
    assert set(states(workspace).values()) <= {"done", "quarantined"}
    assert daemon.terminate() == 0


def test_an_outbox_folder_that_cannot_be_written_makes_files_wait_not_quarantined(
    workspace: Workspace, emulator: Emulator, unprivileged: Callable[..., UnprivilegedDaemon]
) -> None:
    """A new subfolder cannot be made, an existing one cannot be entered, the top cannot be
    written: all three wait for their paid results, and get them once the outbox is fixed."""
    daemon = unprivileged(workspace.write_config()).start()
    daemon.wait_event("watching", 30)
    (workspace.outbox / "locked").mkdir()
    (workspace.outbox / "locked").chmod(0)
    workspace.outbox.chmod(0o555)
    files = {"sub/deep.png": png_bytes(1), "locked/inner.png": png_bytes(2), "top.png": png_bytes(3)}
    for rel, data in files.items():
        workspace.drop(rel, data)
    wait_for(lambda: all(journal_rows(workspace).get(rel, {}).get("last_stage") == "output" for rel in files)
             or None, 60, what="every download refused by the outbox")
    assert set(states(workspace).values()) == {"downloading"}
    assert workspace.files(workspace.quarantine) == []

    (workspace.outbox / "locked").chmod(0o755)
    workspace.outbox.chmod(0o755)
    wait_for(lambda: len(workspace.files(workspace.archive)) == 3, 60, what="all three done after the fix")
    assert daemon.proc is not None and daemon.proc.poll() is None, "no restart"
    for rel, data in files.items():
        out = workspace.outbox / rel.replace(".png", ".txt")
        assert out.read_bytes() == render_result(sha256(data), Path(rel).name, "txt")
    assert workspace.files(workspace.quarantine) == []
    stats = emulator.stats()
    assert stats["creates"] == 3 and set(stats["tasks_by_sha256"].values()) == {1}
    daemon.wait_event("folder_working_again", 30)
    assert_log_is_bounded(daemon, "outbox")
    assert daemon.terminate() == 0


def test_an_archive_that_cannot_be_written_is_waited_for_and_the_sources_end_there(
    workspace: Workspace, emulator: Emulator, unprivileged: Callable[..., UnprivilegedDaemon]
) -> None:
    daemon = unprivileged(workspace.write_config()).start()
    daemon.wait_event("watching", 30)
    workspace.archive.chmod(0o555)
    files = {"a.png": png_bytes(1), "sub/b.png": png_bytes(2)}
    for rel, data in files.items():
        workspace.drop(rel, data)
    wait_for(lambda: workspace.files(workspace.outbox) == ["a.txt", "sub/b.txt"], 60, what="outputs written")
    wait_for(lambda: (len(states(workspace)) == 2 and set(states(workspace).values()) <= {"finishing", "done"})
             or None, 30, what="both past their download")
    time.sleep(1.0)  # the scenario: the archive stays broken a while (retries back off to 1 s)
    assert set(states(workspace).values()) == {"finishing"}, "a file gave up on the archive"
    assert workspace.files(workspace.inbox) == ["a.png", "sub/b.png"]

    workspace.archive.chmod(0o755)
    wait_for(lambda: workspace.files(workspace.archive) == ["a.png", "sub/b.png"], 60, what="sources archived")
    assert daemon.proc is not None and daemon.proc.poll() is None, "no restart"
    assert workspace.files(workspace.inbox) == []
    for rel, data in files.items():
        assert (workspace.archive / rel).read_bytes() == data
    wait_for(lambda: set(states(workspace).values()) == {"done"} or None, 30, what="rows done")
    assert all(row["last_error"] is None for row in journal_rows(workspace).values())
    stats = emulator.stats()
    assert stats["creates"] == 2 and stats["downloads"] == 2
    assert_log_is_bounded(daemon, "archive")
    assert daemon.terminate() == 0


def test_a_stop_while_waiting_for_a_folder_is_prompt_and_the_next_start_resumes(
    workspace: Workspace, emulator: Emulator, unprivileged: Callable[..., UnprivilegedDaemon]
) -> None:
    config = workspace.write_config()
    daemon = unprivileged(config).start()
    daemon.wait_event("watching", 30)
    workspace.outbox.chmod(0o555)
    data = png_bytes(4)
    workspace.drop("x.png", data)
    wait_for(lambda: journal_rows(workspace).get("x.png", {}).get("last_stage") == "output" or None,
             60, what="the download waiting")
    started = time.monotonic()
    assert daemon.terminate() == 0
    assert time.monotonic() - started < 10, "the stop waited for the retry loop (grace is 20 s)"
    assert states(workspace) == {"x.png": "downloading"}

    workspace.outbox.chmod(0o755)
    again = unprivileged(config).start()
    wait_for(lambda: (workspace.archive / "x.png").exists(), 60, what="resumed and done")
    assert (workspace.outbox / "x.txt").read_bytes() == render_result(sha256(data), "x.png", "txt")
    assert emulator.stats()["creates"] == 1
    assert again.terminate() == 0


def test_a_file_that_cannot_be_quarantined_at_all_does_not_hold_once(
    workspace: Workspace, unprivileged: Callable[..., UnprivilegedDaemon]
) -> None:
    """A 250-byte unsupported name: its report name is longer than the folder allows (unless
    names are shortened). Either way `once` ends, and the file is not lost."""
    name = "n" * 246 + ".xyz"
    workspace.write_config()
    workspace.drop(name, b"hello")
    workspace.drop("good.png", png_bytes(5))
    once = unprivileged(workspace.config_path, "once").start()
    assert once.proc is not None
    assert once.proc.wait(60) == 1
    assert (workspace.outbox / "good.txt").exists()
    assert states(workspace) == {name: "quarantined", "good.png": "done"}
    in_quarantine = [f for f in workspace.files(workspace.quarantine) if not f.endswith(".error.json")]
    left = workspace.files(workspace.inbox)
    assert (left, len(in_quarantine)) in (([name], 0), ([], 1)), (left, in_quarantine)
    if left:
        assert [e for e in once.events() if e.get("event") == "quarantine_failed" and e.get("file") == name]

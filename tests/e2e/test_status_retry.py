"""`ocr-watch status` and `ocr-watch retry` beside the real daemon (issue 17)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ocr_watch.emulator import Emulator
from ocr_watch.testing import Workspace, png_bytes, wait_for


def _cli(workspace: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ocr_watch", args[0], "--config", str(workspace.config_path),
                           *args[1:]], capture_output=True, text=True, timeout=30)


def _status(workspace: Workspace) -> dict[str, Any]:
    result = _cli(workspace, "status", "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _journal_counts(workspace: Workspace) -> dict[str, int]:
    journal = next(workspace.root.glob(".ocr-watch/*/journal.sqlite3"))
    with sqlite3.connect(journal) as db:
        return dict(db.execute("SELECT state, COUNT(*) FROM files GROUP BY state").fetchall())


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {state: n for state, n in counts.items() if n}


def _quarantined_in_folder(workspace: Workspace) -> list[str]:
    return [f for f in workspace.files(workspace.quarantine) if not f.endswith(".error.json")]


@pytest.mark.slow
def test_status_json_matches_the_journal_during_a_run_and_the_folders_after(
    workspace: Workspace, emulator: Emulator, daemon_factory: Any
) -> None:
    workspace.write_config()
    workspace.drop("a/fast.png", png_bytes(1))
    workspace.drop("slow__seconds_6__.png", png_bytes(2))  # the emulator takes 6 s over this one
    workspace.drop("bad.png", b"not an image")  # the service fails it: quarantine
    daemon = daemon_factory(workspace.config_path).start()
    wait_for(lambda: "a/fast.txt" in workspace.files(workspace.outbox)
             and _quarantined_in_folder(workspace) == ["bad.png"], 20, what="fast done, bad quarantined")

    during = _status(workspace)
    assert during["running"] is True and during["pid"] == daemon.pid
    assert _nonzero(during["counts"]) == _journal_counts(workspace) == {"done": 1, "quarantined": 1, "polling": 1}
    assert during["oldest_waiting"]["path"] == "slow__seconds_6__.png"
    assert during["oldest_waiting"]["state"] == "polling"
    (bad,) = during["quarantined"]
    assert bad["path"] == "bad.png" and bad["stage"] == "poll" and "corrupt" in bad["reason"]
    assert bad["failed_at"].endswith("Z")
    assert during["credits_spent"] == emulator.stats()["credits_spent"] == 1
    assert during["possible_double_charges"] == 0

    wait_for(lambda: "slow__seconds_6__.txt" in workspace.files(workspace.outbox), 20, what="slow file done")
    wait_for(lambda: _status(workspace)["counts"]["done"] == 2, 10, what="status sees the slow file done")
    assert daemon.terminate() == 0
    after = _status(workspace)
    assert after["running"] is False and after["pid"] is None
    assert after["counts"]["done"] == len(workspace.files(workspace.outbox)) == 2
    assert [q["path"] for q in after["quarantined"]] == _quarantined_in_folder(workspace) == ["bad.png"]
    assert after["credits_spent"] == emulator.stats()["credits_spent"] == 2
    assert after["oldest_waiting"] is None and after["last_success"]["path"] == "slow__seconds_6__.png"
    human = _cli(workspace, "status")
    assert human.returncode == 0 and "daemon: not running" in human.stdout and "bad.png [poll" in human.stdout


def test_status_before_any_run_reads_zero_and_creates_nothing(workspace: Workspace) -> None:
    workspace.write_config()
    before = sorted(p.name for p in workspace.root.rglob("*"))
    data = _status(workspace)
    assert data["running"] is False and data["journal_exists"] is False
    assert set(data["counts"].values()) == {0} and data["quarantined"] == [] and data["credits_left"] is None
    assert sorted(p.name for p in workspace.root.rglob("*")) == before


def test_status_leaves_the_wal_of_a_killed_daemon_for_the_next_start(workspace: Workspace, daemon_factory: Any) -> None:
    """A read-only reader never checkpoints: the -wal a crash left (the integrity check needs
    it, and it holds the last commits) is still there, whole, after status read it."""
    workspace.write_config()
    workspace.drop("one.png", png_bytes(1))
    daemon = daemon_factory(workspace.config_path).start()
    daemon.wait_event("file_done")
    daemon.kill9()
    journal = next(workspace.root.glob(".ocr-watch/*/journal.sqlite3"))
    wal = Path(f"{journal}-wal")
    size = wal.stat().st_size
    assert size > 0
    assert _status(workspace)["counts"]["done"] == 1
    assert wal.stat().st_size == size
    restarted = daemon_factory(workspace.config_path).start()
    restarted.wait_event("starting", count=2)  # the log file is shared with the first
    assert restarted.terminate() == 0


@pytest.mark.slow
def test_retry_brings_a_quarantined_file_back_and_the_running_daemon_processes_it(
    workspace: Workspace, emulator: Emulator, daemon_factory: Any
) -> None:
    workspace.write_config()
    emulator.add_fault("state", state=-1, count=1)  # the first task fails at the service
    workspace.drop("sub/doc.png", png_bytes(7))
    daemon = daemon_factory(workspace.config_path).start()
    wait_for(lambda: workspace.files(workspace.quarantine) == ["sub/doc.png", "sub/doc.png.error.json"], 20,
             what="doc quarantined")

    result = _cli(workspace, "retry", "sub/doc.png", "sub/not-there.png")
    assert result.returncode == 1
    assert "sub/not-there.png: not in quarantine" in result.stderr
    assert result.stdout.startswith("sub/doc.png -> inbox sub/doc.png; report to ")
    assert len(result.stdout.splitlines()) == 1
    wait_for(lambda: workspace.files(workspace.outbox) == ["sub/doc.txt"], 20, what="doc processed again")
    assert workspace.files(workspace.quarantine) == []
    state_dir = next(workspace.root.glob(".ocr-watch/*"))
    assert [p.name for p in (state_dir / "retired-reports").iterdir()] == ["doc.png.error.json"]
    assert emulator.stats()["creates"] == 2, "the file was paid for again: its first task failed"
    assert _status(workspace)["quarantined"] == []
    assert daemon.terminate() == 0


def test_retry_killed_between_the_file_and_its_report_loses_nothing(
    workspace: Workspace, emulator: Emulator
) -> None:
    """kill -9 after the file moved back and before its report did: the next run processes the
    file and retires the report itself."""
    workspace.write_config()
    emulator.add_fault("state", state=-1, count=1)
    workspace.drop("x.png", png_bytes(3))
    once = [sys.executable, "-m", "ocr_watch", "once", "--config", str(workspace.config_path)]
    assert subprocess.run(once, capture_output=True, timeout=45).returncode == 1
    assert workspace.files(workspace.quarantine) == ["x.png", "x.png.error.json"]
    crash = ("import os, sys\n"
             "import ocr_watch.admin.retry as r\n"
             "r.retire_report = lambda *a: os._exit(9)\n"
             "from ocr_watch.cli import main\n"
             "main(['retry', '--config', sys.argv[1]])\n")
    killed = subprocess.run([sys.executable, "-c", crash, str(workspace.config_path)], capture_output=True, timeout=30)
    assert killed.returncode == 9
    assert workspace.files(workspace.inbox) == ["x.png"]
    assert workspace.files(workspace.quarantine) == ["x.png.error.json"]
    assert subprocess.run(once, capture_output=True, timeout=45).returncode == 0
    assert workspace.files(workspace.outbox) == ["x.txt"]
    assert workspace.files(workspace.quarantine) == []
    state_dir = next(workspace.root.glob(".ocr-watch/*"))
    assert [p.name for p in (state_dir / "retired-reports").iterdir()] == ["x.png.error.json"]


def test_retry_never_overwrites_a_file_now_in_the_inbox(workspace: Workspace, emulator: Emulator) -> None:
    workspace.write_config()
    emulator.add_fault("state", state=-1, count=1)
    workspace.drop("y.png", png_bytes(4))
    once = [sys.executable, "-m", "ocr_watch", "once", "--config", str(workspace.config_path)]
    assert subprocess.run(once, capture_output=True, timeout=45).returncode == 1
    newer = workspace.drop("y.png", png_bytes(5))  # a new file took the name meanwhile
    result = _cli(workspace, "retry")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("y.png -> inbox y-2.png")
    assert newer.read_bytes() == png_bytes(5)
    assert (workspace.inbox / "y-2.png").read_bytes() == png_bytes(4)
    assert workspace.files(workspace.quarantine) == []

"""A journal the daemon cannot trust stops start-up, clearly, and pays nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ocr_watch.emulator import Emulator
from ocr_watch.testing import Daemon, Workspace, png_bytes, wait_for

pytestmark = pytest.mark.timeout(120)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ocr_watch", *args], capture_output=True, text=True, timeout=60)


class TestJournalTrust:
    def test_a_journal_emptied_between_two_runs_is_refused_and_nothing_is_paid_again(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """With on_success: keep, a new journal would upload every kept file again."""
        config = workspace.write_config(on_success="keep", state_dir="state")
        daemon = daemon_factory(config).start()
        daemon.wait_event("watching")
        for n in range(3):
            workspace.drop(f"kept{n}.png", png_bytes(n))
        wait_for(lambda: len(workspace.files(workspace.outbox)) == 3, 60, what="three outputs")
        assert daemon.terminate() == 0
        assert emulator.stats()["creates"] == 3
        journal = workspace.root / "state" / "journal.sqlite3"
        journal.write_bytes(b"")  # emptied, as a careless restore or a full disk leaves it
        second = run_cli("run", "--config", str(config))
        assert second.returncode == 2
        (line,) = [json.loads(ln)["message"] for ln in second.stderr.splitlines() if "journal_refused" in ln]
        assert str(journal) in line and "is empty" in line and "journal.sqlite3.id" in line
        assert emulator.stats()["create_requests"] == 3, "the kept files were not uploaded again"

    def test_a_corrupt_journal_stops_start_up_with_one_line_and_exit_2(self, workspace: Workspace) -> None:
        config = workspace.write_config(state_dir="state")
        (workspace.root / "state").mkdir()
        journal = workspace.root / "state" / "journal.sqlite3"
        journal.write_bytes(b"garbage " * 512)
        result = run_cli("once", "--config", str(config))
        assert result.returncode == 2
        (line,) = [json.loads(ln)["message"] for ln in result.stderr.splitlines() if "journal_refused" in ln]
        assert str(journal) in line and "not a database" in line and "backup" in line


class TestCheckConfigIsReadOnly:
    def test_check_config_names_the_folders_run_would_create_and_creates_none(self, tmp_path: Path) -> None:
        config = tmp_path / "config.yaml"
        config.write_text("folders: {inbox: srv/in, outbox: srv/out, quarantine: srv/q}\n"
                          "api: {key: abcdefgh}\n")
        result = run_cli("check-config", "--config", str(config))
        assert result.returncode == 0, result.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"], "nothing was created"
        would = [ln for ln in result.stdout.splitlines() if ln.startswith("# run would create")]
        for key, folder in (("folders.inbox", "srv/in"), ("folders.outbox", "srv/out"),
                            ("folders.quarantine", "srv/q"), ("folders.archive", "srv/archive")):
            assert f"# run would create {key}: {tmp_path / folder}" in would, (key, would)
        assert any(ln.startswith("# run would create state_dir:") for ln in would)

    def test_check_config_reports_a_file_where_a_folder_should_be(self, tmp_path: Path) -> None:
        config = tmp_path / "config.yaml"
        (tmp_path / "out").write_text("a file")
        config.write_text("folders: {inbox: in, outbox: out, quarantine: q}\napi: {key: abcdefgh}\n")
        result = run_cli("check-config", "--config", str(config))
        assert result.returncode == 2 and "folders.outbox" in result.stderr and "not a folder" in result.stderr
        assert not (tmp_path / "in").exists()

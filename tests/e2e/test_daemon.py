"""The daemon end to end: real `ocr-watch run` subprocesses, real folders, the emulator."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ocr_watch.emulator import Emulator, render_result
from ocr_watch.testing import EMU_KEY, Daemon, Workspace, png_bytes, sha256, wait_for

pytestmark = pytest.mark.timeout(90)


class TestFormats:
    @pytest.mark.parametrize("fmt", ["txt", "pdf", "docx", "xlsx", "pptx"])
    def test_each_format_lands_with_the_emulators_bytes_and_the_source_is_archived(
        self, fmt: str, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """The output is exactly what the emulator rendered for this input; the source moves to archive."""
        daemon = daemon_factory(workspace.write_config(ocr={"format": fmt})).start()
        daemon.wait_event("watching")
        data = png_bytes(1)
        workspace.drop("sub/scan.png", data)
        output = workspace.outbox / "sub" / f"scan.{fmt}"
        wait_for(lambda: (workspace.archive / "sub/scan.png").exists(), 30, what="archived source")
        assert output.read_bytes() == render_result(sha256(data), "scan.png", fmt)
        assert (workspace.archive / "sub/scan.png").read_bytes() == data
        assert workspace.files(workspace.inbox) == []
        assert daemon.terminate() == 0
        assert emulator.stats()["creates"] == 1


class TestFailures:
    def test_a_failed_task_is_quarantined_with_its_report_and_the_daemon_goes_on(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """State -7 quarantines that file with a readable account; the next file still succeeds."""
        daemon = daemon_factory(workspace.write_config()).start()
        daemon.wait_event("watching")
        workspace.drop("broken.png", b"this is not an image at all")
        report_path = workspace.quarantine / "broken.png.error.json"
        wait_for(lambda: (workspace.quarantine / "broken.png").exists(), 30, what="quarantined source")
        report = json.loads(report_path.read_text())
        assert report["stage"] == "poll"
        assert report["last_task_state"] == -7
        assert "corrupt" in report["reason"]
        assert report["task_id"] and report["task_id"] == emulator.tasks()[0]["task_id"]
        assert report["attempts"] == 0 and report["failed_at"] and report["first_seen"]
        workspace.drop("good.png", png_bytes(2))
        wait_for(lambda: (workspace.outbox / "good.txt").exists(), 30, what="next file done")
        assert daemon.terminate() == 0
        assert emulator.stats()["credits_spent"] == 1

    def test_unsupported_and_empty_files_are_quarantined_without_an_api_call(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        daemon = daemon_factory(workspace.write_config()).start()
        daemon.wait_event("watching")
        workspace.drop("notes.xyz", b"hello")
        workspace.drop("empty.pdf", b"")
        wait_for(lambda: len(workspace.files(workspace.quarantine)) == 4, 30, what="two quarantined files")
        reasons = {p: json.loads((workspace.quarantine / f"{p}.error.json").read_text())["reason"]
                   for p in ("notes.xyz", "empty.pdf")}
        assert "'.xyz'" in reasons["notes.xyz"]
        assert "empty" in reasons["empty.pdf"]
        assert emulator.stats()["create_requests"] == 0
        assert daemon.terminate() == 0


class TestNaming:
    def test_two_sources_with_one_stem_never_overwrite_each_others_output(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon]
    ) -> None:
        """scan.png and scan.pdf both want scan.txt: the second gets scan.<sha8>.txt."""
        daemon = daemon_factory(workspace.write_config()).start()
        daemon.wait_event("watching")
        first, second = png_bytes(1), b"%PDF-1.4 second source"
        workspace.drop("scan.png", first)
        wait_for(lambda: (workspace.archive / "scan.png").exists(), 30, what="first done")
        workspace.drop("scan.pdf", second)
        wait_for(lambda: (workspace.archive / "scan.pdf").exists(), 30, what="second done")
        assert (workspace.outbox / "scan.txt").read_bytes() == render_result(sha256(first), "scan.png", "txt")
        other = workspace.outbox / f"scan.{sha256(second)[:8]}.txt"
        assert other.read_bytes() == render_result(sha256(second), "scan.pdf", "txt")
        assert daemon.terminate() == 0

    def test_the_same_content_dropped_twice_at_once_is_paid_for_once(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        emulator.update(processing_seconds=1.0)
        daemon = daemon_factory(workspace.write_config()).start()
        daemon.wait_event("watching")
        data = png_bytes(7)
        workspace.drop("a/copy.png", data)
        workspace.drop("b/copy.png", data)
        wait_for(lambda: len(workspace.files(workspace.archive)) == 2, 30, what="both archived")
        assert workspace.files(workspace.outbox) == ["a/copy.txt", "b/copy.txt"]
        assert emulator.stats()["tasks_by_sha256"] == {sha256(data): 1}
        assert daemon.terminate() == 0


class TestLifecycle:
    def test_sigterm_stops_cleanly_and_the_key_never_appears_in_the_logs(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon]
    ) -> None:
        daemon = daemon_factory(workspace.write_config(log_level="debug")).start()
        daemon.wait_event("watching")
        workspace.drop("x.png", png_bytes(3))
        wait_for(lambda: (workspace.archive / "x.png").exists(), 30, what="done")
        assert daemon.terminate() == 0
        log_text = daemon.log_path.read_text()
        assert '"event": "stopped"' in log_text
        assert EMU_KEY not in log_text

    def test_sigterm_during_an_upload_lets_it_finish_so_the_restart_polls_instead_of_paying_again(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        emulator.add_fault("slow", route="create", delay_s=1.5)  # the task exists while we wait
        daemon = daemon_factory(workspace.write_config()).start()
        daemon.wait_event("watching")
        data = png_bytes(4)
        workspace.drop("mid.png", data)
        wait_for(lambda: emulator.stats()["create_requests"] == 1, 20, what="upload under way")
        assert daemon.terminate() == 0
        assert [e["task_id"] for e in daemon.events() if e.get("event") == "task_created"], "create answered"
        restarted = daemon_factory(workspace.config_path).start()
        wait_for(lambda: (workspace.archive / "mid.png").exists(), 30, what="done after restart")
        assert restarted.terminate() == 0
        assert emulator.stats()["create_requests"] == 1
        assert emulator.stats()["tasks_by_sha256"] == {sha256(data): 1}

    def test_a_restart_recalls_what_the_poll_planner_learnt(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon]
    ) -> None:
        daemon = daemon_factory(workspace.write_config()).start()
        daemon.wait_event("watching")
        for n in range(4):
            workspace.drop(f"learn{n}.png", png_bytes(40 + n))
        wait_for(lambda: len(workspace.files(workspace.archive)) == 4, 30, what="all archived")
        assert daemon.terminate() == 0
        saved = json.loads((workspace.root / ".ocr-watch" / "inbox" / "planner.json").read_text())
        assert len(saved["planner"]["durations"]) == 4

        restarted = daemon_factory(workspace.config_path).start()
        recalled = restarted.wait_event("planner_recalled")[0]
        assert recalled["durations"] == 4
        workspace.drop("after.png", png_bytes(50))
        wait_for(lambda: (workspace.archive / "after.png").exists(), 30, what="done after restart")
        assert restarted.terminate() == 0

    def test_files_present_at_start_are_processed(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon]
    ) -> None:
        for n in range(3):
            workspace.drop(f"old{n}.png", png_bytes(n))
        daemon = daemon_factory(workspace.write_config()).start()
        wait_for(lambda: len(workspace.files(workspace.archive)) == 3, 30, what="all archived")
        assert workspace.files(workspace.outbox) == ["old0.txt", "old1.txt", "old2.txt"]
        assert daemon.terminate() == 0


class TestConfig:
    def test_a_bad_config_names_the_key_and_exits_2(self, tmp_path: Path) -> None:
        config = tmp_path / "config.yaml"
        (tmp_path / "inbox").mkdir()
        config.write_text(
            "folders: {inbox: inbox, outbox: inbox/out, quarantine: q}\n"
            "api: {key: abc, requests_per_second: fast}\n"
            "pool: {max_in_flight: 0, max_inflight: 3}\n"
        )
        for command in ("run", "check-config", "once"):
            result = subprocess.run([sys.executable, "-m", "ocr_watch", command, "--config", str(config)],
                                    capture_output=True, text=True, timeout=30)
            assert result.returncode == 2, result.stderr
            for key in ("folders.outbox", "api.requests_per_second", "pool.max_in_flight", "pool.max_inflight"):
                assert key in result.stderr, (key, result.stderr)

    def test_check_config_prints_the_effective_config_with_the_key_masked(self, workspace: Workspace) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "ocr_watch", "check-config", "--config", str(workspace.write_config())],
            capture_output=True, text=True, timeout=30,
        )
        assert result.returncode == 0, result.stderr
        assert "max_in_flight: 32" in result.stdout
        assert EMU_KEY not in result.stdout + result.stderr

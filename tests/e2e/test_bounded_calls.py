"""Every call has a bounded life: answers that trickle are abandoned, and nothing waits behind them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ocr_watch.emulator import Emulator
from ocr_watch.testing import Daemon, Workspace, png_bytes, wait_for

pytestmark = pytest.mark.timeout(120)


class TestTrickledAnswers:
    def test_a_trickled_create_answer_is_abandoned_within_its_deadline_and_others_go_on(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """Headers, then a byte every 20 s: abandoned after api.answer_timeout_seconds (2 s)."""
        emulator.add_fault("trickle", route="create", count=1, interval_s=20)
        daemon = daemon_factory(workspace.write_config(api={"answer_timeout_seconds": 2})).start()
        daemon.wait_event("watching")
        workspace.drop("stuck.png", png_bytes(1))
        retried = daemon.wait_event("retrying", 30)[0]
        assert "within 2 s" in retried["error"] and retried["file"] == "stuck.png"
        for n in range(2, 5):
            workspace.drop(f"other{n}.png", png_bytes(n))
        wait_for(lambda: len(workspace.files(workspace.outbox)) == 4, 40, what="all four outputs")
        assert daemon.terminate() == 0

    def test_a_trickled_query_answer_is_abandoned_and_poll_timeout_holds(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """A query that never ends is abandoned within its deadline; the task is queried again."""
        emulator.add_fault("trickle", route="query", count=1, interval_s=20)
        daemon = daemon_factory(workspace.write_config(api={"answer_timeout_seconds": 2})).start()
        daemon.wait_event("watching")
        workspace.drop("a.png", png_bytes(1))
        wait_for((workspace.outbox / "a.txt").exists, 40, what="output after the abandoned query")
        assert emulator.stats()["creates"] == 1
        assert daemon.terminate() == 0

    def test_a_trickled_download_is_abandoned_below_the_minimum_rate(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """After the 30 s grace, a download below the minimum average rate is abandoned and retried."""
        emulator.add_fault("trickle", route="download", count=1, interval_s=20)
        daemon = daemon_factory(workspace.write_config(api={"download_min_bytes_per_second": 1e9})).start()
        daemon.wait_event("watching")
        workspace.drop("slow.png", png_bytes(1))
        wait_for((workspace.outbox / "slow.txt").exists, 60, what="output after the abandoned download")
        assert any("slower than" in str(e.get("error", "")) for e in daemon.events())
        assert daemon.terminate() == 0


class TestPollTimeoutHolds:
    def test_poll_timeout_holds_when_every_query_fails(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """Before, the limit was checked only when a query answered: failing queries ran on."""
        emulator.add_fault("http_500", route="query", count=1000)
        config = workspace.write_config(poll={"timeout_seconds": 3, "interval_seconds": 0.2},
                                        retry={"max_attempts": 1000})
        daemon = daemon_factory(config).start()
        daemon.wait_event("watching")
        workspace.drop("never.png", png_bytes(1))
        report = workspace.quarantine / "never.png.error.json"
        wait_for(report.exists, 30, what="quarantined by poll.timeout_seconds")
        assert "poll.timeout_seconds" in report.read_text()
        assert daemon.terminate() == 0

"""A paid result is fetched while it can be had: expired links are asked for again."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ocr_watch.emulator import Emulator, render_result
from ocr_watch.testing import Daemon, Workspace, png_bytes, sha256, wait_for

pytestmark = pytest.mark.timeout(120)


def requests_after_first_download(emulator: Emulator) -> list[dict[str, Any]]:
    log = emulator.requests()
    first = next(i for i, r in enumerate(log) if r["path"].startswith("/r/"))
    return log[first:]


class TestExpiredLinks:
    def test_an_expired_link_at_the_first_download_is_asked_for_again_and_the_output_arrives(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """Signed-when-issued links: one extra query gives a fresh link; nothing is quarantined."""
        emulator.update(fresh_url_per_query=True)
        daemon = daemon_factory(workspace.write_config()).start()
        daemon.wait_event("watching")
        data = png_bytes(1)
        workspace.drop("scan__expired__.png", data)
        output = workspace.outbox / "scan__expired__.txt"
        wait_for(output.exists, 60, what="the output after a fresh link")
        assert output.read_bytes() == render_result(sha256(data), "scan__expired__.png", "txt")
        after = requests_after_first_download(emulator)
        assert [(r["method"], r["status"]) for r in after] == [("GET", 403), ("GET", 200), ("GET", 200)]
        assert after[1]["path"].startswith("/api/") and after[2]["path"].startswith("/r/")
        assert workspace.files(workspace.quarantine) == []
        assert emulator.stats()["creates"] == 1
        assert daemon.terminate() == 0

    def test_a_link_that_stays_dead_is_quarantined_with_its_task_and_what_was_tried(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """Links fixed at completion (the re-query gives the same dead link): the report says so."""
        daemon = daemon_factory(workspace.write_config()).start()
        daemon.wait_event("watching")
        workspace.drop("dead__expired__.png", png_bytes(2))
        report_path = workspace.quarantine / "dead__expired__.png.error.json"
        wait_for(report_path.exists, 60, what="the report")
        report = json.loads(report_path.read_text())
        (task,) = emulator.tasks()
        assert report["task_id"] == task["task_id"] and report["stage"] == "download"
        assert "asking the service again gave no working link" in report["reason"]
        assert "created" in report["reason"] and "about an hour" not in report["reason"]
        assert emulator.stats()["creates"] == 1
        assert daemon.terminate() == 0


def journal_rows(workspace: Workspace) -> list[dict[str, Any]]:
    import sqlite3

    db = sqlite3.connect(workspace.root / "state" / "journal.sqlite3")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM files ORDER BY id")]
    finally:
        db.close()


class TestLostCreateAnswers:
    @pytest.mark.parametrize("allowed", [1, 0])
    def test_lost_answers_are_sent_again_at_most_as_configured_then_quarantined_saying_so(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator, allowed: int
    ) -> None:
        """Three answers lost in a row (the task IS made each time): at most allowed + 1 tasks."""
        emulator.add_fault("drop", route="create", count=3)
        config = workspace.write_config(state_dir="state", retry={"ambiguous_creates": allowed})
        daemon = daemon_factory(config).start()
        daemon.wait_event("watching")
        workspace.drop("lost.png", png_bytes(1))
        report_path = workspace.quarantine / "lost.png.error.json"
        wait_for(report_path.exists, 60, what="quarantined after lost answers")
        report = json.loads(report_path.read_text())
        assert report["stage"] == "create" and "may have created a task and charged a credit" in report["reason"]
        assert f"retry.ambiguous_creates = {allowed}" in report["reason"]
        assert emulator.stats()["creates"] == allowed + 1
        assert daemon.terminate() == 0
        (row,) = journal_rows(workspace)
        assert (row["lost_create_answers"], row["possible_double_charges"]) == (allowed + 1, allowed)
        warnings = [e for e in daemon.events() if e.get("event") == "possible_double_charge"]
        assert len(warnings) == allowed

    def test_an_upload_cut_before_it_was_sent_whole_is_sent_again_freely(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """A 500 answered before any task was made is no possible charge: not counted as one."""
        emulator.add_fault("http_500", route="create", count=2)
        config = workspace.write_config(state_dir="state", retry={"ambiguous_creates": 0})
        daemon = daemon_factory(config).start()
        daemon.wait_event("watching")
        workspace.drop("fine.png", png_bytes(2))
        wait_for((workspace.outbox / "fine.txt").exists, 60, what="the output")
        assert emulator.stats()["creates"] == 1
        assert daemon.terminate() == 0
        (row,) = journal_rows(workspace)
        assert (row["lost_create_answers"], row["possible_double_charges"]) == (0, 0)


class TestRetryFromQuarantine:
    def test_a_file_moved_back_from_quarantine_is_processed_and_its_old_report_leaves(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """`mv` keeps size, mtime and inode: it used to be taken for a file already finished."""
        import os

        emulator.add_fault("state", count=1, state=-5)  # the first task fails
        daemon = daemon_factory(workspace.write_config(state_dir="state")).start()
        daemon.wait_event("watching")
        data = png_bytes(3)
        workspace.drop("sub/retry.png", data)
        quarantined = workspace.quarantine / "sub" / "retry.png"
        wait_for(lambda: quarantined.exists() and Path(f"{quarantined}.error.json").exists(), 60,
                 what="first quarantined")
        os.rename(quarantined, workspace.inbox / "sub" / "retry.png")  # the README's way to retry
        wait_for((workspace.outbox / "sub" / "retry.txt").exists, 60, what="processed again")
        assert (workspace.outbox / "sub" / "retry.txt").read_bytes() == render_result(sha256(data), "retry.png", "txt")
        wait_for(lambda: workspace.files(workspace.quarantine) == [], 30, what="no stale report in quarantine")
        retired = workspace.root / "state" / "retired-reports" / "retry.png.error.json"
        assert json.loads(retired.read_text())["source"] == "sub/retry.png"
        assert emulator.stats()["creates"] == 2
        assert daemon.terminate() == 0


class TestAccountComesBack:
    def test_a_refused_key_that_becomes_good_resumes_within_30_s_with_few_probes(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """No restart: a probe every 15 s, so at most a few calls a minute while refused."""
        import time

        from ocr_watch.testing import EMU_KEY

        emulator.update(api_keys=("some-other-key",))
        daemon = daemon_factory(workspace.write_config()).start()
        daemon.wait_event("watching")
        for n in range(3):
            workspace.drop(f"wait{n}.png", png_bytes(n))
        daemon.wait_event("account_problem", 30)
        time.sleep(20)  # the scenario: the account stays refused for a while
        refused_calls = emulator.stats()["create_requests"] + emulator.stats().get("queries", 0)
        # The three uploads sent side by side before the first refusal came back (at most
        # pool.max_uploads), then one probe at 15 s.
        assert refused_calls <= 3 + 1, f"{refused_calls} calls in the first 20 s refused"
        emulator.update(api_keys=(EMU_KEY,))
        fixed_at = time.monotonic()
        wait_for(lambda: len(workspace.files(workspace.outbox)) == 3, 40, what="all three done")
        assert time.monotonic() - fixed_at <= 30
        assert workspace.files(workspace.quarantine) == []
        assert daemon.proc is not None and daemon.proc.poll() is None
        assert daemon.terminate() == 0

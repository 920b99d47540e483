"""A paid result is fetched while it can be had: expired links are asked for again."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ocr_watch.emulator import Emulator, render_result
from tests.conftest import wait_for
from tests.e2e.conftest import Daemon, Workspace, png_bytes, sha256

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

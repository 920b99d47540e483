"""What happens to sources after success, and the polling observer for network shares."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ocr_watch.emulator import Emulator
from ocr_watch.testing import Daemon, Workspace, png_bytes, wait_for

pytestmark = pytest.mark.timeout(60)


def test_keep_leaves_the_source_and_rescans_never_pay_for_it_again(
    workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
) -> None:
    config = workspace.write_config(on_success="keep", log_level="debug", watch={"rescan_seconds": 0.2})
    daemon = daemon_factory(config).start()
    daemon.wait_event("watching")
    workspace.drop("kept.png", png_bytes(1))
    wait_for(lambda: (workspace.outbox / "kept.txt").exists(), 30, what="output")
    done_at = len(daemon.events())
    wait_for(lambda: sum(e.get("event") == "scanned" for e in daemon.events()[done_at:]) >= 3, 20,
             what="three rescans after the file was done")
    assert daemon.terminate() == 0
    assert workspace.files(workspace.inbox) == ["kept.png"]
    assert emulator.stats()["create_requests"] == 1
    assert not workspace.archive.exists()


def test_delete_removes_the_source_only_once_its_output_exists(
    workspace: Workspace, daemon_factory: Callable[[Path], Daemon]
) -> None:
    daemon = daemon_factory(workspace.write_config(on_success="delete")).start()
    daemon.wait_event("watching")
    workspace.drop("gone.png", png_bytes(2))
    wait_for(lambda: not (workspace.inbox / "gone.png").exists(), 30, what="source deleted")
    assert (workspace.outbox / "gone.txt").exists()
    assert daemon.terminate() == 0
    assert not workspace.archive.exists()


def test_the_polling_observer_finds_files_where_inotify_sees_nothing(
    workspace: Workspace, daemon_factory: Callable[[Path], Daemon]
) -> None:
    config = workspace.write_config(watch={"mode": "polling", "poll_interval_seconds": 0.1})
    daemon = daemon_factory(config).start()
    (watching,) = daemon.wait_event("watching")
    assert watching["observer"] == "polling"
    workspace.drop("share/nfs.png", png_bytes(3))
    wait_for(lambda: (workspace.archive / "share/nfs.png").exists(), 30, what="archived via polling")
    assert (workspace.outbox / "share/nfs.txt").exists()
    assert daemon.terminate() == 0

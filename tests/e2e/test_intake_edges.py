"""Intake you can trust, end to end: what is read from the inbox, when, and which bytes.

Real `ocr-watch run` subprocesses against the emulator (project issue 14, cases 2, 3, 4, 5, 11).
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ocr_watch.emulator import Emulator, render_result
from ocr_watch.testing import Daemon, Workspace, png_bytes, sha256, wait_for

pytestmark = pytest.mark.timeout(150)


def _events(daemon: Daemon, name: str, file: str | None = None) -> list[dict[str, Any]]:
    return [e for e in daemon.events() if e.get("event") == name and (file is None or e.get("file") == file)]


def _wait_file_event(daemon: Daemon, name: str, file: str, timeout: float = 60.0) -> dict[str, Any]:
    found = wait_for(lambda: _events(daemon, name, file), timeout, what=f"log event {name} for {file}")
    return found[0]


def _uploaded(emulator: Emulator) -> set[str]:
    return {task["sha256"] for task in emulator.tasks()}


class TestPausingWriter:
    def test_a_writer_pausing_longer_than_the_settle_time_is_uploaded_once_when_it_closes(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """5 chunks, 4 s apart, the file open throughout, settle 2 s: one upload, of the final
        bytes, under the clean name; no rescan needed (rescan_seconds: 0)."""
        daemon = daemon_factory(workspace.write_config(watch={"settle_seconds": 2, "rescan_seconds": 0})).start()
        daemon.wait_event("watching", timeout=30)
        data = png_bytes(1, size=5000)
        pieces = [data[i * 1000:(i + 1) * 1000] for i in range(5)]
        with open(workspace.inbox / "scan.png", "wb") as f:
            for i, piece in enumerate(pieces):
                f.write(piece)
                f.flush()
                if i < len(pieces) - 1:
                    time.sleep(4)  # the scenario: a scanner between pages
        wait_for(lambda: (workspace.archive / "scan.png").exists(), 60, what="archived source")
        assert workspace.files(workspace.outbox) == ["scan.txt"]
        assert (workspace.outbox / "scan.txt").read_bytes() == render_result(sha256(data), "scan.png", "txt")
        assert daemon.terminate() == 0
        assert emulator.stats()["create_requests"] == 1
        assert _uploaded(emulator) == {sha256(data)}


    def test_a_file_replaced_while_its_first_version_is_in_flight_is_processed_on_release(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """v1 changed after its upload: its output takes the hashed name, and v2, whose close
        came while v1 was in flight, is processed when v1 is released (rescan_seconds: 0),
        taking the clean name."""
        v1, v2 = png_bytes(1), png_bytes(2)
        daemon = daemon_factory(workspace.write_config(watch={"rescan_seconds": 0})).start()
        daemon.wait_event("watching", timeout=30)
        emulator.update(processing_seconds=3)
        workspace.drop("a.png", v1)
        _wait_file_event(daemon, "task_created", "a.png")
        workspace.drop("a.png", v2)
        emulator.update(processing_seconds=0.2)
        wait_for(lambda: (workspace.archive / "a.png").exists(), 60, what="the final version archived")
        assert workspace.files(workspace.outbox) == sorted(["a.txt", f"a.{sha256(v1)[:8]}.txt"])
        assert (workspace.outbox / "a.txt").read_bytes() == render_result(sha256(v2), "a.png", "txt")
        assert (workspace.outbox / f"a.{sha256(v1)[:8]}.txt").read_bytes() == render_result(
            sha256(v1), "a.png", "txt")
        assert (workspace.archive / "a.png").read_bytes() == v2
        assert daemon.terminate() == 0
        assert emulator.stats()["create_requests"] == 2


class TestSpecialFiles:
    def test_a_symlink_and_a_fifo_created_while_running_are_never_read_and_the_daemon_goes_on(
        self, tmp_path: Path, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """The symlink's target outside the inbox is never uploaded; the FIFO blocks nothing; each
        is logged once however many events it causes, and both are left in place."""
        outside = tmp_path / "outside"
        outside.mkdir()
        secret = outside / "secret.png"
        secret.write_bytes(png_bytes(99))
        secret.chmod(0o600)
        daemon = daemon_factory(workspace.write_config(log_level="debug")).start()
        daemon.wait_event("watching", timeout=30)

        (workspace.inbox / "link.png").symlink_to(secret)
        os.mkfifo(workspace.inbox / "pipe.png")
        # Writes and a close on the FIFO: more events for the same path (O_RDWR never blocks).
        fd = os.open(workspace.inbox / "pipe.png", os.O_RDWR | os.O_NONBLOCK)
        os.write(fd, b"abc")
        os.write(fd, b"def")
        os.close(fd)
        _wait_file_event(daemon, "not_a_regular_file", "link.png")
        _wait_file_event(daemon, "not_a_regular_file", "pipe.png")

        workspace.drop("after.png", png_bytes(2))
        wait_for(lambda: (workspace.archive / "after.png").exists(), 60, what="file dropped after the FIFO done")
        assert (workspace.outbox / "after.txt").read_bytes() == render_result(sha256(png_bytes(2)), "after.png", "txt")
        assert sha256(png_bytes(99)) not in _uploaded(emulator)
        assert workspace.files(workspace.outbox) == ["after.txt"]
        assert (workspace.inbox / "link.png").is_symlink()
        assert stat.S_ISFIFO(os.lstat(workspace.inbox / "pipe.png").st_mode)
        assert secret.read_bytes() == png_bytes(99)
        assert daemon.terminate() == 0
        assert len(_events(daemon, "not_a_regular_file", "link.png")) == 1
        assert len(_events(daemon, "not_a_regular_file", "pipe.png")) == 1
        assert emulator.stats()["create_requests"] == 1

    def test_a_queued_file_replaced_by_a_fifo_is_handled_its_slot_freed_and_sigterm_exits(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """max_in_flight 1 keeps second.png queued behind first.png; replaced by a FIFO, it is
        quarantined by report only (the FIFO stays), the next file goes through, SIGTERM exits 0."""
        daemon = daemon_factory(workspace.write_config(pool={"max_in_flight": 1})).start()
        daemon.wait_event("watching", timeout=30)
        emulator.update(processing_seconds=4)
        workspace.drop("first.png", png_bytes(1))
        _wait_file_event(daemon, "task_created", "first.png")
        workspace.drop("second.png", png_bytes(2))
        _wait_file_event(daemon, "file_admitted", "second.png")
        (workspace.inbox / "second.png").unlink()
        os.mkfifo(workspace.inbox / "second.png")
        _wait_file_event(daemon, "file_done", "first.png")
        emulator.update(processing_seconds=0.2)

        quarantined = _wait_file_event(daemon, "file_quarantined", "second.png")
        assert "FIFO" in quarantined["reason"]
        assert stat.S_ISFIFO(os.lstat(workspace.inbox / "second.png").st_mode)
        assert workspace.files(workspace.quarantine) == ["second.png.error.json"]

        workspace.drop("third.png", png_bytes(3))
        wait_for(lambda: (workspace.archive / "third.png").exists(), 60, what="next file done (slot released)")
        started = time.monotonic()
        assert daemon.terminate(timeout=40) == 0
        assert time.monotonic() - started < 25  # the shutdown grace is 20 s
        assert _uploaded(emulator) == {sha256(png_bytes(1)), sha256(png_bytes(3))}


class TestHashWhatIsSent:
    def test_a_file_rewritten_between_hash_and_upload_never_lends_its_text_to_another_file(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """a.png is hashed (old bytes), then rewritten in place while it waits for its turn to
        upload (pool.max_uploads 1, taken by a slow create). Later b.png with a.png's old bytes
        must get its own text."""
        old, new = png_bytes(10), png_bytes(11)
        daemon = daemon_factory(workspace.write_config(log_level="debug", pool={"max_uploads": 1})).start()
        daemon.wait_event("watching", timeout=30)
        emulator.add_fault("slow", route="create", count=1, delay_s=6)
        workspace.drop("holder.png", png_bytes(12))
        wait_for(lambda: emulator.stats()["create_requests"] >= 1, 30, what="the holder's create under way")
        workspace.drop("a.png", old)
        hashed = _wait_file_event(daemon, "file_hashed", "a.png", timeout=30)
        assert hashed["sha256"] == sha256(old)
        assert emulator.stats()["create_requests"] == 1, "a.png must still be waiting for the upload gate"
        with open(workspace.inbox / "a.png", "r+b") as f:  # in place: same inode
            f.truncate(0)
            f.write(new)
        _wait_file_event(daemon, "file_done", "a.png")

        workspace.drop("b.png", old)
        wait_for(lambda: (workspace.archive / "b.png").exists(), 60, what="b.png done")
        assert (workspace.outbox / "b.txt").read_bytes() == render_result(sha256(old), "b.png", "txt")
        # a.png's upload read it as it is now: its own text, the clean name, archived.
        assert (workspace.outbox / "a.txt").read_bytes() == render_result(sha256(new), "a.png", "txt")
        assert (workspace.archive / "a.png").read_bytes() == new
        assert daemon.terminate() == 0
        assert _uploaded(emulator) == {sha256(png_bytes(12)), sha256(new), sha256(old)}


class TestMovedIn:
    def test_a_whole_file_moved_in_from_another_folder_is_taken_at_once(
        self, tmp_path: Path, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """`mv` from outside the inbox (same file system) is a finished file: no 30 s settle."""
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "moved.png").write_bytes(png_bytes(5))
        daemon = daemon_factory(workspace.write_config(watch={"settle_seconds": 30})).start()
        daemon.wait_event("watching", timeout=30)
        moved_at = time.monotonic()
        os.rename(outside / "moved.png", workspace.inbox / "moved.png")
        _wait_file_event(daemon, "task_created", "moved.png", timeout=20)
        assert time.monotonic() - moved_at < 20
        wait_for(lambda: (workspace.archive / "moved.png").exists(), 30, what="moved file done")
        assert (workspace.outbox / "moved.txt").read_bytes() == render_result(sha256(png_bytes(5)), "moved.png", "txt")
        assert daemon.terminate() == 0

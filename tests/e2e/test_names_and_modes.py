"""Any name the file system allows, and no result more open than its source: the real daemon."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from ocr_watch.emulator import Emulator, render_result
from ocr_watch.results.quarantine import report_path_for
from ocr_watch.testing import Daemon, Workspace, png_bytes, sha256, wait_for

pytestmark = pytest.mark.timeout(120)


def mode_of(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def drop_long(workspace: Workspace, name: str, data: bytes, mode: int = 0o644) -> None:
    """Write in a hidden staging folder of the inbox, then rename: a temp name would not fit."""
    staging = workspace.inbox / ".staging"
    staging.mkdir(exist_ok=True)
    (staging / name).write_bytes(data)
    os.chmod(staging / name, mode)
    os.rename(staging / name, workspace.inbox / name)


class TestNames:
    def test_a_name_that_is_not_utf8_is_processed_and_the_daemon_goes_on(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """`bad\\xffname.png` (an SMB share's legacy name) beside normal files: all are processed."""
        daemon = daemon_factory(workspace.write_config()).start()
        daemon.wait_event("watching")
        odd = os.fsdecode(b"bad\xffname.png")
        datas = {name: png_bytes(n) for n, name in enumerate(["before.png", odd, "after.png"])}
        for name, data in datas.items():
            workspace.drop(name, data)
        for name, data in datas.items():
            wait_for((workspace.archive / name).exists, 60, what=f"{name!r} done and archived")
            assert (workspace.archive / name).read_bytes() == data
        for name in ("before.png", "after.png"):
            assert (workspace.outbox / name.replace(".png", ".txt")).read_bytes() == render_result(
                sha256(datas[name]), name, "txt")
        assert (workspace.outbox / odd.replace(".png", ".txt")).stat().st_size > 0
        assert daemon.proc is not None and daemon.proc.poll() is None, "the daemon is still running"
        assert emulator.stats()["creates"] == 3
        assert daemon.terminate() == 0
        done = [e for e in daemon.events() if e.get("event") == "file_done"]
        assert sorted(e["file"] for e in done) == sorted(["before.png", "after.png", "bad\\xffname.png"])

    def test_250_byte_names_supported_and_not_each_end_somewhere(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """The temp, output and report names derived from a 250-byte name fit the file system."""
        daemon = daemon_factory(workspace.write_config()).start()
        daemon.wait_event("watching")
        chinese = "文" * 82 + ".png"  # 246 + 4 = 250 bytes
        plain = "p" * 246 + ".xyz"  # unsupported: quarantined without a call
        assert len(os.fsencode(chinese)) == len(os.fsencode(plain)) == 250
        drop_long(workspace, chinese, png_bytes(1))
        drop_long(workspace, plain, b"not a document")
        output = workspace.outbox / ("文" * 82 + ".txt")
        wait_for(output.exists, 60, what="the long name's output")
        quarantined = workspace.quarantine / plain
        wait_for(lambda: quarantined.exists() and report_path_for(quarantined).exists(), 60,
                 what="the long unsupported name in quarantine with its report")
        assert "'.xyz'" in json.loads(report_path_for(quarantined).read_text())["reason"]
        wait_for(lambda: (workspace.archive / chinese).exists(), 30, what="the long source archived")
        assert emulator.stats()["creates"] == 1
        assert daemon.terminate() == 0

    def test_a_long_name_whose_clean_output_is_taken_gets_a_shortened_hash_name(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon]
    ) -> None:
        """`<stem>.<sha8>.txt` would be 259 bytes: its stem is cut so it fits."""
        stem = "q" * 251
        workspace.outbox.mkdir()
        (workspace.outbox / f"{stem}.txt").write_bytes(b"somebody else's")
        daemon = daemon_factory(workspace.write_config()).start()
        daemon.wait_event("watching")
        data = png_bytes(7)
        drop_long(workspace, f"{stem}.png", data)
        wait_for(lambda: (workspace.archive / f"{stem}.png").exists(), 60, what="the source archived")
        (output,) = [p for p in workspace.outbox.iterdir() if p.name != f"{stem}.txt"]
        assert output.name == "q" * (255 - 13) + f".{sha256(data)[:8]}.txt"
        assert (workspace.outbox / f"{stem}.txt").read_bytes() == b"somebody else's"
        assert daemon.terminate() == 0


class TestPermissions:
    def test_a_private_source_gives_a_private_output_and_report_and_the_journal_is_private(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon]
    ) -> None:
        """A 0600 scan: its text and its error report are 0600 too; state_dir is the daemon's alone."""
        old = os.umask(0o022)  # the daemon inherits it: outputs would be 0644 if the source did not count
        try:
            daemon = daemon_factory(workspace.write_config(state_dir="state")).start()
        finally:
            os.umask(old)
        daemon.wait_event("watching")
        for name, data in (("private.png", png_bytes(3)), ("private.xyz", b"x"), ("open.png", png_bytes(4))):
            drop_long(workspace, name, data, 0o644 if name.startswith("open") else 0o600)
        wait_for(lambda: (workspace.outbox / "private.txt").exists() and (workspace.outbox / "open.txt").exists(),
                 60, what="both outputs")
        wait_for(lambda: report_path_for(workspace.quarantine / "private.xyz").exists(), 60, what="the report")
        assert mode_of(workspace.outbox / "private.txt") == 0o600
        assert mode_of(report_path_for(workspace.quarantine / "private.xyz")) == 0o600
        assert mode_of(workspace.outbox / "open.txt") == 0o644
        state = workspace.root / "state"
        assert mode_of(state) == 0o700
        journal = state / "journal.sqlite3"
        for side in ("", "-wal", "-shm"):
            assert mode_of(f"{journal}{side}") == 0o600, side
        for path in state.iterdir():  # the lock, the owner record, the journal's marker, ...
            assert mode_of(path) & 0o077 == 0, path.name
        assert daemon.terminate() == 0

"""Watching heals itself: a lost inbox is watched again, an overflow rescans, stderr stays JSON.

Every test runs with `rescan_seconds: 0`, so nothing but the healing itself can find a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ocr_watch.emulator import Emulator
from ocr_watch.testing import Daemon, Workspace, png_bytes, wait_for

pytestmark = pytest.mark.timeout(120)

MAX_QUEUED_EVENTS = Path("/proc/sys/fs/inotify/max_queued_events")


def stderr_lines(daemon: Daemon) -> list[str]:
    return daemon.log_path.read_text(errors="replace").splitlines()


def assert_all_json(daemon: Daemon) -> None:
    """Every line the daemon wrote on stderr (not a terminal here) is a JSON object."""
    bad = []
    for line in stderr_lines(daemon):
        try:
            if not isinstance(json.loads(line), dict):
                bad.append(line)
        except json.JSONDecodeError:
            bad.append(line)
    assert bad == []


def names(daemon: Daemon) -> list[str]:
    return [str(e.get("event")) for e in daemon.events()]


class TestInboxLost:
    def test_inbox_removed_and_recreated_is_watched_again(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """rmtree then mkdir at once (ext4 may even hand back the same inode number): a file dropped
        into the new inbox is processed, and the log says the inbox was lost and is watched again."""
        daemon = daemon_factory(workspace.write_config()).start()
        daemon.wait_event("watching")
        workspace.drop("before.png", png_bytes(1))
        # Archived, not only written: the source's move out of the inbox must be over, or the
        # rmtree below races it.
        wait_for(lambda: (workspace.archive / "before.png").exists(), 60, what="file before the loss done")

        shutil.rmtree(workspace.inbox)
        workspace.inbox.mkdir()
        workspace.drop("after.png", png_bytes(2))
        wait_for(lambda: (workspace.outbox / "after.txt").exists(), 60, what="file dropped into the new inbox done")
        lost = daemon.wait_event("inbox_lost", 30)[0]
        again = daemon.wait_event("watching_again", 30)[0]
        assert lost["inbox"] == again["inbox"] == str(workspace.inbox)
        order = names(daemon)
        assert order.index("inbox_lost") < order.index("watching_again")
        # Dropped into the new inbox afterwards: found by events, the restart's scan found nothing new.
        workspace.drop("later.png", png_bytes(3))
        wait_for(lambda: (workspace.outbox / "later.txt").exists(), 60, what="a later file done")
        assert daemon.terminate() == 0
        assert emulator.stats()["creates"] == 3
        assert_all_json(daemon)

    def test_inbox_renamed_away_the_new_one_is_watched_not_the_old(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """The configured path is what is watched: the renamed-away folder is not followed."""
        daemon = daemon_factory(workspace.write_config()).start()
        daemon.wait_event("watching")
        old = workspace.root / "inbox.old"
        workspace.inbox.rename(old)
        workspace.inbox.mkdir()
        daemon.wait_event("watching_again", 30)
        (old / "stray.png").write_bytes(png_bytes(1))
        workspace.drop("new.png", png_bytes(2))
        wait_for(lambda: (workspace.outbox / "new.txt").exists(), 60, what="file in the new inbox done")
        # One more round trip through the new inbox, so a stray report had all the time it needs.
        workspace.drop("new2.png", png_bytes(3))
        wait_for(lambda: (workspace.outbox / "new2.txt").exists(), 60, what="second file in the new inbox done")
        assert daemon.terminate() == 0
        assert (old / "stray.png").read_bytes() == png_bytes(1)
        assert not (workspace.outbox / "stray.txt").exists()
        assert emulator.stats()["creates"] == 2
        lost = [e for e in daemon.events() if e.get("event") == "inbox_lost"]
        assert len(lost) == 1 and lost[0]["inbox"] == str(workspace.inbox)
        assert_all_json(daemon)

    def test_inbox_gone_for_a_while_is_waited_for(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """Missing for several checks: the daemon keeps running, and watches the inbox when it is back."""
        daemon = daemon_factory(workspace.write_config()).start()
        daemon.wait_event("watching")
        shutil.rmtree(workspace.inbox)
        daemon.wait_event("inbox_lost", 30)
        (workspace.root / "elsewhere").mkdir()
        (workspace.root / "elsewhere" / "waiting.png").write_bytes(png_bytes(1))
        # The folder comes back whole, a file already in it: the restart's scan finds it.
        (workspace.root / "elsewhere").rename(workspace.inbox)
        daemon.wait_event("watching_again", 30)
        wait_for(lambda: (workspace.outbox / "waiting.txt").exists(), 60, what="file in the returned inbox done")
        assert daemon.proc is not None and daemon.proc.poll() is None
        assert daemon.terminate() == 0
        assert emulator.stats()["creates"] == 1
        assert_all_json(daemon)


@contextlib.contextmanager
def small_inotify_queue(size: int) -> Iterator[None]:
    """Lower the machine-wide inotify queue length; restored on leaving (it is read at inotify_init)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to lower fs.inotify.max_queued_events")
    try:
        before = MAX_QUEUED_EVENTS.read_text()
        MAX_QUEUED_EVENTS.write_text(str(size))
    except OSError as exc:
        pytest.skip(f"cannot change {MAX_QUEUED_EVENTS}: {exc}")
    try:
        yield
    finally:
        MAX_QUEUED_EVENTS.write_text(before)


class TestOverflow:
    def test_an_overflow_scans_at_once_and_watchdogs_warning_is_a_json_line(
        self, workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
    ) -> None:
        """A real overflow: the daemon is stopped (SIGSTOP) while 80 files (about 400 events) arrive
        through a queue of 128 events. Every file is processed (events were lost: the scan finds
        them), and watchdog's own warning reaches stderr as a JSON line naming its logger."""
        daemon = daemon_factory(workspace.write_config(watch={"mode": "native"}))
        with small_inotify_queue(128):  # machine-wide: kept only until the daemon has its inotify instance
            daemon.start()
            daemon.wait_event("watching", 60)
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGSTOP)
        try:
            for n in range(80):
                workspace.drop(f"f{n:02d}.png", png_bytes(n))
        finally:
            daemon.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: len(workspace.files(workspace.outbox)) == 80, 90, what="all 80 files done")
        overflow = daemon.wait_event("inbox_overflow", 30)[0]
        assert overflow["inbox"] == str(workspace.inbox)
        library = [e for e in daemon.events() if str(e.get("logger", "")).startswith("watchdog.")]
        assert library and all(e["level"] == "warning" for e in library)
        assert any("overflow" in str(e["event"]) for e in library)
        assert daemon.terminate() == 0
        assert emulator.stats()["creates"] == 80
        assert_all_json(daemon)

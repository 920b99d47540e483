"""InboxWatcher's health, restart and overflow hook; the watch task; a dead observer ends the daemon."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from watchdog.observers.inotify import InotifyObserver
from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent, WatchDescriptor

from ocr_watch.emulator import Emulator
from ocr_watch.testing import EMU_KEY, restore_logging, wait_for
from ocr_watch.watch import InboxWatcher, WatcherDied, keep_watching
from ocr_watch.watch.observer import Health

pytestmark = pytest.mark.timeout(60)

MAX_QUEUED_EVENTS = Path("/proc/sys/fs/inotify/max_queued_events")
needs_linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify")


class Seen:
    """What a watcher reported, collected from watchdog's threads."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, str]] = []
        self.overflow = threading.Event()
        self.trouble = threading.Event()

    def report(self, rel: str, reason: str) -> None:
        self.reports.append((rel, reason))


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@contextlib.contextmanager
def started(inbox: Path, seen: Seen, mode: str = "native") -> Iterator[InboxWatcher]:
    watcher = InboxWatcher(inbox, seen.report, mode=mode, poll_interval_s=0.1,
                           on_trouble=seen.trouble.set, on_overflow=seen.overflow.set)
    watcher.start()
    try:
        yield watcher
    finally:
        watcher.stop()


@needs_linux
class TestOverflow:
    def test_watchdogs_own_overflow_path_reaches_on_overflow(self, inbox: Path, seen: Seen) -> None:
        """Pins the hook to the installed watchdog: its InotifyFD handles a kernel IN_Q_OVERFLOW
        (wd -1) by logging a warning, which the watcher turns into `on_overflow`."""
        with started(inbox, seen) as watcher:
            observer = watcher._observer
            assert isinstance(observer, InotifyObserver)
            overflow = InotifyEvent(WatchDescriptor(-1), InotifyConstants.IN_Q_OVERFLOW, 0, b"")
            observer._inotify_fd.handle_event(overflow)
            assert seen.overflow.is_set()
            # watchdog rebuilt its watches: events still come.
            (inbox / "a.png").write_bytes(b"x")
            wait_for(lambda: ("a.png", "closed") in seen.reports, 30, what="an event after the overflow")
        seen.overflow.clear()
        observer._inotify_fd.handle_event(overflow)  # stopped: no longer listening
        assert not seen.overflow.is_set()

    def test_a_real_kernel_overflow_reaches_on_overflow(self, inbox: Path, seen: Seen) -> None:
        """A queue of one event (machine-wide, so only while the watcher's inotify instance is made)."""
        if os.geteuid() != 0:
            pytest.skip("needs root to lower fs.inotify.max_queued_events")
        try:
            before = MAX_QUEUED_EVENTS.read_text()
            MAX_QUEUED_EVENTS.write_text("1")
        except OSError as exc:
            pytest.skip(f"cannot change {MAX_QUEUED_EVENTS}: {exc}")
        try:
            watcher = InboxWatcher(inbox, seen.report, mode="native", on_overflow=seen.overflow.set)
            watcher.start()
        finally:
            MAX_QUEUED_EVENTS.write_text(before)
        try:
            for n in range(200):
                (inbox / f"f{n}.png").write_bytes(b"x")
            assert seen.overflow.wait(30), "no overflow reported"
        finally:
            watcher.stop()


class TestHealth:
    @pytest.mark.parametrize("mode", ["native", "polling"])
    def test_renamed_away_is_lost_and_the_configured_path_is_watched_again(
            self, inbox: Path, seen: Seen, mode: str) -> None:
        with started(inbox, seen, mode) as watcher:
            assert watcher.health() is Health.OK
            inbox.rename(inbox.with_name("away"))
            assert watcher.health() is Health.LOST
            watcher.drop()
            assert watcher.restart() is False  # nothing at the path yet
            inbox.mkdir()
            assert watcher.restart() is True
            assert watcher.health() is Health.OK
            (inbox.with_name("away") / "stray.png").write_bytes(b"x")
            (inbox / "new.png").write_bytes(b"x")
            wait_for(lambda: any(rel == "new.png" for rel, _ in seen.reports), 30, what="event from the new inbox")
            assert all(rel != "stray.png" for rel, _ in seen.reports)

    @needs_linux
    def test_deleted_and_recreated_at_once_is_lost_even_with_the_same_inode(self, inbox: Path, seen: Seen) -> None:
        """ext4 hands a freed inode number straight back: the root's delete event is what tells."""
        with started(inbox, seen) as watcher:
            shutil.rmtree(inbox)
            inbox.mkdir()
            assert seen.trouble.wait(30), "on_trouble not called for the deleted inbox"
            assert watcher.health() is Health.LOST

    def test_an_observer_thread_that_died_is_dead_and_a_stopped_watcher_is_not(
            self, inbox: Path, seen: Seen) -> None:
        with started(inbox, seen) as watcher:
            observer = watcher._observer
            assert observer is not None
            observer.stop()  # from outside, as a crash would end it
            observer.join(10)
            assert watcher.health() is Health.DEAD
        assert watcher.health() is Health.OK  # stopped by us: nothing to report


class TestKeepWatching:
    def test_a_dead_observer_fails_the_watch_task(self, inbox: Path, seen: Seen) -> None:
        async def scenario() -> None:
            with started(inbox, seen) as watcher:
                task = asyncio.create_task(keep_watching(watcher, lambda: None, every_s=0.05))
                await asyncio.sleep(0.2)  # the scenario: a few healthy checks first
                assert not task.done()
                assert watcher._observer is not None
                await asyncio.to_thread(watcher._observer.stop)
                with pytest.raises(WatcherDied, match="died"):
                    await asyncio.wait_for(task, 30)

        asyncio.run(scenario())

    def test_a_lost_inbox_is_watched_again_then_scanned(self, inbox: Path, seen: Seen) -> None:
        async def scenario() -> None:
            scans: list[int] = []
            with started(inbox, seen) as watcher:
                task = asyncio.create_task(keep_watching(watcher, lambda: scans.append(1), every_s=0.05))
                shutil.rmtree(inbox)
                await asyncio.sleep(0.3)  # the scenario: missing for several checks
                assert scans == [] and not task.done()
                inbox.mkdir()
                deadline = asyncio.get_running_loop().time() + 30
                while not scans and asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(0.02)
                assert scans == [1] and watcher.health() is Health.OK
                task.cancel()

        asyncio.run(scenario())


@needs_linux
def test_a_dead_observer_ends_ocr_watch_run_with_a_non_zero_exit(
        tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`ocr-watch run` (in process, so the thread can be killed): exit 70, and the log says why."""
    from ocr_watch import cli, served

    made: list[InboxWatcher] = []

    class Recorded(InboxWatcher):
        def start(self) -> None:
            super().start()
            made.append(self)

    monkeypatch.setattr(served, "InboxWatcher", Recorded)  # each job's watcher is built there
    (tmp_path / "inbox").mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "folders": {"inbox": "inbox", "outbox": "outbox", "quarantine": "quarantine"},
        "api": {"base_url": emulator.base_url, "key": EMU_KEY},
        "watch": {"mode": "native", "rescan_seconds": 0},
    }))

    def kill_the_observer() -> None:
        watcher = wait_for(lambda: made[0] if made else None, 30, what="the daemon's watcher")
        observer = watcher._observer
        assert observer is not None
        observer.stop()

    killer = threading.Thread(target=kill_the_observer)
    killer.start()
    try:
        code = cli.main(["run", "--config", str(config)])
    finally:
        killer.join(30)
        restore_logging()
    err = capsys.readouterr().err
    assert code == 70
    assert '"watcher_died"' in err and '"internal_error"' in err and "WatcherDied" in err
    # Why comes first, then the orderly stop (the journal closed), then the exit.
    assert err.index('"watcher_died"') < err.index('"stopping"') < err.index('"internal_error"')


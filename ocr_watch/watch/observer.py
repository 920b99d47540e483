"""Chooses the observer (in one place) and owns its start, stop, join, health and restart.

`native` is inotify on Linux: events as they happen, and close-after-write, which lets a
finished file go at once. `polling` re-lists the folder every interval: slower, but it sees
changes made on another machine of an NFS or SMB share, which inotify never does. `auto`
tries native and falls back to polling if the kernel refuses (watch limit reached).

A watch belongs to the inbox folder it was started on, not to the configured path: deleted,
the watch ends; renamed away, it follows the folder to its new name (inotify watches inodes).
So the watcher remembers which folder it watches (st_dev, st_ino) and `health()` tells a
supervisor (`supervisor.keep_watching`) when the path no longer holds that folder, which
then restarts the observer on whatever the path holds when it is a folder again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import sys
import threading
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TypeVarTuple

import structlog
from watchdog.events import DirDeletedEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from ocr_watch.choices import WatchMode

from .handler import EVENTS_OF_INTEREST, InboxHandler, Report

__all__ = ["OVERFLOW_LOGGER", "OVERFLOW_MESSAGE", "Health", "InboxWatcher"]

log = structlog.get_logger("ocr_watch.watch")

# watchdog 7.1 has no public hook for an inotify queue overflow: `InotifyFD.handle_event` logs
# this warning and rebuilds its watches, and nothing reaches an event handler. So the watcher
# listens for that record (tests/watch/test_overflow.py pins it to the installed watchdog).
OVERFLOW_LOGGER = "watchdog.observers.inotify_c"
OVERFLOW_MESSAGE = "Inotify queue overflowed"


class Health(Enum):
    """What `InboxWatcher.health()` found."""

    OK = "ok"
    LOST = "lost"  # the path no longer holds the folder being watched, or its watch ended
    DEAD = "dead"  # the observer's thread died without being stopped: no more events, ever


class _OverflowListener(logging.Handler):
    """Calls `on_overflow` when watchdog says the kernel dropped events."""

    def __init__(self, on_overflow: Callable[[], object]) -> None:
        super().__init__(level=logging.WARNING)
        self._on_overflow = on_overflow

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, str) and record.msg.startswith(OVERFLOW_MESSAGE):
            self._on_overflow()


class _RootGuard(FileSystemEventHandler):
    """Sits in front of the inbox handler: notices the inbox itself deleted, then drops events.

    Once the folder is known lost, whatever its old watch still reports (a renamed-away
    folder's events carry the configured path) is not about the inbox any more.
    """

    def __init__(self, root: Path, inner: InboxHandler, on_lost: Callable[[], object]) -> None:
        self._root = os.fspath(root)
        self._inner = inner
        self._on_lost = on_lost
        self.lost = False

    def dispatch(self, event: FileSystemEvent) -> None:
        if self.lost:
            return
        if isinstance(event, DirDeletedEvent) and os.fsdecode(event.src_path) == self._root:
            self.lost = True
            self._on_lost()
            return
        self._inner.dispatch(event)


class InboxWatcher:
    """A recursive watch on the inbox that reports (relative path, reason)."""

    def __init__(self, root: Path, report: Report, *, mode: WatchMode | str = WatchMode.AUTO,
                 poll_interval_s: float = 1.0,
                 on_trouble: Callable[[], object] | None = None,
                 on_overflow: Callable[[], object] | None = None,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        """`report(rel, reason)`: a path and why. `on_trouble`: the inbox itself was deleted,
        so a supervisor can check `health()` at once. `on_overflow`: the kernel dropped events;
        the inbox needs a scan. With `loop`, the watcher owns the crossing from its threads:
        all three are called on that loop (`call_soon_threadsafe`); without, on a watchdog
        thread."""
        self.root = root
        self.mode = mode
        self.poll_interval_s = poll_interval_s
        self.on_trouble = on_loop(loop, on_trouble) if on_trouble is not None else None
        self.on_overflow = on_loop(loop, on_overflow) if on_overflow is not None else None
        self._handler = InboxHandler(root, on_loop(loop, report))
        self._guard: _RootGuard | None = None
        self._observer: BaseObserver | None = None
        self._identity: tuple[int, int] | None = None
        self._listener = _OverflowListener(self._overflowed)
        # start, stop and restart come from the loop's threads and the supervisor's: one at a time.
        self._lock = threading.Lock()
        self._closed = False
        self.kind: str | None = None

    def _overflowed(self) -> None:
        log.warning("inbox_overflow", inbox=str(self.root), action="scan")
        if self.on_overflow is not None:
            self.on_overflow()

    def _lost(self) -> None:
        if self.on_trouble is not None:
            self.on_trouble()

    def _make(self, kind: str) -> BaseObserver:
        observer: BaseObserver = (
            PollingObserver(timeout=self.poll_interval_s) if kind == "polling" else _native_observer()
        )
        self._handler.native = kind == "native"
        self._guard = _RootGuard(self.root, self._handler, self._lost)
        observer.schedule(self._guard, str(self.root), recursive=True, event_filter=EVENTS_OF_INTEREST)
        observer.start()
        return observer

    def _start(self) -> None:
        """Start an observer on what the path holds now (under the lock); OSError if it cannot."""
        # The folder's identity is read before its watch is added: if the path is swapped in
        # between, the next health check sees a mismatch and restarts, never the other way.
        st = os.stat(self.root)
        kinds = {WatchMode.AUTO: ["native", "polling"], WatchMode.NATIVE: ["native"],
                 WatchMode.POLLING: ["polling"]}[WatchMode(self.mode)]
        for kind in kinds:
            try:
                self._observer = self._make(kind)
            except OSError as exc:
                if kind == kinds[-1]:
                    raise
                log.warning("native_watch_unavailable", error=str(exc), fallback="polling")
                continue
            self._identity = (st.st_dev, st.st_ino)
            self.kind = kind
            overflow_logger = logging.getLogger(OVERFLOW_LOGGER)
            if self._listener not in overflow_logger.handlers:
                overflow_logger.addHandler(self._listener)
            return

    def _stop(self) -> None:
        logging.getLogger(OVERFLOW_LOGGER).removeHandler(self._listener)
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=10)

    def start(self) -> None:
        with self._lock:
            self._start()
        log.info("watching", inbox=str(self.root), observer=self.kind)

    def stop(self) -> None:
        """Stop for good: a later `health()` is OK and `restart()` does nothing."""
        with self._lock:
            self._closed = True
            self._stop()

    def health(self) -> Health:
        """Cheap (one stat): is the observer alive, and does the path still hold its folder?"""
        with self._lock:
            observer, guard, identity = self._observer, self._guard, self._identity
            if self._closed:
                return Health.OK
        verdict = Health.OK if observer is not None else Health.LOST
        if observer is not None and not observer.is_alive():
            verdict = Health.DEAD
        elif observer is not None and guard is not None and guard.lost:
            verdict = Health.LOST
        # An emitter ends itself when the inbox is deleted (inotify, polling); any other end is
        # a watch that reports nothing any more: watching again is the cure either way.
        elif observer is not None and not all(emitter.is_alive() for emitter in observer.emitters.copy()):
            verdict = Health.LOST
        elif observer is not None:
            try:
                st = os.stat(self.root)
            except OSError:
                verdict = Health.LOST
            else:
                if not stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) != identity:
                    verdict = Health.LOST
        with self._lock:
            if self._closed or self._observer is not observer:
                return Health.OK  # stopped or restarted meanwhile: this look is out of date
        return verdict

    def thread_alive(self) -> bool:
        """Cheap, from any thread (the systemd watchdog's): False only when an observer runs
        that has not been stopped and its thread is dead (what `health()` calls DEAD). Between
        a lost inbox and its return there is no observer, and that is being cured: True."""
        observer = self._observer
        return self._closed or observer is None or observer.is_alive()

    def set_poll_interval(self, seconds: float) -> bool:
        """A reload: the polling observer lists the inbox every `seconds`. True if the one
        running must be restarted for it (a polling one); a native one has no interval."""
        changed = seconds != self.poll_interval_s
        self.poll_interval_s = seconds
        return changed and self.kind == "polling"

    def drop(self) -> None:
        """The inbox is lost: stop its observer and ignore whatever the old watch still says."""
        with self._lock:
            if self._guard is not None:
                self._guard.lost = True
            self._stop()

    def restart(self) -> bool:
        """Watch the path again if it is a folder now; False if not (yet), or if stopped."""
        with self._lock:
            if self._closed:
                return False
            if not os.path.isdir(self.root):
                return False
            self._stop()
            try:
                self._start()
            except OSError as exc:
                log.warning("watch_failed", inbox=str(self.root), error=str(exc))
                self._stop()
                return False
            return True


_Args = TypeVarTuple("_Args")


def on_loop(loop: asyncio.AbstractEventLoop | None,
            fn: Callable[[*_Args], object]) -> Callable[[*_Args], None]:
    """`fn`, called on `loop` from whatever thread calls the result (as is, without a loop).
    A call after the loop closed (the daemon is stopping) is dropped."""
    if loop is None:
        return fn  # type: ignore[return-value]  # its result is ignored either way

    def cross(*args: *_Args) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
            loop.call_soon_threadsafe(fn, *args)
    return cross


def _native_observer() -> BaseObserver:
    """inotify with full move events on Linux: a file moved in from another folder is then a
    move (whole, ready now), not a creation that must wait out the settle time."""
    if sys.platform.startswith("linux"):
        from watchdog.observers.inotify import InotifyObserver

        return InotifyObserver(generate_full_events=True)
    return Observer()

"""Chooses the observer (in one place) and owns its start, stop and join.

`native` is inotify on Linux: events as they happen, and close-after-write, which lets a
finished file go at once. `polling` re-lists the folder every interval: slower, but it sees
changes made on another machine of an NFS or SMB share, which inotify never does. `auto`
tries native and falls back to polling if the kernel refuses (watch limit reached).
"""

from __future__ import annotations

import sys
from pathlib import Path

import structlog
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from .handler import EVENTS_OF_INTEREST, InboxHandler, Report

__all__ = ["InboxWatcher"]

log = structlog.get_logger("ocr_watch.watch")


class InboxWatcher:
    """A recursive watch on the inbox that reports (relative path, reason)."""

    def __init__(self, root: Path, report: Report, *, mode: str = "auto", poll_interval_s: float = 1.0) -> None:
        self.root = root
        self.mode = mode
        self.poll_interval_s = poll_interval_s
        self._handler = InboxHandler(root, report)
        self._observer: BaseObserver | None = None
        self.kind: str | None = None

    def _make(self, kind: str) -> BaseObserver:
        observer: BaseObserver = (
            PollingObserver(timeout=self.poll_interval_s) if kind == "polling" else _native_observer()
        )
        self._handler.native = kind == "native"
        observer.schedule(self._handler, str(self.root), recursive=True, event_filter=EVENTS_OF_INTEREST)
        observer.start()
        return observer

    def start(self) -> None:
        kinds = {"auto": ["native", "polling"], "native": ["native"], "polling": ["polling"]}[self.mode]
        for kind in kinds:
            try:
                self._observer = self._make(kind)
            except OSError as exc:
                if kind == kinds[-1]:
                    raise
                log.warning("native_watch_unavailable", error=str(exc), fallback="polling")
                continue
            self.kind = kind
            log.info("watching", inbox=str(self.root), observer=kind)
            return

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=10)
            self._observer = None


def _native_observer() -> BaseObserver:
    """inotify with full move events on Linux: a file moved in from another folder is then a
    move (whole, ready now), not a creation that must wait out the settle time."""
    if sys.platform.startswith("linux"):
        from watchdog.observers.inotify import InotifyObserver

        return InotifyObserver(generate_full_events=True)
    return Observer()

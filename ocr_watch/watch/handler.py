"""The only code that runs on watchdog's thread: it turns events into (path, reason) calls.

It does no I/O and takes no lock of ours, so the observer never waits on the daemon; the
callback it is given is the watcher's crossing onto the event loop (`observer.on_loop`).

Reasons:
- ``closed``: a writer closed the file, or it was moved in whole (from inside the inbox or
  from another folder): ready now.
- ``writing``: native events only: data was written, so a writer has the file open; it is
  not ready until it is closed, however long the writer pauses.
- ``changed``: created with no write yet (a hard link), or written to as the polling observer
  sees it (no close events there): wait until it settles.
- ``dir``: a directory appeared (created or moved in): its contents need a scan.
- ``gone``: deleted or moved away: forget it.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

__all__ = ["EVENTS_OF_INTEREST", "InboxHandler", "Reason", "Report"]


class Reason(enum.StrEnum):
    """Why a path is reported (see the module docstring); `SCAN`: found by a listing."""

    CLOSED = "closed"
    WRITING = "writing"
    CHANGED = "changed"
    DIR = "dir"
    GONE = "gone"
    SCAN = "scan"


Report = Callable[[str, Reason], None]

# Opens, no-write closes and attribute changes say nothing about a file being ready.
EVENTS_OF_INTEREST: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    DirCreatedEvent,
    DirMovedEvent,
    DirDeletedEvent,
]


class InboxHandler(FileSystemEventHandler):
    """Routes inbox events to `report(relative_posix_path, reason)`."""

    def __init__(self, root: Path, report: Report) -> None:
        self._root = os.fspath(root)
        self._report = report
        # Set by the watcher for the observer it runs: only inotify reports closes, so only
        # there does a write mean "wait for the close".
        self.native = False

    def _rel(self, path: str | bytes) -> str | None:
        text = os.fsdecode(path)
        if not text:
            return None  # the outside end of a move in or out (generate_full_events)
        rel = os.path.relpath(text, self._root)
        if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
            return None  # moved out of the inbox, or the inbox itself
        return rel.replace(os.sep, "/")

    def _send(self, path: str | bytes, reason: Reason) -> None:
        rel = self._rel(path)
        if rel is not None:
            self._report(rel, reason)

    def on_created(self, event: FileSystemEvent) -> None:
        self._send(event.src_path, Reason.DIR if event.is_directory else Reason.CHANGED)

    def on_modified(self, event: FileSystemEvent) -> None:
        # FileAttribEvent (tar or `cp -p` setting times after the close) is another class,
        # filtered out by EVENTS_OF_INTEREST: it must not make a closed file wait.
        if not isinstance(event, DirModifiedEvent):
            self._send(event.src_path, Reason.WRITING if self.native else Reason.CHANGED)

    def on_closed(self, event: FileSystemEvent) -> None:
        self._send(event.src_path, Reason.CLOSED)

    def on_deleted(self, event: FileSystemEvent) -> None:
        self._send(event.src_path, Reason.GONE)

    def on_moved(self, event: FileSystemEvent) -> None:
        self._send(event.src_path, Reason.GONE)
        self._send(event.dest_path, Reason.DIR if event.is_directory else Reason.CLOSED)

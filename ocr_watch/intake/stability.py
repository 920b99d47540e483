"""Decide when a file in the inbox is finished being written, so a half-copied scan is never sent.

A file reported closed (inotify close-after-write, or moved into the inbox whole) is ready at
once. A file reported *writing* (inotify saw a write, so a writer has it open) waits for its
close, however long the writer pauses. Any other file must keep the same size, mtime and inode
for ``settle_seconds``. When that time is up the tracker checks the file once more through
``restat`` (an injected ``stat``), because a slow writer on a network share may produce no
event at all while it is still going.

Belt and braces, an injected ``writers`` check (a read lease, see ``source.writer_open``)
says whether any process still has the file open for writing: True keeps any file waiting
(a closed one too: another writer may still hold it); False lets a *writing* file whose
close event was lost go once quiet; None ("cannot tell") leaves the events to decide.

The clock is passed in; nothing here sleeps. The caller sleeps until :meth:`next_deadline`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ocr_watch.intake.identity import FileStamp, stamp

__all__ = ["WRITER_RECHECK_S", "SettleTracker"]

# How often a file still open for writing is looked at again, at least (settle_seconds may be 0).
WRITER_RECHECK_S = 1.0


@dataclass
class _Entry:
    stamp: FileStamp
    ready_at: float
    closed: bool
    writing: bool = False


class SettleTracker:
    """Files seen but not yet handed on, each with the time it will be ready."""

    def __init__(self, settle_seconds: float,
                 restat: Callable[[Path], FileStamp] | None = stamp,
                 writers: Callable[[Path], bool | None] | None = None) -> None:
        """``restat`` re-reads a stamp when a deadline passes; None trusts the reports alone.
        ``writers`` says whether a file is open for writing (None: cannot tell)."""
        if settle_seconds < 0:
            raise ValueError(f"settle_seconds must be >= 0, got {settle_seconds!r}")
        self.settle_seconds = settle_seconds
        self._restat = restat
        self._writers = writers
        self._entries: dict[Path, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, path: object) -> bool:
        return path in self._entries

    def seen(self, path: Path, stamp: FileStamp, now: float, closed: bool = False,
             writing: bool = False, quiet_s: float = 0.0) -> None:
        """Record an observation of ``path``; a changed stamp restarts its settle time.

        ``writing``: a writer has it open; it stays waiting until a ``closed`` report (or,
        with a ``writers`` check that says no writer is left, until quiet). ``quiet_s``: how
        long the file is known to have been unchanged already (a scan finding a file whose
        mtime is that old): its settle time is shortened by as much, so a backlog found at
        start is ready at once.
        """
        entry = self._entries.get(path)
        if closed:
            self._entries[path] = _Entry(stamp, now, closed=True)
        elif writing or entry is None or entry.stamp != stamp:
            # A plain report (a scan) does not end "writing": only a close does.
            still_writing = writing or (entry is not None and entry.writing and not entry.closed)
            wait = self.settle_seconds if still_writing else max(0.0, self.settle_seconds - quiet_s)
            self._entries[path] = _Entry(stamp, now + wait, closed=False, writing=still_writing)
        # Same stamp as before: keep the running deadline (and a closed file stays ready).

    def forget(self, path: Path) -> None:
        """Stop tracking ``path`` (deleted, moved away, or handled elsewhere)."""
        self._entries.pop(path, None)

    def next_deadline(self) -> float | None:
        """The earliest time a tracked file may become ready, or None if none is tracked."""
        return min((e.ready_at for e in self._entries.values()), default=None)

    def expiring(self, now: float) -> list[Path]:
        """The paths :meth:`due` will re-check at ``now``: not closed, settle time up. A
        caller that must not do I/O where it calls ``due`` reads their stamps first (and asks
        about their writers, and those of the closed files it just reported)."""
        return [path for path, e in self._entries.items() if not e.closed and e.ready_at <= now]

    def due(self, now: float) -> list[Path]:
        """Remove and return the paths ready at ``now``, earliest first.

        A file whose settle time is up but whose stamp changed since gets a new deadline; one
        that vanished is dropped (it is gone; a new event will bring a new file back). If the
        stamp cannot be read for another reason the path is returned, so the worker meets the
        error and quarantines the file with its reason rather than skipping it silently.
        """
        ready = []
        for path, entry in sorted(self._entries.items(), key=lambda item: item[1].ready_at):
            if entry.ready_at > now:
                break
            if not entry.closed and self._restat is not None:
                try:
                    current = self._restat(path)
                except FileNotFoundError:
                    del self._entries[path]
                    continue
                except OSError:
                    current = entry.stamp
                if current != entry.stamp:
                    self._entries[path] = _Entry(current, now + self.settle_seconds, closed=False,
                                                 writing=entry.writing)
                    continue
            writers = self._writers(path) if self._writers is not None else None
            if writers or (writers is None and entry.writing):
                # Still open for writing (or written to, no close seen, and no way to ask):
                # look again in a while; a close report makes it ready at once.
                self._entries[path] = _Entry(entry.stamp, now + max(self.settle_seconds, WRITER_RECHECK_S),
                                             closed=False, writing=True)
                continue
            del self._entries[path]
            ready.append(path)
        return ready

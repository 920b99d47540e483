"""Admission: from "the watcher saw this path" to "a journal row in the pool's queue".

Runs on the event loop. Reports arrive from the watcher thread (through
`call_soon_threadsafe`) and from scans; each path is checked against the ignore rules,
waits in the settle tracker until it is finished being written, and is then recorded in the
journal once. A path that already has a live row, or a file that already finished with the
very same stamp (kept in place by `on_success: keep`), is not admitted again: that is the
idempotent repository that keeps a rescan from paying twice.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import structlog

from ocr_watch.intake.filters import ignore_reason
from ocr_watch.intake.identity import FileStamp, stamp
from ocr_watch.intake.stability import SettleTracker
from ocr_watch.journal import Journal
from ocr_watch.watch import scan_files

__all__ = ["Admission"]

log = structlog.get_logger("ocr_watch.admission")


class Admission:
    """Settles reported paths and admits them into the journal and the pool's queue."""

    def __init__(
        self,
        inbox: Path,
        journal: Journal,
        enqueue: Callable[[int], None],
        options_key: str,
        *,
        settle_s: float,
        activity: asyncio.Event,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inbox = inbox
        self.journal = journal
        self._enqueue = enqueue
        self._options_key = options_key
        self._tracker = SettleTracker(settle_s)
        self._activity = activity
        self._mono = mono
        self._wake = asyncio.Event()
        self._scans = 0
        self.admitted = 0
        # When a file was first reported, for drop-to-upload measurements in the logs.
        self._reported_at: dict[str, float] = {}

    @property
    def idle(self) -> bool:
        return len(self._tracker) == 0 and self._scans == 0

    def report(self, rel: str, reason: str) -> None:
        """Called on the loop for every event or scan hit; cheap, never blocks for long."""
        if reason == "dir":
            self.spawn_scan(rel)
            return
        path = self.inbox / rel
        if reason == "gone":
            self._tracker.forget(path)
            return
        if ignore_reason(PurePosixPath(rel)) is not None:
            return
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._tracker.forget(path)
            return
        except OSError as exc:
            log.warning("stat_failed", file=rel, error=str(exc))
            return
        if not stat.S_ISREG(st.st_mode):
            return
        current = FileStamp.from_stat(st)
        self._reported_at.setdefault(rel, self._mono())
        self._tracker.seen(path, current, self._mono(), closed=reason == "closed")
        self._wake.set()

    def spawn_scan(self, below: str = "") -> asyncio.Task[None]:
        """List a folder in a thread and report what it holds (at start, rescan, new folder)."""
        self._scans += 1
        return asyncio.ensure_future(self._scan(below))

    async def _scan(self, below: str) -> None:
        try:
            found = await asyncio.to_thread(lambda: list(scan_files(self.inbox, below)))
            for rel in found:
                if self.inbox / rel in self._tracker:
                    continue
                self.report(rel, "scan")
            log.debug("scanned", folder=below or ".", files=len(found))
        finally:
            self._scans -= 1
            self._activity.set()
            self._wake.set()

    async def run(self) -> None:
        """Admit files as they settle; sleep exactly until the next one may be ready."""
        while True:
            for path in self._tracker.due(self._mono()):
                self._admit(path)
            self._activity.set()
            deadline = self._tracker.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._mono())
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    def _admit(self, path: Path) -> None:
        rel = path.relative_to(self.inbox).as_posix()
        reported = self._reported_at.pop(rel, None)
        try:
            current = stamp(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("stat_failed", file=rel, error=str(exc))
            return
        key = current.key
        if self.journal.live_for(rel) is not None:
            return  # already being worked on
        if self.journal.finished_with_stamp(rel, key) is not None:
            return  # this very file was finished and left in place
        row = self.journal.add(rel, key, self._options_key)
        self.admitted += 1
        log.info("file_admitted", file=rel, size=current.size,
                 settled_s=None if reported is None else round(self._mono() - reported, 4))
        self._enqueue(row.id)

"""Admission: from "the watcher saw this path" to "a journal row in the pool's queue".

Runs on the event loop. Reports arrive from the watcher thread (through
`call_soon_threadsafe`) and from scans; each path is checked against the ignore rules,
waits in the settle tracker until it is finished being written, and is then recorded in the
journal once. A path that already has a live row, or a file that already finished with the
very same stamp (kept in place by `on_success: keep`), is not admitted again: that is the
idempotent repository that keeps a rescan from paying twice.

The `stat` calls all this needs run in a thread, a batch at a time: an inbox on a network
share answers each one in a round trip, and 10,000 of those on the loop would stall every
upload, query and download for as long. A backlog flows at once: a scan hands on what it has
listed every `SCAN_BATCH` files, a step looks at no more than `STEP_BATCH` reports, and each
step's rows are inserted in one transaction, so the first upload starts while the rest of the
inbox is still being listed and admitted.

Only regular files are admitted: stamps are read with `lstat`, never through a symlink (nor
through a symlinked folder inside the inbox), and a symlink, FIFO, socket or device is logged
once (`not_a_regular_file`) and left alone. The same thread asks whether a writer still has
each file open (`source.writer_open`), so a paused writer's file is not taken even where no
event says so. A file reported while an earlier version of it is in flight is remembered and
looked at again the moment that row is released (`released`), not at the next rescan.

One admission per job (issue 18): its inbox, its name on every row, and its options, resolved
for each file as it is admitted (its job's, or its first matching rule's) and kept in the
journal, one row per format.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import stat
import time
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

import structlog

from ocr_watch.intake.filters import ignore_reason
from ocr_watch.intake.identity import FileStamp
from ocr_watch.intake.source import NotRegularFile, describe_mode, writer_open
from ocr_watch.intake.stability import SettleTracker
from ocr_watch.journal import Journal, RowOptions
from ocr_watch.watch import Reason, scan_files

__all__ = ["Admission"]

log = structlog.get_logger("ocr_watch.admission")

SCAN_BATCH = 500  # paths a scan hands on at a time
STEP_BATCH = 500  # reports looked at (stamped, settled, admitted) in one step


class Admission:
    """Settles reported paths and admits them into the journal and the pool's queue."""

    def __init__(
        self,
        inbox: Path,
        journal: Journal,
        enqueue: Callable[[int], None],
        options: Callable[[str], Sequence[RowOptions]],
        *,
        job: str = "default",
        settle_s: float,
        activity: asyncio.Event,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inbox = inbox
        self.journal = journal
        self._enqueue = enqueue
        self._options = options  # a file's options, one per format, by its path below the inbox
        self.job = job
        # The tracker's re-check reads stamps fetched in the batch's thread, not the disk.
        self._fetched: dict[Path, FileStamp | OSError] = {}
        # And whether a writer has the file open (None: cannot tell), asked in the same thread.
        self._writers: dict[Path, bool | None] = {}
        self._tracker = SettleTracker(settle_s, restat=self._fetched_stamp, writers=self._fetched_writers)
        # Paths found not to be regular files, logged once each until they are gone or change.
        self._special: set[str] = set()
        # Paths found ready while an earlier version had a live row: path -> reason to report
        # again when the pool releases that row.
        self._deferred: dict[str, Reason] = {}
        self._activity = activity
        self._mono = mono
        self._wake = asyncio.Event()
        # Reports not yet looked at: relative path -> its latest reason.
        self._pending: dict[str, Reason] = {}
        self._stepping = False
        self._scans = 0
        self.admitted = 0
        # When a file was first reported, for drop-to-upload measurements in the logs.
        self._reported_at: dict[str, float] = {}

    @property
    def waiting(self) -> int:
        """Files seen but not yet admitted (settling, or reported and not yet looked at)."""
        return len(self._tracker) + len(self._pending)

    @property
    def idle(self) -> bool:
        return len(self._tracker) == 0 and self._scans == 0 and not self._pending and not self._stepping

    def reconfigure(self, options: Callable[[str], Sequence[RowOptions]], *, settle_s: float) -> None:
        """A reload: files admitted from now on get their `options`; files that start settling
        from now on wait `settle_s` (those settling already keep their deadline). A file
        admitted before keeps the options in its rows."""
        self._options = options
        self._tracker.settle_seconds = settle_s

    def report(self, rel: str, reason: Reason | str) -> None:
        """Called on the loop for every event or scan hit; no I/O, so it never blocks."""
        reason = Reason(reason)
        if reason is Reason.DIR:
            self.spawn_scan(rel)
            return
        if reason is not Reason.GONE and ignore_reason(PurePosixPath(rel)) is not None:
            return
        # The last report of a batch wins: a file closed and then written to again is not
        # closed. A "gone" waits for the next batch too, so it cannot overtake a stat
        # already being read.
        self._pending[rel] = reason
        if reason is not Reason.GONE:
            self._reported_at.setdefault(rel, self._mono())
        self._wake.set()

    def released(self, rel: str) -> None:
        """The pool let go of `rel`'s row: a newer version seen meanwhile is looked at now."""
        reason = self._deferred.pop(rel, None)
        if reason is not None:
            self.report(rel, reason)

    def spawn_scan(self, below: str = "") -> asyncio.Task[None]:
        """List a folder in a thread and report what it holds (at start, rescan, new folder)."""
        self._scans += 1
        return asyncio.ensure_future(self._scan(below))

    async def _scan(self, below: str) -> None:
        loop = asyncio.get_running_loop()

        def walk() -> tuple[list[str], int]:
            batch: list[str] = []
            count = 0
            for rel in scan_files(self.inbox, below):
                batch.append(rel)
                count += 1
                if len(batch) >= SCAN_BATCH:
                    loop.call_soon_threadsafe(self._found, batch)
                    batch = []
            return batch, count

        try:
            rest, count = await asyncio.to_thread(walk)
            self._found(rest)
            log.debug("scanned", folder=below or ".", files=count)
        finally:
            self._scans -= 1
            self._activity.set()
            self._wake.set()

    def _found(self, paths: list[str]) -> None:
        """Part of a scan's listing, on the loop."""
        for rel in paths:
            if self.inbox / rel not in self._tracker:
                self.report(rel, Reason.SCAN)

    async def run(self) -> None:
        """Admit files as they settle; sleep exactly until the next one may be ready."""
        while True:
            await self._step()
            self._activity.set()
            if self._pending:
                continue  # reported while this batch was being read
            deadline = self._tracker.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._mono())
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    async def _step(self) -> None:
        """One batch: read the stamps it needs in one thread, then settle and admit on the loop."""
        if len(self._pending) <= STEP_BATCH:
            batch, self._pending = self._pending, {}
        else:  # the oldest reports first; the rest wait for the next step
            batch = {rel: self._pending.pop(rel) for rel in list(itertools.islice(self._pending, STEP_BATCH))}
        # One clock reading for the batch: due() must not look past the stamps read for it.
        now = self._mono()
        wanted = list(dict.fromkeys([*(self.inbox / rel for rel, reason in batch.items() if reason is not Reason.GONE),
                                     *self._tracker.expiring(now)]))
        # Writers are asked about only for files that may be due in this batch: closed ones
        # (due at once) and those whose settle time is up; the others are asked when it is.
        # (A scanned file may be due at once too: its mtime may say it is long settled.)
        ask = {self.inbox / rel for rel, reason in batch.items() if reason in (Reason.CLOSED, Reason.SCAN)}
        ask.update(self._tracker.expiring(now))
        self._stepping = True
        try:
            if wanted:
                self._read(await asyncio.to_thread(_read_stamps, self.inbox, wanted, ask))
            for rel, reason in batch.items():
                self._note(rel, reason, now)
            due = self._tracker.due(now)
            unread = [path for path in due if path not in self._fetched]
            if unread:  # not expected: due files were reported or re-checked in this batch
                self._read(await asyncio.to_thread(_read_stamps, self.inbox, unread, set()))
            with self.journal.transaction():
                for path in due:
                    self._admit(path, self._fetched[path])
        finally:
            self._fetched.clear()
            self._writers.clear()
            self._stepping = False

    def _read(self, found: dict[Path, tuple[FileStamp | OSError, bool | None]]) -> None:
        for path, (current, writers) in found.items():
            self._fetched[path] = current
            self._writers[path] = writers

    def _fetched_writers(self, path: Path) -> bool | None:
        return self._writers.get(path)

    def _fetched_stamp(self, path: Path) -> FileStamp:
        found = self._fetched.get(path)
        if found is None:
            # Not read for this batch (not expected). Not FileNotFoundError, which would drop
            # the file: any other error hands it on, and _step reads it before admitting.
            raise OSError(f"{path}: stamp not read in this batch")
        if isinstance(found, OSError):
            raise found
        return found

    def _note(self, rel: str, reason: Reason, now: float) -> None:
        path = self.inbox / rel
        found = self._fetched.get(path)
        if reason is not Reason.GONE and isinstance(found, FileStamp):
            self._special.discard(rel)
            # A scan's file unchanged since long before it was seen has already been quiet.
            quiet_s = max(0.0, time.time() - found.mtime_ns / 1e9) if reason is Reason.SCAN else 0.0
            self._tracker.seen(path, found, now, closed=reason is Reason.CLOSED, writing=reason is Reason.WRITING,
                               quiet_s=quiet_s)
            return
        self._reported_at.pop(rel, None)
        if reason is Reason.GONE or isinstance(found, FileNotFoundError):
            self._tracker.forget(path)
            self._special.discard(rel)
            self._deferred.pop(rel, None)
        elif isinstance(found, NotRegularFile):
            self._tracker.forget(path)
            self._not_regular(rel, found)
        elif isinstance(found, OSError):
            log.warning("stat_failed", file=rel, error=str(found))

    def _not_regular(self, rel: str, found: NotRegularFile) -> None:
        """Never opened, never moved: said once per path, however many events and rescans."""
        if rel not in self._special:
            self._special.add(rel)
            log.warning("not_a_regular_file", file=rel, what=found.strerror, action="left in place, not read")

    def _admit(self, path: Path, current: FileStamp | OSError) -> None:
        rel = path.relative_to(self.inbox).as_posix()
        reported = self._reported_at.pop(rel, None)
        if isinstance(current, FileNotFoundError):
            return
        if isinstance(current, NotRegularFile):
            self._not_regular(rel, current)
            return
        if isinstance(current, OSError):
            log.warning("stat_failed", file=rel, error=str(current))
            return
        key = current.key
        if self.journal.live_for(rel, self.job) is not None:
            # Already being worked on. If this is a newer version, it is admitted when that
            # row is released (the pool calls `released`), whatever the rescan interval.
            self._deferred[rel] = Reason.CLOSED
            return
        if self.journal.finished_with_stamp(rel, key, self.job) is not None:
            return  # this very file was finished and left in place
        options = self._options(rel)
        rows = self.journal.add_file(rel, key, options, mode=current.mode, job=self.job)
        self.admitted += 1
        log.info("file_admitted", job=self.job, file=rel, size=current.size,
                 formats=",".join(o.format for o in options), language=options[0].language,
                 rule=options[0].rule, settled_s=None if reported is None else round(self._mono() - reported, 4))
        for row in rows:
            self._enqueue(row.id)


def _read_stamps(inbox: Path, paths: list[Path], ask: set[Path]
                 ) -> dict[Path, tuple[FileStamp | OSError, bool | None]]:
    """In a thread: each path's own stamp (`lstat`), or the error reading it raised (a
    :class:`NotRegularFile` for anything but a regular file, or one reached through a
    symlinked folder); and for the paths in `ask`, whether a writer has it open."""
    found: dict[Path, tuple[FileStamp | OSError, bool | None]] = {}
    folders: dict[Path, bool] = {}  # folder -> whether it is a symlink (or inside one)
    for path in paths:
        try:
            if _through_symlink(inbox, path.parent, folders):
                raise NotRegularFile(errno.ELOOP, "inside a symbolic link to a folder", os.fspath(path))
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                raise NotRegularFile(errno.EINVAL, describe_mode(st.st_mode), os.fspath(path))
        except OSError as exc:
            found[path] = (exc, None)
            continue
        found[path] = (FileStamp.from_stat(st), writer_open(path) if path in ask else None)
    return found


def _through_symlink(inbox: Path, folder: Path, seen: dict[Path, bool]) -> bool:
    """Whether `folder` (inside the inbox) is, or lies inside, a symlink; remembered in `seen`."""
    if folder == inbox or inbox not in folder.parents:
        return False
    if folder not in seen:
        seen[folder] = _through_symlink(inbox, folder.parent, seen) or os.path.islink(folder)
    return seen[folder]

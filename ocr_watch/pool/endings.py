"""The last step of every file: its source leaves the inbox, to archive or to quarantine.

Both moves run in a thread (a slow disk must not stall the loop) under `shield`, so that
stopping the daemon never leaves a move half-noted. Both check the source's stamp first:
a file that is gone, or that is now another file under the same name, was moved by an
earlier run that died before noting it (or by a person), and is not touched again.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import TypeVar

import structlog

from ocr_watch.choices import OnSuccess
from ocr_watch.fsops import copy_mode
from ocr_watch.intake.identity import stamp
from ocr_watch.journal import FileState, Row
from ocr_watch.results.archive import finish_source
from ocr_watch.results.quarantine import FailureReport, quarantine_file

from .settings import PoolSettings

__all__ = ["Endings"]

_T = TypeVar("_T")

log = structlog.get_logger("ocr_watch.pool")


async def _in_thread_shielded(job: asyncio.Future[_T]) -> _T:
    """Await a thread's result; if cancelled meanwhile, still wait for it, then re-raise."""
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        await asyncio.wait([job])
        raise


class Endings:
    """Moves sources after success or failure; the pool notes the outcome in the journal."""

    def __init__(self, settings: PoolSettings, *, wall: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._wall = wall

    def _source(self, row: Row) -> Path:
        return self.settings.place(row).inbox / row.rel

    async def _still_there(self, row: Row) -> bool:
        try:
            current = await asyncio.to_thread(stamp, self._source(row))
        except FileNotFoundError:
            return False
        return current.key == row.stamp

    async def finish(self, row: Row) -> tuple[Path | None, str | None]:
        """After the output is complete: archive, delete or keep the source.

        Returns where the source went (None for delete, keep, or nothing to move) and a note
        for the journal when something was unusual. Raises OSError when the archive (or the
        inbox, for delete) refuses: the pool waits and calls again, which is safe (a move
        interrupted half way is finished, a source already deleted is not an error).
        """
        job = asyncio.ensure_future(asyncio.to_thread(self._finish_in_thread, row))
        return await _in_thread_shielded(job)

    def finish_folder(self, row: Row) -> str:
        """The folder `finish` writes to, for the log when it fails."""
        return "archive" if self.settings.place(row).on_success is OnSuccess.ARCHIVE else "inbox"

    def _finish_in_thread(self, row: Row) -> tuple[Path | None, str | None]:
        source = self._source(row)
        try:
            current = stamp(source)
        except FileNotFoundError:
            return None, "source no longer in the inbox when finishing (moved by an earlier run, or removed)"
        if current.key != row.stamp:
            return None, "source was changed after upload; left in the inbox to be processed as a new file"
        place = self.settings.place(row)
        return finish_source(source, PurePosixPath(row.rel), place.on_success, place.archive), None

    async def quarantine(self, row: Row, *, resumed: bool, others: Sequence[Row] = ()) -> Path | None:
        """Write the report, then move the source beside it (in that order: see quarantine.py).

        On resume, a source already gone from the inbox was moved before the crash (the report
        is written first), so there is nothing left to do. `others`: the file's other formats'
        rows (several formats), all ended; the report says which format failed, and which
        outputs were written.
        """
        if resumed and not await self._still_there(row):
            return None
        report = self._report(row, others)
        job = asyncio.ensure_future(asyncio.to_thread(self._quarantine_in_thread, row, report))
        return await _in_thread_shielded(job)

    def _report(self, row: Row, others: Sequence[Row]) -> FailureReport:
        rows = sorted([row, *others], key=lambda r: r.id)
        failed = [r for r in rows if r.state in (FileState.QUARANTINING, FileState.QUARANTINED)]
        failed_ids = {r.id for r in failed}
        first = failed[0] if failed else row
        reason = first.last_error or "unknown"
        detail: dict[str, object] = {}
        if others:
            reason = "; ".join(f"format {r.format} failed: {r.last_error or 'unknown'}" for r in failed)
            written = [r for r in rows if r.id not in failed_ids and r.output_rel]
            if written:
                reason += "; written to the outbox: " + ", ".join(str(r.output_rel) for r in written)
            detail["formats"] = {
                str(r.format): ({"failed": r.last_error, "stage": r.last_stage, "task_id": r.task_id}
                                if r.id in failed_ids else {"output": r.output_rel, "task_id": r.task_id})
                for r in rows}
        return FailureReport(
            source=row.rel, reason=reason, stage=first.last_stage or "unknown",
            attempts=first.attempts, task_id=first.task_id, last_http_status=first.last_http_status,
            last_task_state=first.last_task_state, first_seen=row.first_seen, failed_at=self._wall(),
            sha256=row.sha256, size=row.size, detail=detail,
        )

    def _quarantine_in_thread(self, row: Row, report: FailureReport) -> Path:
        source = self._source(row)
        return quarantine_file(source, PurePosixPath(row.rel), self.settings.place(row).quarantine, report,
                               copy_mode(row.mode), leave_source=not _is_rows_file(source, row))


def _is_rows_file(source: Path, row: Row) -> bool:
    """Whether `source` is still the row's own regular file (or gone): a FIFO, symlink or
    other file put in its place is never moved to quarantine in its stead."""
    try:
        st = os.lstat(source)
    except FileNotFoundError:
        return True  # quarantine_file reports it missing
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_ino == row.inode

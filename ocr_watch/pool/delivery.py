"""The end of a good journey: the result downloaded into the outbox, then the source finished.

*Nothing is lost*: a file leaves the inbox only after its output is complete in the outbox
(downloaded to a temp name, fsynced, renamed). The output name is chosen once and written in
the journal before the download, so a restart uses the same one; a source changed since its
upload never takes the clean name (that is for its final version, processed when this row is
released).

A result link the service refuses (expired, or not yet served) is asked for again, at most
FRESH_LINK_TRIES times: the result is paid for, and only a task the service no longer knows
ends in quarantine. An outbox that refuses the write is our folder failing, waited for; only
an error no retry can cure (a name the folder refuses) quarantines the file.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import structlog
from structlog.contextvars import bound_contextvars

from ocr_watch.api import ApiError, ResultUnavailable, describe_state
from ocr_watch.fsops import copy_mode
from ocr_watch.intake.identity import stamp
from ocr_watch.journal import TERMINAL, FileState, Journal, Row, Stage
from ocr_watch.results.naming import output_candidates

from .endings import Endings
from .failures import Failures
from .flight import Flight
from .folders import FolderWaits
from .jobs import Jobs
from .policy import folder_may_recover
from .service import Calls
from .settings import PoolSettings

__all__ = ["FRESH_LINK_TRIES", "Delivery"]

log = structlog.get_logger("ocr_watch.pool")

# How often one download may ask for a fresh result link before the file is quarantined.
FRESH_LINK_TRIES = 2


def _changed_since(source: Path, row: Row) -> bool:
    """Whether the source on disk is no longer the file the row's upload read."""
    try:
        return stamp(source).key != row.stamp
    except FileNotFoundError:
        return False


def _output_in_place(dest: Path) -> bool:
    """Whether an earlier run already renamed the output into place; if not, make its folder."""
    if dest.exists():
        return True
    dest.parent.mkdir(parents=True, exist_ok=True)
    return False


class Delivery:
    """Downloads results and finishes sources; see the module docstring."""

    def __init__(self, journal: Journal, calls: Calls, settings: PoolSettings, *, jobs: Jobs, flight: Flight,
                 failures: Failures, folders: FolderWaits, endings: Endings, wall: Callable[[], float]) -> None:
        self._journal = journal
        self._calls = calls
        self._settings = settings
        self._jobs = jobs
        self._flight = flight
        self._failures = failures
        self._folders = folders
        self._endings = endings
        self._wall = wall

    def begin(self, row: Row, url: str, learnt: float, *, task_state: int | None = None) -> None:
        """The row's result is at `url` (learnt at wall time `learnt`): note it, fetch it."""
        row = self._journal.downloading(row.id, result_url=url, result_url_at=learnt, last_task_state=task_state)
        with bound_contextvars(job=row.job):  # the download's log lines say its job
            self._jobs.spawn(self.download(row), critical=True)

    async def download(self, row: Row) -> None:
        """Fetch the result into the outbox, then finish the source."""
        bound = log.bind(file=row.rel, task_id=row.task_id)
        fresh_links = 0
        try:
            while True:
                try:
                    changed = row.output_rel is None and await asyncio.to_thread(
                        _changed_since, self._settings.place(row).inbox / row.rel, row)
                    row = await self._reserve_output(row, changed=changed)
                    assert row.output_rel is not None and row.result_url is not None
                    dest = self._settings.place(row).outbox / row.output_rel
                    if await asyncio.to_thread(_output_in_place, dest):
                        break  # renamed into place by an earlier run that died before noting it
                    started = time.monotonic()
                    size = await self._calls.service.download_result(row.result_url, dest,
                                                                     mode=copy_mode(row.mode))
                except ApiError as exc:
                    if isinstance(exc, ResultUnavailable) and fresh_links < FRESH_LINK_TRIES and row.task_id:
                        fresh_links += 1
                        fresh = await self._fresh_link(row, exc)
                        if fresh is None:
                            return
                        row = fresh
                        continue
                    retry_in = await self._failures.api_error(row, exc, Stage.DOWNLOAD)
                    if retry_in is None:
                        return
                    await self._jobs.pause(retry_in)
                    row = self._journal.get(row.id)
                    continue
                except OSError as exc:
                    if not folder_may_recover(exc):
                        await self._failures.quarantine(self._journal.get(row.id), Stage.OUTPUT,
                                                        f"the result could not be written in the outbox: {exc}")
                        return
                    # Our disk, not the service: the result is paid for and its link lives an
                    # hour, so wait for space or permission instead of quarantining the source.
                    row = self._journal.record_error(row.id, stage=Stage.OUTPUT,
                                                     message=f"cannot write the result: {exc}", count_attempt=False)
                    await self._folders.failed(row, "outbox", exc)
                    continue
                self._folders.works(row, "outbox")
                self._calls.recorder.result_stored(row.task_id, self._wall())
                bound.info("result_downloaded", output=row.output_rel, bytes=size,
                           download_s=round(time.monotonic() - started, 3))
                break
            row = self._journal.finishing(row.id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            bound.exception("download_crashed")
            await self._failures.quarantine(self._journal.get(row.id), Stage.OUTPUT,
                                            f"could not write the result: {exc!r}")
            return
        await self.finish(row)

    async def _fresh_link(self, row: Row, refused: ApiError) -> Row | None:
        """Query the row's task for a fresh result link; the row with it, or None when the file
        was quarantined meanwhile (the service no longer knows the task, or the task failed).
        Any other failure of the query is waited out like a download's."""
        assert row.task_id is not None
        log.info("result_link_refused", file=row.rel, task_id=row.task_id, error=refused.message,
                 action="asking the service for a fresh link")
        try:
            task = await self._calls.query(row.task_id)
        except ApiError as exc:
            retry_in = await self._failures.api_error(row, exc, Stage.DOWNLOAD)
            if retry_in is None:
                return None
            await self._jobs.pause(retry_in)
            return self._journal.get(row.id)
        if task.is_failed or not task.file_url:
            await self._failures.quarantine(
                row, Stage.DOWNLOAD, f"asked for a fresh result link after '{refused.message}', "
                f"the service said task {row.task_id} is {describe_state(task.state)}", task_state=task.state)
            return None
        return self._journal.new_link(row.id, result_url=task.file_url, result_url_at=self._wall())

    async def _reserve_output(self, row: Row, *, changed: bool = False) -> Row:
        """Choose the output name once and write it down, so a restart uses the same one."""
        if row.output_rel is not None:
            return row
        assert row.sha256 is not None
        for index, candidate in enumerate(output_candidates(PurePosixPath(row.rel),
                                                            self._settings.create_options(row).format,
                                                            row.sha256)):
            if changed and index == 0:
                continue
            name = candidate.as_posix()
            if self._journal.output_taken(name, exclude_id=row.id, job=row.job):
                continue
            if await asyncio.to_thread((self._settings.place(row).outbox / name).exists):
                continue
            return self._journal.output_reserved(row.id, name)
        raise RuntimeError("output_candidates ran dry")  # it is infinite; this is a bug guard

    async def finish(self, row: Row) -> None:
        """The output is complete: now, and only now, the source may leave the inbox.

        An archive (or inbox) that refuses is waited for; the row stays `finishing` meanwhile.
        Anything no retry can cure leaves the source where it is, noted: the output exists,
        so the file is done either way.

        A file in several formats (a row each) moves its source once, when its last row ends:
        an earlier one ends leaving the source for the others; the last one archives it, or,
        if another format failed, puts it in quarantine with a report naming that format (the
        outputs written stay in the outbox).
        """
        others = self._journal.siblings(row)
        waiting = [o for o in others if o.state not in TERMINAL]
        if waiting:
            row = self._journal.done(row.id, final_path=None, note=None)
            self._flight.release(row.id, "done")
            log.info("format_done", job=row.job, file=row.rel, format=row.format, task_id=row.task_id,
                     output=row.output_rel, action=f"the source waits for {', '.join(str(o.format) for o in waiting)}")
            return
        if any(o.state is FileState.QUARANTINED for o in others):
            await self._failed_elsewhere(row, others)
            return
        folder = self._endings.finish_folder(row)
        while True:
            try:
                final, note = await self._endings.finish(row)
            except asyncio.CancelledError:
                raise
            except OSError as exc:
                if folder_may_recover(exc):
                    await self._folders.failed(row, folder, exc)
                    continue
                final, note = None, self._finish_failed(row, exc)
            except Exception as exc:
                final, note = None, self._finish_failed(row, exc)
            else:
                self._folders.works(row, folder)
            break
        row = self._journal.done(row.id, final_path=str(final) if final else None, note=note)
        self._flight.release(row.id, "done")
        log.info("file_done", job=row.job, file=row.rel, task_id=row.task_id, output=row.output_rel,
                 source_to=str(final) if final else self._settings.place(row).on_success,
                 total_s=round(self._wall() - row.first_seen, 3), note=note)

    async def _failed_elsewhere(self, row: Row, others: list[Row]) -> None:
        """This format's output is complete, another's failed: the source goes to quarantine."""
        final, failure = await self._failures.source_to_quarantine(row, others, resumed=True)
        note = None
        if failure is not None:
            log.error("quarantine_failed", job=row.job, file=row.rel, error=repr(failure),
                      action="the source stays in the inbox; move it out by hand")
            note = f"another format failed, and the source could not be put in quarantine: {failure}"
        row = self._journal.done(row.id, final_path=str(final) if final else None, note=note)
        self._flight.release(row.id, "done")
        failed = [o for o in others if o.state is FileState.QUARANTINED]
        log.warning("file_quarantined", job=row.job, file=row.rel, to=str(final) if final else None,
                    formats_failed=[o.format for o in failed],
                    outputs=[r.output_rel for r in (row, *others) if r.state is FileState.DONE])

    def _finish_failed(self, row: Row, exc: Exception) -> str:
        log.error("finish_source_failed", file=row.rel, error=repr(exc), exc_info=not isinstance(exc, OSError))
        return f"output written, but the source could not be moved ({self._settings.place(row).on_success}): {exc}"

"""The start of a file's journey: hash, check, then share, reuse or create a task.

*No credit twice.* The journal says `uploading` before a create and carries the task id the
moment create answers; a restart polls that task. Up to `max_uploads` uploads cross the line
side by side (a one-page letter never waits behind a scanned book), but each holds back its
body's last piece until it has the answer gate, and keeps the gate until its task id is
committed: the service cannot make a task before it has the whole body, so a crash can still
leave at most one task we never heard of. An upload under way is let finish at shutdown
(cancelling it could cost a credit). Identical content shares a task in flight, or
reuses a result URL that has not expired, and a second copy waits for the first's task id.
What the journal records as a file's content is the hash of the bytes the service received.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import structlog

from ocr_watch.api import ApiError, TransientError
from ocr_watch.api.client import Upload
from ocr_watch.intake.filters import reject_reason
from ocr_watch.intake.source import NotRegularFile, SourceChanged, stamp_and_hash
from ocr_watch.journal import FileState, Journal, Row, Stage
from ocr_watch.results.quarantine import retire_report

from .delivery import Delivery
from .failures import Failures
from .gate import FairGate
from .jobs import Jobs
from .poller import Poller
from .service import Calls
from .settings import PoolSettings

__all__ = ["SHRINK_TRIES", "Creation"]

log = structlog.get_logger("ocr_watch.pool")

# A file that keeps shrinking while it is uploaded is given up after this many tries.
SHRINK_TRIES = 3


def _replaced(exc: NotRegularFile) -> str:
    """The quarantine reason for a queued file whose path is now something else."""
    return (f"the file was replaced by {exc.strerror} before it was uploaded; that is never read "
            f"or moved, and was left in the inbox")


class Creation:
    """Takes a queued row to a task the poller tracks (or to quarantine)."""

    def __init__(self, journal: Journal, calls: Calls, settings: PoolSettings, *, jobs: Jobs, poller: Poller,
                 delivery: Delivery, failures: Failures, wall: Callable[[], float]) -> None:
        self._journal = journal
        self._calls = calls
        self._settings = settings
        self._jobs = jobs
        self._poller = poller
        self._delivery = delivery
        self._failures = failures
        self._wall = wall
        self._uploads = FairGate(settings.max_uploads)  # jobs in turn: gate.py
        # Held from an upload's last piece until its answer is committed (module docstring).
        self._answer_gate = asyncio.Lock()
        # Content being created right now: a second copy waits for the first's task id.
        self._creating: dict[tuple[str, str], asyncio.Event] = {}

    async def start(self, row_id: int) -> None:
        """Hash, check, then share, reuse or create a task for one queued file."""
        quarantine = self._failures.quarantine
        try:
            row = self._journal.get(row_id)
            source = self._settings.place(row).inbox / row.rel
            try:
                # Hashed again even when resumed with a hash: the file may have changed since.
                current, digest = await asyncio.to_thread(stamp_and_hash, source)
            except FileNotFoundError:
                await quarantine(row, Stage.INTAKE, "the file disappeared from the inbox before it was uploaded")
                return
            except NotRegularFile as exc:
                await quarantine(row, Stage.INTAKE, _replaced(exc))
                return
            log.debug("file_hashed", file=row.rel, sha256=digest, size=current.size)
            await self._retire_report(row, current.key, digest)
            if current.key != row.stamp:
                # Rewritten since it was admitted: admit it again as what it is now.
                row = self._journal.restamped(row.id, current.key)
            rejected = reject_reason(PurePosixPath(row.rel), row.size)
            if rejected:
                await quarantine(row, Stage.INTAKE, rejected)
                return
            row = dataclasses.replace(row, sha256=digest)  # written with the next transition
            if await self._delivered_before(row):
                return
            content = (digest, row.options_key)
            while (first := self._creating.get(content)) is not None:
                await first.wait()  # same content is being uploaded: share its task, pay once
            if self._share_or_reuse(row):
                return
            self._creating[content] = asyncio.Event()
            try:
                await self._create(row)
            finally:
                self._creating.pop(content).set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a disk error: say so, keep the file safe in quarantine
            log.exception("file_crashed", row_id=row_id)
            await quarantine(self._journal.get(row_id), Stage.INTERNAL, f"ocr-watch failed: {exc!r}")

    async def _retire_report(self, row: Row, key: tuple[int, int, int], digest: str) -> None:
        """A file back from quarantine (moved into the inbox to run again): its old report
        leaves the quarantine folder, which then shows only current failures."""
        into = self._settings.retired_reports
        old = self._journal.quarantined_as(key, digest, exclude_id=row.id)
        if into is None or old is None or old.final_path is None:
            return
        moved = await asyncio.to_thread(retire_report, Path(old.final_path), into)
        if moved is not None:
            log.info("quarantine_report_retired", file=row.rel, was=old.final_path, report_to=str(moved))

    async def _delivered_before(self, row: Row) -> bool:
        """A file in several formats run again after one of them failed: an output of it still
        in the outbox (same content, job and options) is kept, not paid for again."""
        if row.batch is None or row.sha256 is None:
            return False
        earlier = self._journal.delivered(row.job, row.sha256, row.options_key, exclude_id=row.id)
        if earlier is None or earlier.output_rel is None:
            return False
        if not await asyncio.to_thread((self._settings.place(row).outbox / earlier.output_rel).is_file):
            return False  # removed since: made again
        row = self._journal.delivered_before(row.id, output_rel=earlier.output_rel, sha256=row.sha256)
        log.info("output_kept", job=row.job, file=row.rel, format=row.format, output=row.output_rel,
                 task_id=earlier.task_id)
        await self._delivery.finish(row)
        return True

    def _share_or_reuse(self, row: Row) -> bool:
        """Whether the row took a task in flight, or a live result, of the same content."""
        sha = row.sha256
        assert sha is not None
        key = row.options_key  # what it was admitted with, even across a reload
        jobs = tuple(self._settings.places)  # this key's jobs: a task belongs to its account
        twin = self._journal.shareable_task(sha, key, exclude_id=row.id, jobs=jobs)
        if twin is not None:
            log.info("task_shared", file=row.rel, task_id=twin.task_id, with_file=twin.rel)
            row = self._journal.polling(
                row.id, task_id=twin.task_id, task_created_at=twin.task_created_at, sha256=sha
            )
            if twin.state is FileState.DOWNLOADING and twin.result_url:
                self._delivery.begin(row, twin.result_url, twin.result_url_at or self._wall())
            else:
                assert row.task_id is not None
                self._poller.track(row.task_id, row.task_created_at or self._wall())
            return True
        earlier = self._journal.reusable_result(
            sha, key, not_before=self._wall() - self._settings.result_reuse_s, jobs=jobs
        )
        if earlier is not None and earlier.result_url:
            log.info("result_reused", file=row.rel, task_id=earlier.task_id, with_file=earlier.rel)
            row = self._journal.polling(row.id, task_id=earlier.task_id,
                                        task_created_at=earlier.task_created_at, sha256=sha)
            self._delivery.begin(row, earlier.result_url, earlier.result_url_at or self._wall())
            return True
        return False

    async def _create(self, row: Row) -> None:
        source = self._settings.place(row).inbox / row.rel
        account = self._calls.account
        shrunk = 0
        while True:
            error: ApiError | None
            async with self._uploads.hold(row.job):
                # Checked inside the bound: after a refusal, the probe is one request, not one
                # per file that was already waiting.
                await account.admit(create=True)
                row = self._journal.uploading(row.id, sha256=row.sha256)
                # The upload is a job of its own that shutdown waits for: cancelling it half
                # way could leave a task the service made and we never heard of (a credit).
                self._calls.note()
                upload = asyncio.ensure_future(self._send(row, source))
                self._jobs.let_finish(upload)
                try:
                    await asyncio.shield(upload)
                except asyncio.CancelledError as exc:
                    account.settle(create=True, error=exc)
                    if not upload.done():
                        upload.cancel()  # (one that was answered committed its task id itself)
                    raise
                except ApiError as exc:
                    account.settle(create=True, error=exc)
                    row = self._journal.queued_again(row.id)
                    error = exc
                except FileNotFoundError as exc:
                    account.settle(create=True, error=exc)
                    row = self._journal.queued_again(row.id)
                    await self._failures.quarantine(row, Stage.CREATE,
                                                    "the file disappeared from the inbox during upload")
                    return
                except NotRegularFile as exc:
                    account.settle(create=True, error=exc)
                    row = self._journal.queued_again(row.id)
                    await self._failures.quarantine(row, Stage.CREATE, _replaced(exc))
                    return
                except SourceChanged as exc:
                    account.settle(create=True, error=exc)
                    # The body fell short of its Content-Length: no task can have been made.
                    row = self._journal.queued_again(row.id)
                    shrunk += 1
                    log.warning("source_changed_during_upload", file=row.rel, error=exc.strerror, tries=shrunk)
                    if shrunk >= SHRINK_TRIES:
                        await self._failures.quarantine(row, Stage.CREATE, f"the file kept changing while it was "
                                                                       f"uploaded ({shrunk} tries): {exc.strerror}")
                        return
                    error = None
                except OSError as exc:
                    account.settle(create=True, error=exc)
                    row = self._journal.queued_again(row.id)
                    await self._failures.quarantine(row, Stage.CREATE, f"the file could not be read for upload: {exc}")
                    return
                else:
                    account.settle(create=True, error=None)
                    return
            if error is None:
                await self._jobs.pause(self._settings.backoff_initial_s)
                continue
            if isinstance(error, TransientError) and error.ambiguous:
                lost = await self._create_answer_lost(row, error)
                if lost is None:
                    return
                row = lost
            retry_in = await self._failures.api_error(row, error, Stage.CREATE)
            if retry_in is None:
                return
            row = self._journal.get(row.id)
            await self._jobs.pause(retry_in)

    async def _send(self, row: Row, source: Path) -> None:
        """Upload, and commit the task id the instant the answer arrives, still holding the
        answer gate (taken before the body's last piece), so no other upload can be made a
        task meanwhile."""
        started = time.monotonic()
        holding = False

        async def last_piece() -> None:
            nonlocal holding
            if not holding:  # a 429'd attempt sent again keeps it: no task was made
                await self._answer_gate.acquire()
                holding = True

        try:
            sent = await self._calls.service.upload(source, self._settings.create_options(row), priority=1,
                                                    before_last=last_piece)
            self._created(row, sent, started)
        finally:
            if holding:
                self._answer_gate.release()

    async def _create_answer_lost(self, row: Row, error: TransientError) -> Row | None:
        """An upload was sent whole and its answer lost: a task may exist, and be billed.

        Sent again at most `retry.ambiguous_creates` times, each counted in the journal and
        logged as a possible double charge; past that the file goes to quarantine saying a
        task may exist. The row, or None once quarantined.
        """
        limit = self._settings.ambiguous_creates
        sent_again = row.lost_create_answers < limit
        row = self._journal.note_lost_create(row.id, sent_again=sent_again)
        if sent_again:
            self._calls.recorder.possible_double_charge()
            log.warning("possible_double_charge", file=row.rel, error=error.message,
                        lost_answers=row.lost_create_answers, ambiguous_creates=limit,
                        action="uploading again; the service may bill both uploads")
            return row
        times = "once" if row.lost_create_answers == 1 else f"{row.lost_create_answers} times"
        await self._failures.quarantine(
            row, Stage.CREATE,
            f"the upload was sent whole {times} but its answer was lost ({error.message}): the service may "
            f"have created a task and charged a credit for it (task id unknown). Not sent again "
            f"(retry.ambiguous_creates = {limit}); check the account's usage, then move the file back "
            f"into the inbox to run it again.", http_status=error.status_code)
        return None

    def _created(self, row: Row, sent: Upload, started: float) -> None:
        """Commit the task id before anything else can happen: a restart polls this task.

        With it, what the service was sent: the hash of the bytes uploaded and the stamp they
        were read under, so reuse and sharing go by what the service really received, and a
        file changed since is known as such at output time.
        """
        created = self._wall()
        task_id = sent.task_id
        sha = sent.sha256 or row.sha256
        if sha != row.sha256:
            log.warning("source_changed_before_upload", file=row.rel, task_id=task_id,
                        hashed=row.sha256, sent=sha)
        row = self._journal.polling(row.id, task_id=task_id, task_created_at=created, sha256=sha,
                                    stamp=sent.stamp.key)
        self._failures.service_answered()
        log.info("task_created", job=row.job, file=row.rel, task_id=task_id, size=row.size,
                 upload_s=round(time.monotonic() - started, 3))
        self._poller.track(task_id, created, busy=self._calls.busy(),
                           callback=self._settings.callback_url is not None)

"""The bounded pool: each file's journey from the queue to the outbox or to quarantine.

    queue ──► create (one upload at a time) ──► poller ──► download ──► finish source
                 │ errors sorted by class                                │
                 └──────────────► quarantine (report + move) ◄───────────┘

Rules that keep the users' three promises:

- *Nothing is lost.* A file leaves the inbox only after its output is complete in the outbox
  (download to a temp name, fsync, rename), or after its `.error.json` is written.
- *No credit twice.* The journal says `uploading` before a create and carries the task id
  the moment create answers; a restart polls that task. Only one create is in flight at a
  time, so a crash can leave at most one task we never heard of. Identical content shares a
  task in flight, or reuses a result URL that has not expired.
- *It keeps up.* At most `max_in_flight` files are between create and finish; one token
  bucket in the client spaces every API call; queries (priority 0) go before creates
  (priority 1) so finished results are fetched first; the planner queries when a task is
  likely done instead of every second; with callbacks on, the service says when, and a
  query is only the fallback for a callback that never came.

What an error means is decided in `policy.py`; how a source leaves the inbox, in
`endings.py`. This module moves each file from step to step and writes the journal.

Our own folders failing (outbox, archive or quarantine full, read-only or gone) is an outage,
not the file's fault: the file stays in its state and retries with the local-failure backoff,
logged once a folder and then rarely, until the folder works again; no restart needed. What
no retry can cure ends that file's journey with a loud log line, its slot released: one file
never holds the daemon. A stop ends these waits at once; the next start resumes the row.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import Any

import structlog

from ocr_watch.api import ApiError, PicWishClient, ResultUnavailable, Task, TransientError, describe_state
from ocr_watch.api.client import Upload
from ocr_watch.intake.filters import reject_reason
from ocr_watch.intake.identity import stamp
from ocr_watch.intake.source import NotRegularFile, SourceChanged, stamp_and_hash
from ocr_watch.journal import FileState, Journal, Row
from ocr_watch.fsops import copy_mode
from ocr_watch.results.naming import output_candidates
from ocr_watch.results.quarantine import retire_report

from .account import AccountGate
from .endings import Endings
from .planner import PollPlanner
from .poller import Poller, Target
from .policy import Action, ErrorPolicy, Verdict, folder_may_recover
from .settings import PoolSettings

__all__ = ["Pool"]

# How often one download may ask for a fresh result link before the file is quarantined.
FRESH_LINK_TRIES = 2
QUOTA_WINDOW_S = 10.0
QUOTA_BUSY_SHARE = 0.9
# A folder that keeps failing is logged at its first failure, then every Nth or after a while.
FOLDER_LOG_EVERY = 10
FOLDER_LOG_INTERVAL_S = 60.0


# A file that keeps shrinking while it is uploaded is given up after this many tries.
SHRINK_TRIES = 3


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

log = structlog.get_logger("ocr_watch.pool")


@dataclasses.dataclass
class _Trouble:
    """A folder failing: how many writes it refused since it last worked; when that was logged."""

    failures: int = 0
    logged_at: float = 0.0


class Pool:
    """Owns the queue, the in-flight count, the poller, and every file's steps."""

    def __init__(
        self,
        journal: Journal,
        client: PicWishClient,
        settings: PoolSettings,
        *,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        on_released: Callable[[str], None] | None = None,
    ) -> None:
        """`on_released(rel)` is called whenever a row leaves flight (done or quarantined),
        so a newer version of that file, seen meanwhile, is admitted at once."""
        self.journal = journal
        self.client = client
        self.settings = settings
        self._wall = wall
        self.policy = ErrorPolicy(max_attempts=settings.max_attempts, backoff_initial_s=settings.backoff_initial_s,
                                  backoff_max_s=settings.backoff_max_s, rng=rng)
        self.endings = Endings(settings, wall=wall)
        # A window onto the journal: past `queue_size`, rows wait on disk and are refilled in order.
        self.queue: asyncio.Queue[int] = asyncio.Queue(maxsize=settings.queue_size)
        self._backlog = False
        self._last_queued_id = 0
        self._in_flight: set[int] = set()
        self._slot_freed = asyncio.Event()
        self._upload_gate = asyncio.Lock()
        # Content being created right now: a second copy waits for the first's task id.
        self._creating: dict[tuple[str, str], asyncio.Event] = {}
        # API calls of the last QUOTA_WINDOW_S: when they use most of the quota, the quota is
        # the bottleneck and queries are spent sparingly (see planner.py).
        self._recent_calls: deque[float] = deque()
        self.account = AccountGate(on_change=lambda: self.on_change())
        self._jobs: set[asyncio.Task[Any]] = set()
        self._critical: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._folder_trouble: dict[str, _Trouble] = {}
        self.counts = {"done": 0, "quarantined": 0}
        self.poller = Poller(
            self._query,
            self._on_task,
            self._on_poll_error,
            PollPlanner(
                min_interval_s=settings.poll_min_interval_s,
                max_interval_s=settings.poll_max_interval_s,
            ),
            fallback_s=settings.callback_fallback_s,
            wall=wall,
        )
        # Called whenever a file enters or leaves flight, so `once` can notice it is finished.
        self.on_change: Callable[[], None] = lambda: None
        self._on_released = on_released

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def account_problem(self) -> str | None:
        """Why the service refuses the account now, or None."""
        return self.account.problem

    @property
    def paid_in_flight(self) -> int:
        """Files in flight whose task exists (paid for): what `once` lets finish on a refusal."""
        return sum(1 for row_id in self._in_flight if self.journal.get(row_id).task_id is not None)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def idle(self) -> bool:
        return self.queue.empty() and not self._backlog and not self._in_flight

    def enqueue(self, row_id: int) -> None:
        """Queue a journal row; when the window is full it waits in the journal instead."""
        if self._backlog or self.queue.full():
            self._backlog = True
        else:
            self.queue.put_nowait(row_id)
            self._last_queued_id = max(self._last_queued_id, row_id)
        self.on_change()

    def _refill(self) -> None:
        room = self.queue.maxsize - self.queue.qsize()
        ids = self.journal.queued_after(self._last_queued_id, room)
        for row_id in ids:
            self.queue.put_nowait(row_id)
            self._last_queued_id = row_id
        if len(ids) < room:
            self._backlog = False

    def resume(self, rows: list[Row]) -> None:
        """Pick up where a previous run stopped, for every live row of the journal."""
        for row in rows:
            if row.state in (FileState.QUEUED, FileState.UPLOADING):
                if row.state is FileState.UPLOADING:
                    # The create may or may not have reached the service: nothing to poll,
                    # so it is uploaded again (the one credit a crash can cost).
                    log.warning("resume_reupload", file=row.rel)
                    row = self.journal.update(row.id, FileState.QUEUED)
                self.enqueue(row.id)
                continue
            self._in_flight.add(row.id)
            if row.state is FileState.POLLING:
                assert row.task_id is not None
                log.info("resume_polling", file=row.rel, task_id=row.task_id)
                self.poller.track(row.task_id, row.task_created_at or self._wall())
            elif row.state is FileState.DOWNLOADING:
                self._spawn(self._download(row), critical=True)
            elif row.state is FileState.FINISHING:
                self._spawn(self._finish(row), critical=True)
            elif row.state is FileState.QUARANTINING:
                self._spawn(self._move_to_quarantine(row, resumed=True), critical=True)

    async def run(self) -> None:
        """Take queued files into flight while there is room; until cancelled."""
        poller = asyncio.create_task(self.poller.run(), name="poller")
        try:
            while not self._stopping:
                while len(self._in_flight) >= self.settings.max_in_flight:
                    self._slot_freed.clear()
                    await self._slot_freed.wait()
                if self._backlog and self.queue.qsize() <= self.queue.maxsize // 2:
                    self._refill()
                row_id = await self.queue.get()
                if self._stopping:
                    break
                self._in_flight.add(row_id)
                self._spawn(self._start(row_id))
        finally:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)

    async def shutdown(self, grace_s: float) -> None:
        """Stop taking work; let uploads, downloads and moves under way finish; cancel the rest.

        Polls are simply dropped: their task ids are in the journal and the next start polls
        them again. An upload is let finish because cancelling it could cost a credit.
        """
        self._stopping = True
        self._stop_requested.set()  # ends every retry wait: those rows resume at the next start
        critical = [job for job in self._critical if not job.done()]
        if critical:
            _, pending = await asyncio.wait(critical, timeout=grace_s)
            if pending:
                log.warning("shutdown_cancelling", unfinished=len(pending))
        for job in list(self._jobs):
            job.cancel()
        if self._jobs:
            await asyncio.gather(*self._jobs, return_exceptions=True)

    def _spawn(self, coro: Awaitable[Any], *, critical: bool = False) -> asyncio.Task[Any]:
        job = asyncio.ensure_future(coro)
        self._jobs.add(job)
        if critical:
            self._critical.add(job)
        job.add_done_callback(self._reap)
        return job

    def _reap(self, job: asyncio.Task[Any]) -> None:
        self._jobs.discard(job)
        self._critical.discard(job)
        if not job.cancelled() and job.exception() is not None:
            exc = job.exception()
            log.error("job_crashed", error=repr(exc), exc_info=exc)

    def _release(self, row_id: int) -> None:
        self._in_flight.discard(row_id)
        self.policy.local_failure_over(row_id)
        self._slot_freed.set()
        self.on_change()
        if self._on_released is not None:
            self._on_released(self.journal.get(row_id).rel)

    def _source(self, row: Row) -> Path:
        return self.settings.inbox / row.rel

    async def _pause(self, delay_s: float) -> None:
        """Wait before a retry; a stop cuts the wait short by cancelling the job (its row stays in
        its live state in the journal, and the next start resumes it)."""
        if not self._stop_requested.is_set():
            try:
                await asyncio.wait_for(self._stop_requested.wait(), delay_s)
            except TimeoutError:
                return
        raise asyncio.CancelledError("stopping")

    async def _folder_failed(self, row: Row, folder: str, exc: OSError) -> None:
        """One of our folders refused a write: wait for it with backoff, never blame the file.

        The backoff is the file's own; the log line is the folder's: its first failure, then
        every FOLDER_LOG_EVERY-th or once a FOLDER_LOG_INTERVAL_S, so a folder broken for a
        day with many files waiting is a few lines, not thousands.
        """
        delay = self.policy.local_failure_delay(row.id)
        trouble = self._folder_trouble.setdefault(folder, _Trouble())
        trouble.failures += 1
        now = time.monotonic()
        if (trouble.failures == 1 or trouble.failures % FOLDER_LOG_EVERY == 0
                or now - trouble.logged_at >= FOLDER_LOG_INTERVAL_S):
            trouble.logged_at = now
            log.error("folder_failing", folder=folder, path=str(getattr(self.settings, folder)), error=str(exc),
                      file=row.rel, failures=trouble.failures, retry_in_s=round(delay, 2),
                      action="the file waits; fix the folder, no restart needed")
        await self._pause(delay)

    def _folder_works(self, row: Row, folder: str) -> None:
        self.policy.local_failure_over(row.id)
        trouble = self._folder_trouble.pop(folder, None)
        if trouble is not None:
            log.info("folder_working_again", folder=folder, path=str(getattr(self.settings, folder)),
                     after_failures=trouble.failures, file=row.rel)

    # -- the journey ---------------------------------------------------------------------

    async def _start(self, row_id: int) -> None:
        """Hash, check, then share, reuse or create a task for one queued file."""
        try:
            row = self.journal.get(row_id)
            source = self._source(row)
            try:
                # Hashed again even when resumed with a hash: the file may have changed since.
                current, digest = await asyncio.to_thread(stamp_and_hash, source)
            except FileNotFoundError:
                await self._quarantine(row, "intake", "the file disappeared from the inbox before it was uploaded")
                return
            except NotRegularFile as exc:
                await self._quarantine(row, "intake", _replaced(exc))
                return
            log.debug("file_hashed", file=row.rel, sha256=digest, size=current.size)
            await self._retire_report(row, current.key, digest)
            if current.key != row.stamp:
                # Rewritten since it was admitted: admit it again as what it is now.
                row = self.journal.update(
                    row.id, size=current.size, mtime_ns=current.mtime_ns, inode=current.inode
                )
            rejected = reject_reason(PurePosixPath(row.rel), row.size)
            if rejected:
                await self._quarantine(row, "intake", rejected)
                return
            row = dataclasses.replace(row, sha256=digest)  # written with the next transition
            content = (digest, self.settings.options_key)
            while (first := self._creating.get(content)) is not None:
                await first.wait()  # same content is being uploaded: share its task, pay once
            if await self._share_or_reuse(row):
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
            await self._quarantine(self.journal.get(row_id), "internal", f"ocr-watch failed: {exc!r}")

    async def _retire_report(self, row: Row, key: tuple[int, int, int], digest: str) -> None:
        """A file back from quarantine (moved into the inbox to run again): its old report
        leaves the quarantine folder, which then shows only current failures."""
        into = self.settings.retired_reports
        old = self.journal.quarantined_as(key, digest, exclude_id=row.id)
        if into is None or old is None or old.final_path is None:
            return
        moved = await asyncio.to_thread(retire_report, Path(old.final_path), into)
        if moved is not None:
            log.info("quarantine_report_retired", file=row.rel, was=old.final_path, report_to=str(moved))

    async def _share_or_reuse(self, row: Row) -> bool:
        sha = row.sha256
        assert sha is not None
        key = self.settings.options_key
        twin = self.journal.shareable_task(sha, key, exclude_id=row.id)
        if twin is not None:
            log.info("task_shared", file=row.rel, task_id=twin.task_id, with_file=twin.rel)
            row = self.journal.update(
                row.id, FileState.POLLING, task_id=twin.task_id, task_created_at=twin.task_created_at, sha256=sha
            )
            if twin.state is FileState.DOWNLOADING and twin.result_url:
                self._begin_download(row, twin.result_url, twin.result_url_at or self._wall())
            else:
                assert row.task_id is not None
                self.poller.track(row.task_id, row.task_created_at or self._wall())
            return True
        earlier = self.journal.reusable_result(
            sha, key, not_before=self._wall() - self.settings.result_reuse_s
        )
        if earlier is not None and earlier.result_url:
            log.info("result_reused", file=row.rel, task_id=earlier.task_id, with_file=earlier.rel)
            row = self.journal.update(row.id, FileState.POLLING, task_id=earlier.task_id,
                                      task_created_at=earlier.task_created_at, sha256=sha)
            self._begin_download(row, earlier.result_url, earlier.result_url_at or self._wall())
            return True
        return False

    def _note_call(self) -> None:
        now = time.monotonic()
        self._recent_calls.append(now)
        while self._recent_calls and self._recent_calls[0] < now - QUOTA_WINDOW_S:
            self._recent_calls.popleft()

    def _quota_busy(self) -> bool:
        """Whether recent calls used most of the quota (an instant count of waiters misleads:
        tasks created in a burst finish in a burst, though the quota is mostly idle)."""
        allowed = self.client.bucket.rate_per_s * QUOTA_WINDOW_S
        return len(self._recent_calls) >= QUOTA_BUSY_SHARE * allowed

    async def _create(self, row: Row) -> None:
        source = self._source(row)
        shrunk = 0
        while True:
            error: ApiError | None
            async with self._upload_gate:
                # Checked inside the gate: after a refusal, the probe is one request, not one
                # per file that was already waiting for the gate.
                await self.account.admit(create=True)
                row = self.journal.update(row.id, FileState.UPLOADING, sha256=row.sha256)
                started = time.monotonic()
                # The upload is a job of its own that shutdown waits for: cancelling it half
                # way could leave a task the service made and we never heard of (a credit).
                self._note_call()
                upload = asyncio.ensure_future(
                    self.client.upload(source, self.settings.create_options, priority=1))
                self._critical.add(upload)
                upload.add_done_callback(self._critical.discard)
                try:
                    sent = await asyncio.shield(upload)
                except asyncio.CancelledError as exc:
                    self.account.settle(create=True, error=exc)
                    if upload.done() and not upload.cancelled() and upload.exception() is None:
                        self._created(row, upload.result(), started)  # answered while we stopped
                    else:
                        upload.cancel()
                    raise
                except ApiError as exc:
                    self.account.settle(create=True, error=exc)
                    row = self.journal.update(row.id, FileState.QUEUED)
                    error = exc
                except FileNotFoundError as exc:
                    self.account.settle(create=True, error=exc)
                    row = self.journal.update(row.id, FileState.QUEUED)
                    await self._quarantine(row, "create", "the file disappeared from the inbox during upload")
                    return
                except NotRegularFile as exc:
                    self.account.settle(create=True, error=exc)
                    row = self.journal.update(row.id, FileState.QUEUED)
                    await self._quarantine(row, "create", _replaced(exc))
                    return
                except SourceChanged as exc:
                    self.account.settle(create=True, error=exc)
                    # The body fell short of its Content-Length: no task can have been made.
                    row = self.journal.update(row.id, FileState.QUEUED)
                    shrunk += 1
                    log.warning("source_changed_during_upload", file=row.rel, error=exc.strerror, tries=shrunk)
                    if shrunk >= SHRINK_TRIES:
                        await self._quarantine(row, "create", f"the file kept changing while it was uploaded "
                                                              f"({shrunk} tries): {exc.strerror}")
                        return
                    error = None
                except OSError as exc:
                    self.account.settle(create=True, error=exc)
                    row = self.journal.update(row.id, FileState.QUEUED)
                    await self._quarantine(row, "create", f"the file could not be read for upload: {exc}")
                    return
                else:
                    self.account.settle(create=True, error=None)
                    self._created(row, sent, started)
                    return
            if error is None:
                await self._pause(self.settings.backoff_initial_s)
                continue
            if isinstance(error, TransientError) and error.ambiguous:
                lost = await self._create_answer_lost(row, error)
                if lost is None:
                    return
                row = lost
            retry_in = await self._after_error(row, error, "create")
            if retry_in is None:
                return
            row = self.journal.get(row.id)
            await self._pause(retry_in)

    async def _create_answer_lost(self, row: Row, error: TransientError) -> Row | None:
        """An upload was sent whole and its answer lost: a task may exist, and be billed.

        Sent again at most `retry.ambiguous_creates` times, each counted in the journal and
        logged as a possible double charge; past that the file goes to quarantine saying a
        task may exist. The row, or None once quarantined.
        """
        limit = self.settings.ambiguous_creates
        sent_again = row.lost_create_answers < limit
        row = self.journal.note_lost_create(row.id, sent_again=sent_again)
        if sent_again:
            log.warning("possible_double_charge", file=row.rel, error=error.message,
                        lost_answers=row.lost_create_answers, ambiguous_creates=limit,
                        action="uploading again; the service may bill both uploads")
            return row
        times = "once" if row.lost_create_answers == 1 else f"{row.lost_create_answers} times"
        await self._quarantine(
            row, "create",
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
        row = self.journal.update(row.id, FileState.POLLING, task_id=task_id, task_created_at=created, sha256=sha,
                                  size=sent.stamp.size, mtime_ns=sent.stamp.mtime_ns, inode=sent.stamp.inode)
        self._service_answered()
        log.info("task_created", file=row.rel, task_id=task_id, size=row.size,
                 upload_s=round(time.monotonic() - started, 3))
        self.poller.track(task_id, created, busy=self._quota_busy(),
                          callback=self.settings.create_options.callback_url is not None)

    async def _query(self, task_id: str) -> Task:
        async with self.account.call(create=False):
            self._note_call()
            return await self.client.get_task(task_id, priority=0)

    async def _on_task(self, target: Target, task: Task) -> None:
        rows = self.journal.rows_for_task(target.task_id)
        if task.is_pending:
            age = self.poller.age(target)
            if age > self.settings.task_timeout_s:
                self.poller.forget(target.task_id)
                for row in rows:
                    await self._quarantine(
                        row, "poll",
                        f"no result after {age:.0f} s (limit poll.timeout_seconds = "
                        f"{self.settings.task_timeout_s:g}); task {target.task_id} was still "
                        f"{describe_state(task.state)} at {task.progress}%",
                        task_state=task.state,
                    )
            return
        self._service_answered()
        if task.is_failed:
            for row in rows:
                reason = f"the OCR service failed the task: {describe_state(task.state)}"
                if task.message:
                    reason += f" ({task.message})"
                await self._quarantine(row, "poll", reason, task_state=task.state, http_status=200)
            return
        assert task.file_url is not None
        log.info("task_done", task_id=target.task_id, age_s=round(self.poller.age(target), 3),
                 queries=target.queries, files=len(rows))
        learnt = self._wall()
        for row in rows:
            row = self.journal.update(row.id, FileState.DOWNLOADING, result_url=task.file_url,
                                      result_url_at=learnt, last_task_state=task.state)
            self._spawn(self._download(row), critical=True)

    def _begin_download(self, row: Row, url: str, learnt: float) -> None:
        row = self.journal.update(row.id, FileState.DOWNLOADING, result_url=url, result_url_at=learnt)
        self._spawn(self._download(row), critical=True)

    async def _on_poll_error(self, target: Target, exc: ApiError) -> float | None:
        """Decide what a failed query means; returns seconds until the next query, or None.

        `poll.timeout_seconds` holds here too, not only when a query answers: a service that
        only fails (or trickles) cannot keep a file in flight past it."""
        age = self.poller.age(target)
        if age > self.settings.task_timeout_s:
            self.poller.forget(target.task_id)
            for row in self.journal.rows_for_task(target.task_id):
                await self._quarantine(
                    row, "poll", f"no result after {age:.0f} s (limit poll.timeout_seconds = "
                    f"{self.settings.task_timeout_s:g}); task {target.task_id}: the last query failed: {exc.message}",
                    http_status=exc.status_code)
            return None
        verdict = self.policy.judge(exc, stage="poll", attempts=target.errors, task_id=target.task_id,
                                    task_age_s=self.poller.age(target))
        rows = self.journal.rows_for_task(target.task_id)
        if verdict.action is Action.QUARANTINE:
            self.poller.forget(target.task_id)
            for row in rows:
                await self._quarantine(row, "poll", verdict.reason, http_status=exc.status_code)
            return None
        for row in rows:
            self.journal.record_error(row.id, stage="poll", message=exc.message,
                                      http_status=exc.status_code, count_attempt=False)
        return self._act(verdict, exc, "poll", rows[0].rel if rows else None)

    async def _download(self, row: Row) -> None:
        bound = log.bind(file=row.rel, task_id=row.task_id)
        fresh_links = 0
        try:
            while True:
                try:
                    # A source changed since its upload never takes the clean name: that is for
                    # its final version, which is processed when the source is released.
                    changed = row.output_rel is None and await asyncio.to_thread(
                        _changed_since, self._source(row), row)
                    row = await self._reserve_output(row, changed=changed)
                    assert row.output_rel is not None and row.result_url is not None
                    dest = self.settings.outbox / row.output_rel
                    if await asyncio.to_thread(_output_in_place, dest):
                        break  # renamed into place by an earlier run that died before noting it
                    started = time.monotonic()
                    size = await self.client.download_result(row.result_url, dest, mode=copy_mode(row.mode))
                except ApiError as exc:
                    if isinstance(exc, ResultUnavailable) and fresh_links < FRESH_LINK_TRIES and row.task_id:
                        # Paid for and finished: an expired or refused link is asked for again,
                        # and only a task the service no longer knows ends in quarantine.
                        fresh_links += 1
                        fresh = await self._fresh_link(row, exc)
                        if fresh is None:
                            return
                        row = fresh
                        continue
                    retry_in = await self._after_error(row, exc, "download")
                    if retry_in is None:
                        return
                    await self._pause(retry_in)
                    row = self.journal.get(row.id)
                    continue
                except OSError as exc:
                    if not folder_may_recover(exc):
                        await self._quarantine(self.journal.get(row.id), "output",
                                               f"the result could not be written in the outbox: {exc}")
                        return
                    # Our disk, not the service: the result is paid for and its link lives an
                    # hour, so wait for space or permission instead of quarantining the source.
                    row = self.journal.record_error(row.id, stage="output", message=f"cannot write the result: {exc}",
                                                    count_attempt=False)
                    await self._folder_failed(row, "outbox", exc)
                    continue
                self._folder_works(row, "outbox")
                bound.info("result_downloaded", output=row.output_rel, bytes=size,
                           download_s=round(time.monotonic() - started, 3))
                break
            row = self.journal.update(row.id, FileState.FINISHING)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            bound.exception("download_crashed")
            await self._quarantine(self.journal.get(row.id), "output", f"could not write the result: {exc!r}")
            return
        await self._finish(row)

    async def _fresh_link(self, row: Row, refused: ApiError) -> Row | None:
        """Query the row's task for a fresh result link; the row with it, or None when the file
        was quarantined meanwhile (the service no longer knows the task, or the task failed).
        Any other failure of the query is waited out like a download's."""
        assert row.task_id is not None
        log.info("result_link_refused", file=row.rel, task_id=row.task_id, error=refused.message,
                 action="asking the service for a fresh link")
        try:
            task = await self._query(row.task_id)
        except ApiError as exc:
            retry_in = await self._after_error(row, exc, "download")
            if retry_in is None:
                return None
            await self._pause(retry_in)
            return self.journal.get(row.id)
        if task.is_failed or not task.file_url:
            await self._quarantine(row, "download", f"asked for a fresh result link after '{refused.message}', "
                                   f"the service said task {row.task_id} is {describe_state(task.state)}",
                                   task_state=task.state)
            return None
        return self.journal.update(row.id, result_url=task.file_url, result_url_at=self._wall())

    async def _reserve_output(self, row: Row, *, changed: bool = False) -> Row:
        """Choose the output name once and write it down, so a restart uses the same one."""
        if row.output_rel is not None:
            return row
        assert row.sha256 is not None
        for index, candidate in enumerate(output_candidates(PurePosixPath(row.rel),
                                                            self.settings.create_options.format, row.sha256)):
            if changed and index == 0:
                continue
            name = candidate.as_posix()
            if self.journal.output_taken(name, exclude_id=row.id):
                continue
            if await asyncio.to_thread((self.settings.outbox / name).exists):
                continue
            return self.journal.update(row.id, output_rel=name)
        raise RuntimeError("output_candidates ran dry")  # it is infinite; this is a bug guard

    async def _finish(self, row: Row) -> None:
        """The output is complete: now, and only now, the source may leave the inbox.

        An archive (or inbox) that refuses is waited for; the row stays `finishing` meanwhile.
        Anything no retry can cure leaves the source where it is, noted: the output exists,
        so the file is done either way.
        """
        folder = self.endings.finish_folder
        while True:
            try:
                final, note = await self.endings.finish(row)
            except asyncio.CancelledError:
                raise
            except OSError as exc:
                if folder_may_recover(exc):
                    await self._folder_failed(row, folder, exc)
                    continue
                final, note = None, self._finish_failed(row, exc)
            except Exception as exc:
                final, note = None, self._finish_failed(row, exc)
            else:
                self._folder_works(row, folder)
            break
        row = self.journal.update(row.id, FileState.DONE, final_path=str(final) if final else None,
                                  last_error=note)
        self.counts["done"] += 1
        self._release(row.id)
        log.info("file_done", file=row.rel, task_id=row.task_id, output=row.output_rel,
                 source_to=str(final) if final else self.settings.on_success,
                 total_s=round(self._wall() - row.first_seen, 3), note=note)

    def _finish_failed(self, row: Row, exc: Exception) -> str:
        log.error("finish_source_failed", file=row.rel, error=repr(exc), exc_info=not isinstance(exc, OSError))
        return f"output written, but the source could not be moved ({self.settings.on_success}): {exc}"

    # -- failure -------------------------------------------------------------------------

    async def _after_error(self, row: Row, exc: ApiError, stage: str) -> float | None:
        """Sort an API error: returns seconds to wait before retrying, or None if quarantined."""
        verdict = self.policy.judge(exc, stage=stage, attempts=row.attempts + 1, task_id=row.task_id,
                                    task_age_s=None if row.task_created_at is None
                                    else self._wall() - row.task_created_at)
        row = self.journal.record_error(row.id, stage=stage, message=exc.message, http_status=exc.status_code,
                                        task_state=exc.task_state, count_attempt=verdict.counts)
        if verdict.action is Action.QUARANTINE:
            await self._quarantine(row, stage, verdict.reason, http_status=exc.status_code,
                                   task_state=exc.task_state)
            return None
        return self._act(verdict, exc, stage, row.rel)

    def _act(self, verdict: Verdict, exc: ApiError, stage: str, rel: str | None) -> float:
        """Carry out a verdict that keeps the file: pause, wait out, or retry later."""
        if verdict.action is Action.PAUSE_ACCOUNT:
            return 0.0  # the account gate noted it and holds the next call until a probe passes
        if verdict.action is Action.WAIT_OUT:
            if self.policy.outage_failures in (1, 10) or self.policy.outage_failures % 50 == 0:
                log.warning("service_unreachable", stage=stage, error=exc.message,
                            retry_in_s=round(verdict.delay_s, 2))
            return float(verdict.delay_s)
        log.warning("retrying", file=rel, stage=stage, error=exc.message, http_status=exc.status_code,
                    retry_in_s=round(verdict.delay_s, 2))
        return float(verdict.delay_s)

    def _service_answered(self) -> None:
        failures = self.policy.outage_over()
        if failures:
            log.info("service_reachable_again", after_failures=failures)

    async def _quarantine(self, row: Row, stage: str, reason: str, *, http_status: int | None = None,
                          task_state: int | None = None) -> None:
        self._in_flight.add(row.id)
        try:
            row = self.journal.update(
                row.id, FileState.QUARANTINING, last_stage=stage, last_error=reason,
                last_http_status=http_status if http_status is not None else row.last_http_status,
                last_task_state=task_state if task_state is not None else row.last_task_state,
            )
        except Exception:  # a bug: say so, and hold no slot for it (the row resumes at the next start)
            log.exception("quarantine_crashed", file=row.rel, stage=stage, reason=reason)
            self._release(row.id)
            return
        await self._move_to_quarantine(row)

    async def _move_to_quarantine(self, row: Row, *, resumed: bool = False) -> None:
        """Report, then move; a quarantine folder that refuses is waited for, the row staying
        `quarantining` (its `last_error` is the report's reason, so the wait is not noted there)."""
        while True:
            try:
                dest = await self.endings.quarantine(row, resumed=resumed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(exc, OSError) and folder_may_recover(exc):
                    await self._folder_failed(row, "quarantine", exc)
                    continue
                self._quarantine_failed(row, exc)
                return
            self._folder_works(row, "quarantine")
            break
        row = self.journal.update(row.id, FileState.QUARANTINED, final_path=str(dest) if dest else None)
        self.counts["quarantined"] += 1
        self._release(row.id)
        log.warning("file_quarantined", file=row.rel, stage=row.last_stage, reason=row.last_error,
                    task_id=row.task_id, attempts=row.attempts, to=row.final_path)

    def _quarantine_failed(self, row: Row, exc: Exception) -> None:
        """This file cannot be put in quarantine at all (a name the folder refuses, or a bug).

        Its row ends all the same, so it holds no slot and `once` ends: the source stays in the
        inbox (a rescan does not take it again: its row is finished), and the journal and this
        loud line say why.
        """
        row = self.journal.update(row.id, FileState.QUARANTINED, final_path=None,
                                  last_error=f"{row.last_error}; it could not be put in quarantine: {exc}")
        self.counts["quarantined"] += 1
        self._release(row.id)
        log.error("quarantine_failed", file=row.rel, stage=row.last_stage, reason=row.last_error,
                  task_id=row.task_id, error=repr(exc), exc_info=not isinstance(exc, OSError),
                  action="the source stays in the inbox; move it out by hand")

def _replaced(exc: NotRegularFile) -> str:
    """The quarantine reason for a queued file whose path is now something else."""
    return (f"the file was replaced by {exc.strerror} before it was uploaded; that is never read "
            f"or moved, and was left in the inbox")

"""The bounded pool: each file's journey from the queue to the outbox or to quarantine.

    queue ──► create (max_uploads at once) ───► poller ──► download ──► finish source
  (window.py)  │ (create.py)      (poller.py, answers.py)    (delivery.py)   │
               └──────────────► quarantine (report + move) ◄───────────────┘
                                 (failures.py, endings.py)

Rules that keep the users' three promises:

- *Nothing is lost.* A file leaves the inbox only after its output is complete in the outbox
  (download to a temp name, fsync, rename), or after its `.error.json` is written.
- *No credit twice.* The journal says `uploading` before a create and carries the task id
  the moment create answers; a restart polls that task (see create.py).
- *It keeps up.* At most `max_in_flight` files are between create and finish (flight.py);
  one token bucket in the client spaces every API call; queries (priority 0) go before
  creates (priority 1) so finished results are fetched first; the planner queries when a
  task is likely done instead of every second; with callbacks on, the service says when, and
  a query is only the fallback for a callback that never came.

What an error means is decided in `policy.py` and carried out in `failures.py`; our own
folders failing is waited out (`folders.py`); how a source leaves the inbox is `endings.py`.
What no retry can cure ends that file's journey with a loud log line, its slot released: one
file never holds the daemon.

This module only builds the parts and drives them: it takes queued rows into flight while
there is room, resumes the journal's live rows at start, and stops everything in order. The
parts never call back into it; the daemon sees only its public surface.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from structlog.contextvars import bound_contextvars

from ocr_watch.api import Task
from ocr_watch.journal import FileState, Journal, Row
from ocr_watch.recorder import NULL, Recorder

from .account import AccountGate
from .answers import Answers
from .create import Creation
from .delivery import Delivery
from .endings import Endings
from .failures import Failures
from .flight import Ended, Flight
from .folders import FolderWaits
from .jobs import Jobs
from .planner import PollPlanner
from .policy import ErrorPolicy
from .poller import Poller
from .service import Calls, OcrService
from .settings import PoolSettings
from .window import QueueWindow

__all__ = ["Pool", "PoolStats"]

log = structlog.get_logger("ocr_watch.pool")


@dataclass(frozen=True, slots=True)
class PoolStats:
    """How many files the pool finished, holds and has waiting, at one instant."""

    done: int
    quarantined: int
    in_flight: int
    queued: int  # in the queue window (more may wait in the journal)


class Pool:
    """Builds the pool's parts and drives them; see the module docstring."""

    def __init__(
        self,
        journal: Journal,
        service: OcrService,
        settings: PoolSettings,
        *,
        planner: PollPlanner | None = None,
        on_change: Callable[[], None] = lambda: None,
        on_released: Callable[[Row, Ended | None], None] | None = None,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        recorder: Recorder = NULL,
    ) -> None:
        """`planner`: the poll planner (the daemon shares it with its memory); one from
        `settings` if None. `on_change()` is called whenever a file enters or leaves flight, or
        the account's standing changes, so `once` can notice it is finished. `on_released(row,
        ended)` is called whenever a row leaves flight (`ended`: done or quarantined; None: a
        bug stopped it), so a newer version of that file, seen meanwhile, is admitted at once,
        and a hook can run. `recorder` hears what the parts see (files ended, credits
        spent, results stored), for the metrics."""
        self._journal = journal
        self._on_change = on_change
        self._settings = settings
        policy = ErrorPolicy(max_attempts=settings.max_attempts, backoff_initial_s=settings.backoff_initial_s,
                             backoff_max_s=settings.backoff_max_s, rng=rng)
        self._account = AccountGate(on_change=on_change)
        self._jobs = Jobs()
        self._window = QueueWindow(journal, settings.queue_size)
        self._flight = Flight(journal, settings.max_in_flight, on_change=on_change, on_released=on_released,
                              on_left=policy.local_failure_over, recorder=recorder)
        calls = Calls(service, self._account, recorder=recorder)
        endings = Endings(settings, wall=wall)
        folders = FolderWaits(settings, policy, self._jobs)
        self._failures = Failures(journal, policy, endings, self._flight, folders, wall=wall)
        self._delivery = Delivery(journal, calls, settings, jobs=self._jobs, flight=self._flight,
                                  failures=self._failures, folders=folders, endings=endings, wall=wall)
        answers = Answers(journal, calls, settings, delivery=self._delivery, failures=self._failures, wall=wall)
        if planner is None:
            planner = PollPlanner(min_interval_s=settings.poll_min_interval_s,
                                  max_interval_s=settings.poll_max_interval_s)
        self._poller = Poller(answers.query, answers.on_task, answers.on_error, planner, jobs=self._jobs,
                              fallback_s=settings.callback_fallback_s, wall=wall)
        self._creation = Creation(journal, calls, settings, jobs=self._jobs, poller=self._poller,
                                  delivery=self._delivery, failures=self._failures, wall=wall)
        self._wall = wall

    # -- what the daemon sees -------------------------------------------------------------

    @property
    def stats(self) -> PoolStats:
        return PoolStats(done=self._flight.done, quarantined=self._flight.quarantined,
                         in_flight=len(self._flight), queued=len(self._window))

    @property
    def idle(self) -> bool:
        """Nothing queued (in memory or in the journal) and nothing in flight."""
        return self._window.empty and not len(self._flight)

    @property
    def account_problem(self) -> str | None:
        """Why the service refuses the account now, or None."""
        return self._account.problem

    @property
    def key_refused(self) -> bool:
        """Refused for the key itself (nothing can finish), not for credits alone."""
        return self._account.key_refused

    @property
    def paid_in_flight(self) -> int:
        """Files in flight whose task exists (paid for): what `once` lets finish on a refusal."""
        return self._flight.paid()

    def reconfigure(self, settings: PoolSettings) -> list[str]:
        """A reload: the RELOADABLE settings from `settings` apply to the files that come next
        (a file in flight keeps what it was admitted with); the names of those that changed."""
        changed = self._settings.update(settings)
        self._flight.set_limit(self._settings.max_in_flight)
        return changed

    def deliver(self, task: Task) -> None:
        """A callback's news of a task (the callback receiver hands it over on the loop)."""
        self._poller.deliver(task)

    def enqueue(self, row_id: int, job: str = "default") -> None:
        """Queue a journal row of `job`; when its lane is full it waits in the journal instead."""
        self._window.put(row_id, job)
        self._on_change()

    # -- lifecycle -----------------------------------------------------------------------

    def resume(self, rows: list[Row]) -> None:
        """Pick up where a previous run stopped, for every live row of the journal."""
        for row in rows:
            with bound_contextvars(job=row.job):  # what it spawns logs its job
                self._resume(row)

    def _resume(self, row: Row) -> None:
        """One live row: queued again, or its step taken up where it stopped."""
        if row.state in (FileState.QUEUED, FileState.UPLOADING):
            if row.state is FileState.UPLOADING:
                # The create may or may not have reached the service: nothing to poll,
                # so it is uploaded again (the one credit a crash can cost).
                log.warning("resume_reupload", file=row.rel)
                row = self._journal.queued_again(row.id)
            self.enqueue(row.id, row.job)
            return
        self._flight.add(row.id)
        if row.state is FileState.POLLING:
            assert row.task_id is not None
            log.info("resume_polling", file=row.rel, task_id=row.task_id)
            self._poller.track(row.task_id, row.task_created_at or self._wall())
        elif row.state is FileState.DOWNLOADING:
            self._jobs.spawn(self._delivery.download(row), critical=True)
        elif row.state is FileState.FINISHING:
            self._jobs.spawn(self._delivery.finish(row), critical=True)
        elif row.state is FileState.QUARANTINING:
            self._jobs.spawn(self._failures.move_to_quarantine(row, resumed=True), critical=True)

    async def run(self) -> None:
        """Take queued files into flight while there is room; until cancelled."""
        poller = asyncio.create_task(self._poller.run(), name="poller")
        try:
            while not self._jobs.stopping:
                await self._flight.room()
                row_id, job = await self._window.take()
                if self._jobs.stopping:
                    break
                self._flight.add(row_id)
                with bound_contextvars(job=job):  # the file's log lines say its job
                    self._jobs.spawn(self._creation.start(row_id))
        finally:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)

    async def shutdown(self, grace_s: float) -> None:
        """Stop taking work; let uploads, downloads and moves under way finish; cancel the rest.

        Polls are simply dropped: their task ids are in the journal and the next start polls
        them again. An upload is let finish because cancelling it could cost a credit. Every
        retry wait ends at once: those rows resume at the next start.
        """
        await self._jobs.shutdown(grace_s)

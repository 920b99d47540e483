"""One scheduler for every task in flight.

Thousands of tasks waiting on the service must be cheap, so a waiting task is an entry in
a heap, not a sleeping coroutine or thread: one loop sleeps until the earliest due time,
and only then starts a short-lived query. Tasks are keyed by task id, so two files that
share a task (same content dropped twice) cost one query, not two.

The poller decides *when*; what an answer means for the files is the pool's business,
through the two callbacks it is given.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from ocr_watch.api import ApiError, Task

from .planner import PollPlanner, Reading

__all__ = ["Poller", "Target"]

log = structlog.get_logger("ocr_watch.poller")


@dataclass(slots=True)
class Target:
    """What the poller remembers about one task between queries."""

    task_id: str
    created_wall: float  # from the journal, so a restart keeps the task's true age
    last: Reading | None = None
    errors: int = 0
    queries: int = 0
    busy: bool = True  # whether the first query was planned for a busy quota
    one_reading: bool = False  # whether the next query was planned from one progress reading
    generation: int = field(default=0)


Query = Callable[[str], Awaitable[Task]]
OnTask = Callable[[Target, Task], Awaitable[None]]
OnError = Callable[[Target, ApiError], Awaitable[float | None]]


class Poller:
    """Queries tasks when the planner says they are likely done."""

    def __init__(
        self,
        query: Query,
        on_task: OnTask,
        on_error: OnError,
        planner: PollPlanner,
        *,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self._query = query
        self._on_task = on_task
        self._on_error = on_error
        self.planner = planner
        self._wall = wall
        self._mono = mono
        self._targets: dict[str, Target] = {}
        self._heap: list[tuple[float, int, str, int]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._targets)

    def track(self, task_id: str, created_wall: float, *, busy: bool = True) -> None:
        """Start polling a task (idempotent: a second file on the same task changes nothing).

        `busy` says whether other files are waiting for the quota (see planner.py).
        """
        if task_id in self._targets:
            return
        target = Target(task_id, created_wall, busy=busy)
        self._targets[task_id] = target
        age = max(0.0, self._wall() - created_wall)
        self._schedule(target, max(0.0, self.planner.first_delay(busy=busy) - age))

    def forget(self, task_id: str) -> None:
        self._targets.pop(task_id, None)

    def age(self, target: Target) -> float:
        return max(0.0, self._wall() - target.created_wall)

    def _schedule(self, target: Target, delay_s: float) -> None:
        target.generation += 1
        due = self._mono() + delay_s
        entry = (due, next(self._seq), target.task_id, target.generation)
        heapq.heappush(self._heap, entry)
        if self._heap[0] is entry:
            self._wake.set()

    async def run(self) -> None:
        """Sleep until the earliest due query, start it, repeat; until cancelled."""
        try:
            while True:
                now = self._mono()
                while self._heap and self._heap[0][0] <= now:
                    _, _, task_id, generation = heapq.heappop(self._heap)
                    target = self._targets.get(task_id)
                    if target is None or target.generation != generation:
                        continue  # forgotten, or rescheduled since
                    job = asyncio.create_task(self._poll(target), name=f"poll {task_id}")
                    self._running.add(job)
                    job.add_done_callback(self._reap)
                timeout = self._heap[0][0] - now if self._heap else None
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except TimeoutError:
                    pass
        finally:
            for job in list(self._running):
                job.cancel()
            if self._running:
                await asyncio.gather(*self._running, return_exceptions=True)

    def _reap(self, job: asyncio.Task[None]) -> None:
        self._running.discard(job)
        if not job.cancelled() and job.exception() is not None:
            log.error("poll_crashed", error=repr(job.exception()))

    async def _poll(self, target: Target) -> None:
        target.queries += 1
        try:
            task = await self._query(target.task_id)
        except ApiError as exc:
            target.errors += 1
            retry_in = await self._on_error(target, exc)
            if retry_in is not None and target.task_id in self._targets:
                self._schedule(target, retry_in)
            return
        target.errors = 0
        # The age when the query was sent: waiting for a token is not processing time.
        sent = task.sent_at if task.sent_at is not None else self._wall()
        age = max(0.0, sent - target.created_wall)
        if target.queries == 1:
            self.planner.first_outcome(not task.is_pending, busy=target.busy)
        elif target.one_reading:
            self.planner.one_reading_outcome(not task.is_pending)
        if task.is_pending:
            reading = Reading(age, task.progress)
            delay = self.planner.next_delay(reading, target.last)
            target.one_reading = self.planner.one_reading(reading, target.last)
            target.last = reading
            await self._on_task(target, task)
            if target.task_id in self._targets:
                self._schedule(target, delay)
            return
        if task.is_done:
            self.planner.record_done(age, target.last)
        self.forget(target.task_id)
        await self._on_task(target, task)

"""One scheduler for every task in flight.

Thousands of tasks waiting on the service must be cheap, so a waiting task is an entry in
a heap, not a sleeping coroutine or thread: one loop sleeps until the earliest due time,
and only then starts a short-lived query. Tasks are keyed by task id, so two files that
share a task (same content dropped twice) cost one query, not two.

With the service's callbacks on, a task created with a callback URL is not queried at
first: its answer comes to `deliver`, and only a task with no news after `fallback_s` is
queried (then as usual). Whichever answer comes first settles the task; the other is dropped.

The poller decides *when*; what an answer means for the files is the pool's business,
through the two handlers it is given. They see a `Polled` snapshot of the task, and their
return value says whether the task is still polled: the poller stops tracking a task before
it hands over an answer, and takes it up again only if told to, so a handler that ends a
task's files (quarantine, which may wait on a folder) never sees that task queried again.
Its queries run as jobs of the pool's job set (`jobs.py`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import structlog

from ocr_watch.api import ApiError, Task

from .jobs import Jobs
from .planner import PollPlanner, Reading

__all__ = ["OnError", "OnTask", "Polled", "Poller", "Query"]

log = structlog.get_logger("ocr_watch.poller")

# Callbacks for tasks not (yet) tracked: a fast task can call back before its create's answer
# has been written down. Kept briefly, and never more than this many.
EARLY_KEEP_S = 600.0
EARLY_MAX = 1024


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
    awaiting_callback: bool = False  # created with a callback URL: the first query is a fallback
    called_back: bool = False  # a callback came (one saying done without a URL still asks a query)
    generation: int = field(default=0)


@dataclass(frozen=True, slots=True)
class Polled:
    """What a handler is told about a task along with an answer."""

    task_id: str
    age_s: float  # since create, now
    queries: int  # sent so far, this one included
    errors: int  # failed queries in a row, this one included if it failed


Query = Callable[[str], Awaitable[Task]]
# A task's answer: whether to go on polling it (only asked of an unfinished task).
OnTask = Callable[[Polled, Task], Awaitable[bool]]
# A failed query: seconds until the next one, or None to stop polling the task.
OnError = Callable[[Polled, ApiError], Awaitable[float | None]]


def _is_web_url(url: str | None) -> bool:
    return url is not None and urlsplit(url).scheme in ("http", "https")


class Poller:
    """Queries tasks when the planner says they are likely done."""

    def __init__(
        self,
        query: Query,
        on_task: OnTask,
        on_error: OnError,
        planner: PollPlanner,
        *,
        jobs: Jobs,
        fallback_s: float | None = None,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self._query = query
        self._fallback_s = fallback_s
        self._on_task = on_task
        self._on_error = on_error
        self.planner = planner
        self._wall = wall
        self._mono = mono
        self._targets: dict[str, Target] = {}
        self._heap: list[tuple[float, int, str, int]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._jobs = jobs
        self._early: dict[str, tuple[float, Task]] = {}
        self.callbacks_missed = 0

    def __len__(self) -> int:
        return len(self._targets)

    def track(self, task_id: str, created_wall: float, *, busy: bool = True, callback: bool = False) -> None:
        """Start polling a task (idempotent: a second file on the same task changes nothing).

        `busy` says whether other files are waiting for the quota (see planner.py);
        `callback`, that the task was created with a callback URL, so it is queried only if
        no callback settles it within the fallback time.
        """
        if task_id in self._targets:
            return
        fallback = self._fallback_s if callback else None
        target = Target(task_id, created_wall, busy=busy, awaiting_callback=fallback is not None)
        self._targets[task_id] = target
        if self._early_callback(target):
            return
        age = max(0.0, self._wall() - created_wall)
        first = fallback if fallback is not None else self.planner.first_delay(busy=busy)
        self._schedule(target, max(0.0, first - age))

    def _early_callback(self, target: Target) -> bool:
        """Act on a callback that came while the task was not tracked; whether there was one."""
        early = self._early.pop(target.task_id, None)
        if early is None:
            return False
        self._act_on_callback(target, early[1])
        return True

    def deliver(self, task: Task) -> None:
        """A callback's news of a task. A final state settles it now; a query would say no
        more. Progress is left alone: the fallback query is planned already."""
        if task.is_pending:
            return
        target = self._targets.get(task.task_id)
        if target is None:
            self._keep_early(task)
            return
        self._act_on_callback(target, task)

    def _act_on_callback(self, target: Target, task: Task) -> None:
        target.called_back = True
        if task.is_done and not _is_web_url(task.file_url):
            # Done, but not where the result is (the vendor's callback sample shows a bare
            # file name): a query now says where, for one call.
            self._schedule(target, 0.0)
            return
        self._spawn(self._settle(target, task), f"callback {task.task_id}")

    def _keep_early(self, task: Task) -> None:
        now = self._mono()
        for task_id, (seen, _) in list(self._early.items()):
            if seen > now - EARLY_KEEP_S and len(self._early) < EARLY_MAX:
                break  # insertion order: the rest are younger
            del self._early[task_id]
        self._early[task.task_id] = (now, task)

    def _forget(self, target: Target) -> bool:
        """Stop tracking `target`; whether it was still tracked."""
        if self._targets.get(target.task_id) is not target:
            return False
        del self._targets[target.task_id]
        return True

    def _resume(self, target: Target, delay_s: float) -> None:
        """Track `target` again after a handler said so (unless it was tracked anew meanwhile)."""
        if target.task_id in self._targets:
            return
        self._targets[target.task_id] = target
        if not self._early_callback(target):
            self._schedule(target, delay_s)

    def _age(self, target: Target) -> float:
        return max(0.0, self._wall() - target.created_wall)

    def _polled(self, target: Target) -> Polled:
        return Polled(target.task_id, self._age(target), target.queries, target.errors)

    def _schedule(self, target: Target, delay_s: float) -> None:
        target.generation += 1
        due = self._mono() + delay_s
        entry = (due, next(self._seq), target.task_id, target.generation)
        heapq.heappush(self._heap, entry)
        if self._heap[0] is entry:
            self._wake.set()

    async def run(self) -> None:
        """Sleep until the earliest due query, start it, repeat; until cancelled. Queries under
        way are jobs of the pool's job set, which ends them at shutdown."""
        while True:
            now = self._mono()
            while self._heap and self._heap[0][0] <= now:
                _, _, task_id, generation = heapq.heappop(self._heap)
                target = self._targets.get(task_id)
                if target is None or target.generation != generation:
                    continue  # forgotten, or rescheduled since
                self._spawn(self._poll(target), f"poll {task_id}")
            timeout = self._heap[0][0] - now if self._heap else None
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._jobs.spawn(coro, name=name, crash_event="poll_crashed")

    async def _poll(self, target: Target) -> None:
        target.queries += 1
        try:
            task = await self._query(target.task_id)
        except ApiError as exc:
            target.errors += 1
            tracked = self._forget(target)
            retry_in = await self._on_error(self._polled(target), exc)
            if retry_in is not None and tracked:
                self._resume(target, retry_in)
            return
        if self._targets.get(target.task_id) is not target:
            return  # settled by a callback while this query was out
        target.errors = 0
        if target.awaiting_callback and target.queries == 1:
            self._fallback_answered(target, task)
        elif target.queries == 1:
            self.planner.first_outcome(not task.is_pending, busy=target.busy)
        elif target.one_reading:
            self.planner.one_reading_outcome(not task.is_pending)
        if task.is_pending:
            reading = Reading(self._age_when_sent(target, task), task.progress)
            delay = self.planner.next_delay(reading, target.last)
            target.one_reading = self.planner.one_reading(reading, target.last)
            target.last = reading
            self._forget(target)
            if await self._on_task(self._polled(target), task):
                self._resume(target, delay)
            return
        await self._settle(target, task)

    async def _settle(self, target: Target, task: Task) -> None:
        """A final answer, from a query or a callback: the first one ends the task."""
        if self._targets.get(target.task_id) is not target:
            return
        if task.is_done:
            self.planner.record_done(self._age_when_sent(target, task), target.last)
        self._forget(target)
        await self._on_task(self._polled(target), task)

    def _age_when_sent(self, target: Target, task: Task) -> float:
        """The task's age when the query was sent (waiting for a token is not processing
        time), or now, for a callback, which the service sends as the task changes."""
        sent = task.sent_at if task.sent_at is not None else self._wall()
        return max(0.0, sent - target.created_wall)

    def _fallback_answered(self, target: Target, task: Task) -> None:
        """A fallback query finding the task over means its callback did not reach us."""
        if task.is_pending or target.called_back:
            return
        self.callbacks_missed += 1
        log.warning("callback_missing", task_id=target.task_id, age_s=round(self._age(target), 1),
                    missed=self.callbacks_missed,
                    hint="check that callback.url reaches callback.listen from the internet")

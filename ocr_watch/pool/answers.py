"""What the service's answers about a task mean for its files (the poller's handlers).

A task done sends every file on it to download; a task failed sends them to quarantine; a
task still pending is polled on. `poll.timeout_seconds` holds whether queries answer or only
fail (or trickle): no task keeps its files in flight past it.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from ocr_watch.api import ApiError, Task, describe_state
from ocr_watch.journal import Journal, Stage

from .delivery import Delivery
from .failures import Failures
from .poller import Polled
from .service import Calls
from .settings import PoolSettings

__all__ = ["Answers"]

log = structlog.get_logger("ocr_watch.pool")


def _done_at(task: Task, learnt: float) -> float:
    """When the task ended at the service: its `completed_at` where that is a plausible
    wall time (not after we learnt it, not a day before), else when the answer was asked."""
    done = task.completed_at
    if done is not None and learnt - 86400.0 <= done <= learnt:
        return done
    return task.sent_at if task.sent_at is not None else learnt


class Answers:
    """The poller's query and handlers: see the module docstring."""

    def __init__(self, journal: Journal, calls: Calls, settings: PoolSettings, *, delivery: Delivery,
                 failures: Failures, wall: Callable[[], float]) -> None:
        self._journal = journal
        self._calls = calls
        self._settings = settings
        self._delivery = delivery
        self._failures = failures
        self._wall = wall

    async def query(self, task_id: str) -> Task:
        return await self._calls.query(task_id)

    def _timed_out(self, polled: Polled) -> str | None:
        """The start of the quarantine reason when the task is past `poll.timeout_seconds`."""
        if polled.age_s <= self._settings.task_timeout_s:
            return None
        return (f"no result after {polled.age_s:.0f} s (limit poll.timeout_seconds = "
                f"{self._settings.task_timeout_s:g}); task {polled.task_id}")

    async def on_task(self, polled: Polled, task: Task) -> bool:
        """An answer: whether to go on polling (only a pending task within its time is)."""
        rows = self._journal.rows_for_task(polled.task_id)
        if task.is_pending:
            late = self._timed_out(polled)
            if late is None:
                return True
            for row in rows:
                await self._failures.quarantine(
                    row, Stage.POLL, f"{late} was still {describe_state(task.state)} at {task.progress}%",
                    task_state=task.state)
            return False
        self._failures.service_answered()
        if task.is_failed:
            for row in rows:
                reason = f"the OCR service failed the task: {describe_state(task.state)}"
                if task.message:
                    reason += f" ({task.message})"
                await self._failures.quarantine(row, Stage.POLL, reason, task_state=task.state, http_status=200)
            return False
        assert task.file_url is not None
        log.info("task_done", task_id=polled.task_id, age_s=round(polled.age_s, 3),
                 queries=polled.queries, files=len(rows))
        learnt = self._wall()
        self._calls.recorder.task_done(polled.task_id, _done_at(task, learnt))
        for row in rows:
            self._delivery.begin(row, task.file_url, learnt, task_state=task.state)
        return False

    async def on_error(self, polled: Polled, exc: ApiError) -> float | None:
        """A failed query: seconds until the next, or None once its files are quarantined."""
        late = self._timed_out(polled)
        if late is not None:
            for row in self._journal.rows_for_task(polled.task_id):
                await self._failures.quarantine(row, Stage.POLL, f"{late}: the last query failed: {exc.message}",
                                                http_status=exc.status_code)
            return None
        return await self._failures.query_failed(polled.task_id, exc, errors=polled.errors, age_s=polled.age_s)

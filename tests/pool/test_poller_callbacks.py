"""The poller with callbacks on: a callback settles a task, a query is only the fallback,
and whichever answer comes first is the only one acted on."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from ocr_watch.api import ApiError, Task
from ocr_watch.pool.jobs import Jobs
from ocr_watch.pool.planner import PollPlanner
from ocr_watch.pool.poller import Polled, Poller

pytestmark = [pytest.mark.timeout(30), pytest.mark.anyio]

DONE = 1
URL = "https://results.test/r.txt?sig=1"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Service:
    """Answers queries with whatever `state` says; a query can be held until released."""

    def __init__(self) -> None:
        self.state = 4
        self.queries: list[str] = []
        self.answers = 0
        self.hold: asyncio.Event | None = None
        self.settled: list[tuple[str, int]] = []
        self.urls: list[str | None] = []
        self.changed = asyncio.Event()

    async def query(self, task_id: str) -> Task:
        self.queries.append(task_id)
        self.changed.set()
        if self.hold is not None:
            await self.hold.wait()
        # The poller goes on with this answer in the same step, before a waiter on `changed` runs.
        self.answers += 1
        self.changed.set()
        return Task(task_id, self.state, 100 if self.state == DONE else 30,
                    URL if self.state == DONE else None, sent_at=time.time())

    async def on_task(self, polled: Polled, task: Task) -> bool:
        if not task.is_pending:
            self.settled.append((task.task_id, task.state))
            self.urls.append(task.file_url)
            self.changed.set()
        return True  # go on polling a pending task

    async def on_error(self, polled: Polled, exc: ApiError) -> float | None:
        raise AssertionError(f"no query should fail here: {exc}")

    async def until(self, predicate: object, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():  # type: ignore[operator]
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def running(service: Service, fallback_s: float) -> AsyncIterator[Poller]:
    jobs = Jobs()
    poller = Poller(service.query, service.on_task, service.on_error,
                    PollPlanner(min_interval_s=0.05, max_interval_s=0.2), jobs=jobs, fallback_s=fallback_s)
    runner = asyncio.create_task(poller.run())
    try:
        yield poller
    finally:
        await jobs.shutdown(0.0)
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_a_callback_settles_the_task_without_a_query() -> None:
    service = Service()
    async with running(service, fallback_s=30.0) as poller:
        poller.track("t1", time.time(), callback=True)
        poller.deliver(Task("t1", 4, 50))  # progress: nothing to do yet
        poller.deliver(Task("t1", DONE, 100, URL))
        await service.until(lambda: service.settled)
        assert service.settled == [("t1", DONE)]
        assert service.queries == [] and len(poller) == 0 and poller.callbacks_missed == 0


async def test_without_a_callback_the_task_is_queried_at_the_fallback_and_reported() -> None:
    service = Service()
    service.state = DONE
    async with running(service, fallback_s=0.3) as poller:
        started = time.monotonic()
        poller.track("t1", time.time(), callback=True)
        await service.until(lambda: service.settled)
        assert time.monotonic() - started >= 0.3, "queried before the fallback time"
        assert service.queries == ["t1"] and service.settled == [("t1", DONE)]
        assert poller.callbacks_missed == 1


async def test_a_callback_during_a_query_is_acted_on_once() -> None:
    service = Service()
    service.state = DONE
    service.hold = asyncio.Event()
    async with running(service, fallback_s=0.05) as poller:
        poller.track("t1", time.time(), callback=True)
        await service.until(lambda: service.queries)  # the fallback query is out, held
        poller.deliver(Task("t1", DONE, 100, URL))
        await service.until(lambda: service.settled)
        service.hold.set()  # the query now answers "done" too
        await service.until(lambda: service.answers == 1)
        assert service.settled == [("t1", DONE)]
        assert poller.callbacks_missed == 0


async def test_a_callback_before_the_task_is_tracked_is_kept_for_it() -> None:
    """A fast task can call back before its create's answer is written down."""
    service = Service()
    async with running(service, fallback_s=30.0) as poller:
        poller.deliver(Task("t1", -7, 0))
        poller.track("t1", time.time(), callback=True)
        await service.until(lambda: service.settled)
        assert service.settled == [("t1", -7)] and service.queries == []


async def test_a_task_created_without_a_callback_url_is_polled_as_usual() -> None:
    """Resumed tasks and tasks from before callbacks were turned on have no callback coming."""
    service = Service()
    service.state = DONE
    async with running(service, fallback_s=30.0) as poller:
        poller.track("t1", time.time() - 60)
        await service.until(lambda: service.settled)
        assert service.queries == ["t1"] and poller.callbacks_missed == 0


async def test_a_done_callback_without_a_result_url_asks_one_query_at_once() -> None:
    """The vendor's callback sample shows `file` as a bare name: the query says where it is."""
    service = Service()
    service.state = DONE
    async with running(service, fallback_s=30.0) as poller:
        poller.track("t1", time.time(), callback=True)
        poller.deliver(Task("t1", DONE, 100, "t1.txt"))
        await service.until(lambda: service.settled, timeout=5)
        assert service.queries == ["t1"] and service.settled == [("t1", DONE)] and service.urls == [URL]
        assert poller.callbacks_missed == 0

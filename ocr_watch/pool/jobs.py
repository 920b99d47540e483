"""The pool's job set: every coroutine the pool and its poller start, supervised in one place.

A job that crashes is logged (it never takes the daemon down with it). A *critical* job, an
upload, download or move under way, is let finish at shutdown within a grace period, because
cancelling it half way could cost a credit or leave a move half-noted; every other job (a
poll, a retry wait) is cancelled, its row staying in its live state in the journal for the
next start. Once shut down the set takes no new job: a job started that late would outlive
the journal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

__all__ = ["Jobs"]

log = structlog.get_logger("ocr_watch.pool")


class Jobs:
    """Spawns, reaps, and at shutdown waits for or cancels the pool's jobs."""

    def __init__(self) -> None:
        self._jobs: set[asyncio.Future[Any]] = set()
        self._critical: set[asyncio.Future[Any]] = set()
        self._stop_requested = asyncio.Event()
        self._closed = False

    @property
    def stopping(self) -> bool:
        """Whether shutdown has begun: no new work is taken."""
        return self._stop_requested.is_set()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, critical: bool = False, name: str | None = None,
              crash_event: str = "job_crashed") -> None:
        """Run `coro` as a job; a crash is logged as `crash_event`. Refused once shut down."""
        if self._closed:
            coro.close()
            return
        job = asyncio.ensure_future(coro)
        if name is not None and isinstance(job, asyncio.Task):
            job.set_name(name)
        self._jobs.add(job)
        if critical:
            self._critical.add(job)
        job.add_done_callback(lambda done: self._reap(done, crash_event))

    def let_finish(self, future: asyncio.Future[Any]) -> None:
        """Shutdown waits for `future` within its grace period; its owner handles its outcome."""
        self._critical.add(future)
        future.add_done_callback(self._critical.discard)

    def _reap(self, job: asyncio.Future[Any], crash_event: str) -> None:
        self._jobs.discard(job)
        self._critical.discard(job)
        if not job.cancelled() and job.exception() is not None:
            exc = job.exception()
            log.error(crash_event, error=repr(exc), exc_info=exc)

    async def pause(self, delay_s: float) -> None:
        """Wait before a retry; a stop cuts the wait short by cancelling the job (its row stays in
        its live state in the journal, and the next start resumes it)."""
        if not self._stop_requested.is_set():
            try:
                await asyncio.wait_for(self._stop_requested.wait(), delay_s)
            except TimeoutError:
                return
        raise asyncio.CancelledError("stopping")

    async def shutdown(self, grace_s: float) -> None:
        """End every retry wait; let critical jobs finish within `grace_s`; cancel the rest."""
        self._stop_requested.set()
        critical = [job for job in self._critical if not job.done()]
        if critical:
            _, pending = await asyncio.wait(critical, timeout=grace_s)
            if pending:
                log.warning("shutdown_cancelling", unfinished=len(pending))
        self._closed = True
        for job in list(self._jobs):
            job.cancel()
        if self._jobs:
            await asyncio.gather(*self._jobs, return_exceptions=True)

"""The upload gate: at most `slots` uploads at once, the waiting ones served round robin by job.

Why not a lock: the files waiting for the gate are in flight already (each holds a slot of
`pool.max_in_flight`), so with a first-come lock a job with a backlog fills every slot and
the queue at the gate, and another job's single file waits behind all of them. Served in
turn by job (first come first served within a job), that file waits for at most one upload
of each busy job (issue 18's fair share; the queue window is fair the same way).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["FairGate"]


class FairGate:
    """See the module docstring. Used on the event loop's thread only."""

    def __init__(self, slots: int = 1) -> None:
        self._free = slots
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self._turns: deque[str] = deque()  # jobs with waiters, the next one first

    @asynccontextmanager
    async def hold(self, job: str) -> AsyncIterator[None]:
        """Hold a slot for one of `job`'s uploads."""
        await self._acquire(job)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, job: str) -> None:
        if self._free > 0 and not self._turns:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(job, deque()).append(waiter)
        if job not in self._turns:
            self._turns.append(job)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed the slot as it was cancelled: pass it on
            else:
                self._forget(job, waiter)
            raise

    def _forget(self, job: str, waiter: asyncio.Future[None]) -> None:
        queue = self._waiting.get(job)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            if not queue:
                del self._waiting[job]
                self._turns.remove(job)

    def _release(self) -> None:
        """Hand the slot to the next job's first waiter, or free it."""
        while self._turns:
            job = self._turns.popleft()
            queue = self._waiting[job]
            waiter = queue.popleft()
            if queue:
                self._turns.append(job)
            else:
                del self._waiting[job]
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

"""One pool per API key, seen by the daemon as one (issue 18).

Why a pool per key, not one pool with a client per key: a key is an account, with its own
quota (its token bucket, in its client), its own upload gate and its own standing (a key
refused, or out of credits, pauses that account's jobs only: AccountGate). Every job on a
key shares that key's pool, so they share its quota; its window serves them round robin
(window.py). The jobs without a key of their own share the configuration's `api.key`, so a
simple setup or one office's jobs are exactly one pool. The journal is one for all: each
row says its job, and the job says its pool. `pool.max_in_flight` is per key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from ocr_watch.api import Task
from ocr_watch.journal import Row

from .pool import Pool, PoolStats

__all__ = ["PoolGroup"]


class PoolGroup:
    """The pools by key name, and which one serves each job."""

    def __init__(self, pools: Mapping[str, Pool], pool_of_job: Mapping[str, str]) -> None:
        self.pools = dict(pools)
        self._of_job = {job: self.pools[key] for job, key in pool_of_job.items()}

    def of(self, job: str) -> Pool:
        return self._of_job[job]

    @property
    def stats(self) -> PoolStats:
        parts = [pool.stats for pool in self.pools.values()]
        return PoolStats(done=sum(p.done for p in parts), quarantined=sum(p.quarantined for p in parts),
                         in_flight=sum(p.in_flight for p in parts), queued=sum(p.queued for p in parts))

    @property
    def idle(self) -> bool:
        return all(pool.idle for pool in self.pools.values())

    @property
    def account_problem(self) -> str | None:
        """Why a key's account is refused now (the first such), or None."""
        return next((p.account_problem for p in self.pools.values() if p.account_problem), None)

    @property
    def key_refused(self) -> bool:
        """Every pool with an account problem has its key refused (nothing there can finish)."""
        troubled = [p for p in self.pools.values() if p.account_problem]
        return bool(troubled) and all(p.key_refused for p in troubled)

    @property
    def paid_in_flight(self) -> int:
        return sum(pool.paid_in_flight for pool in self.pools.values())

    def deliver(self, task: Task) -> None:
        """A callback's news: the pool that tracks the task acts on it (the others keep it a
        short while, bounded, as they keep any early callback)."""
        for pool in self.pools.values():
            pool.deliver(task)

    def enqueue(self, row_id: int, job: str) -> None:
        self.of(job).enqueue(row_id, job)

    def resume(self, rows: list[Row]) -> None:
        for pool in self.pools.values():
            pool.resume([row for row in rows if self._of_job.get(row.job) is pool])

    async def run(self) -> None:
        """Run every pool until cancelled; one that crashes ends them all (surfaced by the daemon)."""
        async with asyncio.TaskGroup() as group:
            for key, pool in self.pools.items():
                group.create_task(pool.run(), name=f"pool {key}")

    async def shutdown(self, grace_s: float) -> None:
        await asyncio.gather(*(pool.shutdown(grace_s) for pool in self.pools.values()))

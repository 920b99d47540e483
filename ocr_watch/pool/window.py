"""The queue window: the rows waiting for a slot, a bounded window onto the journal, one lane
per job, taken round robin.

Each job's lane holds at most `size` row ids in memory; past that, its rows wait on disk
(state `queued`) and are refilled in row-id order when the lane is half empty, so a million
files dropped at once cost a million journal rows, not a million queue entries. Nothing
queued is ever dropped: a row not in its lane is still `queued` in the journal, and
`queued_after` finds it.

Fair share (issue 18): `take` serves the lanes in turn, one row each, so a job with 10,000
files waiting delays another job's single file by at most one upload per busy job, not by
its whole backlog. Round robin, not weighted: every job on one key gets an equal share of
its uploads while several are busy, and an idle job's share goes to the others.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from ocr_watch.journal import Journal

__all__ = ["QueueWindow"]


@dataclass
class _Lane:
    """One job's waiting rows: those in memory, and whether more wait in the journal."""

    ids: deque[int] = field(default_factory=deque)
    backlog: bool = False
    last_queued_id: int = 0


class QueueWindow:
    """Row ids by job, in order of admission within a job; see the module docstring."""

    def __init__(self, journal: Journal, size: int) -> None:
        self._journal = journal
        self._size = size
        self._lanes: dict[str, _Lane] = {}
        self._turns: deque[str] = deque()  # the lanes with rows waiting, the next one first
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        """Row ids in the window (not those waiting in the journal)."""
        return sum(len(lane.ids) for lane in self._lanes.values())

    @property
    def empty(self) -> bool:
        """Nothing waiting, in the window or in the journal."""
        return not self._turns

    def put(self, row_id: int, job: str = "default") -> None:
        """Queue a journal row of `job`; when its lane is full it waits in the journal instead."""
        lane = self._lanes.setdefault(job, _Lane())
        if lane.backlog or len(lane.ids) >= self._size:
            lane.backlog = True
        else:
            lane.ids.append(row_id)
            lane.last_queued_id = max(lane.last_queued_id, row_id)
        if job not in self._turns:
            self._turns.append(job)
        self._ready.set()

    async def take(self) -> tuple[int, str]:
        """The next row id of the next job in turn (its lane refilled from the journal first
        when half empty)."""
        while True:
            while not self._turns:
                self._ready.clear()
                await self._ready.wait()
            job = self._turns.popleft()
            lane = self._lanes[job]
            if lane.backlog and len(lane.ids) <= self._size // 2:
                self._refill(job, lane)
            if not lane.ids:
                continue  # its backlog was taken meanwhile (worked on by a resume)
            row_id = lane.ids.popleft()
            if lane.ids or lane.backlog:
                self._turns.append(job)  # its next row waits for the other jobs' turns
            return row_id, job

    def _refill(self, job: str, lane: _Lane) -> None:
        room = self._size - len(lane.ids)
        ids = self._journal.queued_after(lane.last_queued_id, room, job=job)
        lane.ids.extend(ids)
        if ids:
            lane.last_queued_id = ids[-1]
        if len(ids) < room:
            lane.backlog = False

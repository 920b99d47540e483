"""The queue window: the rows waiting for a slot, a bounded window onto the journal.

At most `size` row ids are held in memory; past that, rows wait on disk (state `queued`) and
are refilled in row-id order when the window is half empty, so a million files dropped at once
cost a million journal rows, not a million queue entries. Nothing queued is ever dropped: a row
not in the window is still `queued` in the journal, and `queued_after` finds it.
"""

from __future__ import annotations

import asyncio

from ocr_watch.journal import Journal

__all__ = ["QueueWindow"]


class QueueWindow:
    """Row ids in order of admission; see the module docstring."""

    def __init__(self, journal: Journal, size: int) -> None:
        self._journal = journal
        self._queue: asyncio.Queue[int] = asyncio.Queue(maxsize=size)
        self._backlog = False
        self._last_queued_id = 0

    def __len__(self) -> int:
        """Row ids in the window (not those waiting in the journal)."""
        return self._queue.qsize()

    @property
    def empty(self) -> bool:
        """Nothing waiting, in the window or in the journal."""
        return self._queue.empty() and not self._backlog

    def put(self, row_id: int) -> None:
        """Queue a journal row; when the window is full it waits in the journal instead."""
        if self._backlog or self._queue.full():
            self._backlog = True
        else:
            self._queue.put_nowait(row_id)
            self._last_queued_id = max(self._last_queued_id, row_id)

    async def take(self) -> int:
        """The next row id, refilling the window from the journal first when it is half empty."""
        if self._backlog and self._queue.qsize() <= self._queue.maxsize // 2:
            self._refill()
        return await self._queue.get()

    def _refill(self) -> None:
        room = self._queue.maxsize - self._queue.qsize()
        ids = self._journal.queued_after(self._last_queued_id, room)
        for row_id in ids:
            self._queue.put_nowait(row_id)
            self._last_queued_id = row_id
        if len(ids) < room:
            self._backlog = False

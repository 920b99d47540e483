"""The files in flight: at most `limit` of them between their start and their end.

A row enters flight when the pool takes it from the queue (or resumes it, or quarantines it
from anywhere), and leaves it exactly once its row is finished (done or quarantined), or when
a bug stops it (its row then resumes at the next start). Leaving frees a slot and tells the
daemon (`on_change`) and the daemon's `on_released` (so a newer version of that file, seen
meanwhile, is admitted at once, and the job's hook runs for a file that ended).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

from ocr_watch.journal import Journal, Row
from ocr_watch.recorder import NULL, Recorder

__all__ = ["Flight"]

Ended = Literal["done", "quarantined"]


class Flight:
    """The in-flight slots and the count of files that ended."""

    def __init__(self, journal: Journal, limit: int, *, on_change: Callable[[], None],
                 on_released: Callable[[Row, Ended | None], None] | None, on_left: Callable[[int], object],
                 recorder: Recorder = NULL) -> None:
        """`on_left(row_id)` forgets what the pool kept about a row (its local-failure backoff);
        `recorder` is told of every file that ended, and how long it took from its admission."""
        self._recorder = recorder
        self._journal = journal
        self._limit = limit
        self._rows: set[int] = set()
        self._freed = asyncio.Event()
        self._on_change = on_change
        self._on_released = on_released
        self._on_left = on_left
        self.done = 0
        self.quarantined = 0

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, row_id: int) -> None:
        self._rows.add(row_id)

    def set_limit(self, limit: int) -> None:
        """A new `max_in_flight` (a reload): more room is used at once; with less, files in
        flight finish and no new one starts until there is room under the new limit."""
        self._limit = limit
        self._freed.set()

    async def room(self) -> None:
        """Wait until a slot is free."""
        while len(self._rows) >= self._limit:
            self._freed.clear()
            await self._freed.wait()

    def paid(self) -> int:
        """Files in flight whose task exists (paid for): what `once` lets finish on a refusal."""
        return sum(1 for row_id in self._rows if self._journal.get(row_id).task_id is not None)

    def release(self, row_id: int, ended: Ended | None) -> None:
        """The row left flight: `ended` says how (None: a bug stopped it, not counted)."""
        if ended == "done":
            self.done += 1
        elif ended == "quarantined":
            self.quarantined += 1
        self._rows.discard(row_id)
        self._on_left(row_id)
        self._freed.set()
        self._on_change()
        row = self._journal.get(row_id)
        if ended is not None:
            took = None if row.finished_at is None else max(0.0, row.finished_at - row.first_seen)
            self._recorder.file_finished(ended, took, row.job)
        if self._on_released is not None:
            self._on_released(row, ended)

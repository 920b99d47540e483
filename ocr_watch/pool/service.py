"""The OCR service as the pool sees it, and the pool's calls to it.

The pool depends on the `OcrService` protocol, not on the concrete client, so its parts can be
driven by a fake. `Calls` puts the account gate around queries, and keeps the quota meter: the
API calls of the last QUOTA_WINDOW_S; when they use most of the quota, the quota is the
bottleneck and queries are spent sparingly (see planner.py).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ocr_watch.api import CreateOptions, Task
from ocr_watch.api.client import Upload
from ocr_watch.recorder import NULL, Recorder

from .account import AccountGate

__all__ = ["QUOTA_BUSY_SHARE", "QUOTA_WINDOW_S", "Calls", "OcrService", "RateSource"]

QUOTA_WINDOW_S = 10.0
QUOTA_BUSY_SHARE = 0.9


class RateSource(Protocol):
    """What spaces the calls: its rate is the quota."""

    @property
    def rate_per_s(self) -> float: ...


class OcrService(Protocol):
    """The calls the pool makes (`PicWishClient` is one)."""

    @property
    def bucket(self) -> RateSource: ...

    async def upload(self, source: Path, options: CreateOptions, *, priority: int = 0) -> Upload: ...

    async def get_task(self, task_id: str, *, priority: int = 0) -> Task: ...

    async def download_result(self, url: str, dest: Path, *, mode: int = 0o666) -> int: ...


class Calls:
    """The service behind the account gate, with the quota meter."""

    def __init__(self, service: OcrService, account: AccountGate, *,
                 mono: Callable[[], float] = time.monotonic, recorder: Recorder = NULL) -> None:
        """`recorder`: where the pool's parts report what they see (credits, results, lost answers)."""
        self.service = service
        self.account = account
        self.recorder = recorder
        self._mono = mono
        self._recent: deque[float] = deque()

    def note(self) -> None:
        """Count one API call (an upload or a query) against the quota."""
        now = self._mono()
        self._recent.append(now)
        while self._recent and self._recent[0] < now - QUOTA_WINDOW_S:
            self._recent.popleft()

    def busy(self) -> bool:
        """Whether recent calls used most of the quota (an instant count of waiters misleads:
        tasks created in a burst finish in a burst, though the quota is mostly idle)."""
        allowed = self.service.bucket.rate_per_s * QUOTA_WINDOW_S
        return len(self._recent) >= QUOTA_BUSY_SHARE * allowed

    async def query(self, task_id: str) -> Task:
        """Ask the service about a task (priority 0: results already paid for come first)."""
        async with self.account.call(create=False):
            self.note()
            return await self.service.get_task(task_id, priority=0)

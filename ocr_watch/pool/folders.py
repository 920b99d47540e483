"""Our own folders failing: an outage to wait out, never the file's fault.

An outbox, archive or quarantine folder that is full, read-only or gone keeps the file in
its state; it retries with the local-failure backoff (its own, per row), logged at the
folder's first failure, then every FOLDER_LOG_EVERY-th or once a FOLDER_LOG_INTERVAL_S, so a
folder broken for a day with many files waiting is a few lines, not thousands. The first
write that works again says so. A stop ends these waits at once; the next start resumes the row.
"""

from __future__ import annotations

import dataclasses
import time

import structlog

from ocr_watch.journal import Row

from .jobs import Jobs
from .policy import ErrorPolicy
from .settings import PoolSettings

__all__ = ["FolderWaits"]

log = structlog.get_logger("ocr_watch.pool")

FOLDER_LOG_EVERY = 10
FOLDER_LOG_INTERVAL_S = 60.0


@dataclasses.dataclass
class _Trouble:
    """A folder failing: how many writes it refused since it last worked; when that was logged."""

    failures: int = 0
    logged_at: float = 0.0


class FolderWaits:
    """Waits for a failing folder, and logs it sparingly; see the module docstring."""

    def __init__(self, settings: PoolSettings, policy: ErrorPolicy, jobs: Jobs) -> None:
        self._settings = settings
        self._policy = policy
        self._jobs = jobs
        self._trouble: dict[tuple[str, str], _Trouble] = {}  # by (job, folder)

    async def failed(self, row: Row, folder: str, exc: OSError) -> None:
        """`folder` refused a write of `row`'s: wait with the row's backoff, then return."""
        delay = self._policy.local_failure_delay(row.id)
        trouble = self._trouble.setdefault((row.job, folder), _Trouble())
        trouble.failures += 1
        now = time.monotonic()
        if (trouble.failures == 1 or trouble.failures % FOLDER_LOG_EVERY == 0
                or now - trouble.logged_at >= FOLDER_LOG_INTERVAL_S):
            trouble.logged_at = now
            log.error("folder_failing", job=row.job, folder=folder,
                      path=str(getattr(self._settings.place(row), folder)), error=str(exc),
                      file=row.rel, failures=trouble.failures, retry_in_s=round(delay, 2),
                      action="the file waits; fix the folder, no restart needed")
        await self._jobs.pause(delay)

    def works(self, row: Row, folder: str) -> None:
        """A write of `row`'s in `folder` worked: its backoff, and the folder's trouble, are over."""
        self._policy.local_failure_over(row.id)
        trouble = self._trouble.pop((row.job, folder), None)
        if trouble is not None:
            log.info("folder_working_again", job=row.job, folder=folder,
                     path=str(getattr(self._settings.place(row), folder)),
                     after_failures=trouble.failures, file=row.rel)

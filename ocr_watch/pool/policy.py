"""What an API error means for a file: the one place errors become outcomes.

    PermanentError        quarantine: the file can never succeed as sent
    ResultUnavailable     quarantine: the task or its result is gone (an expired link says
                          the credit is spent and how to run it again)
    AccountError          pause all work: every file would fail the same way
    ServiceUnreachable,   wait it out: an outage or the rate limit is nobody's file's fault,
    RateLimited           so it never counts against one
    ServerError (other)   retry with backoff, counted; quarantine after `max_attempts`

Our own folders failing (outbox, archive or quarantine full, read-only or gone) is an outage
too: the file waits, with the same backoff, until the folder works again. Only an error no
retry can cure (a name the folder refuses) is that file's own (`folder_may_recover`).

Pure apart from the outage counters, so the rules are tested without a server.
"""

from __future__ import annotations

import enum
import errno
import random
from collections.abc import Hashable
from dataclasses import dataclass

from ocr_watch.api import (
    AccountError,
    ApiError,
    PermanentError,
    RateLimited,
    ResultUnavailable,
    ServiceUnreachable,
)
from ocr_watch.journal import Stage

from .backoff import backoff_delay

__all__ = ["Action", "ErrorPolicy", "Verdict", "folder_may_recover"]

OUTAGE_BACKOFF_MAX_S = 60.0

# Errors about this one file's name or kind, which no waiting cures: everything else from our
# folders (no space, no permission, read-only, gone, a share that went away) is the folder's.
_THIS_FILES_OWN = frozenset({errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL, errno.ELOOP, errno.EISDIR,
                             errno.EFBIG})


def folder_may_recover(exc: OSError) -> bool:
    """Whether a failure to write in one of our folders may pass when a person fixes the folder."""
    return exc.errno not in _THIS_FILES_OWN


class Action(enum.Enum):
    QUARANTINE = "quarantine"
    RETRY = "retry"
    WAIT_OUT = "wait_out"
    PAUSE_ACCOUNT = "pause_account"


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str = ""
    delay_s: float = 0.0
    counts: bool = False  # whether this failure counts against the file's attempts


class ErrorPolicy:
    """Sorts errors; remembers how long the service has been unreachable, for the backoff."""

    def __init__(self, *, max_attempts: int, backoff_initial_s: float, backoff_max_s: float,
                 rng: random.Random | None = None) -> None:
        self.max_attempts = max_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._rng = rng or random.Random()
        self.outage_failures = 0
        self._local_failures: dict[Hashable, int] = {}

    def judge(self, exc: ApiError, *, stage: Stage, attempts: int, task_id: str | None,
              task_age_s: float | None = None) -> Verdict:
        """`attempts` counts this failure too when it is a counted kind (see `Verdict.counts`);
        `task_age_s`, when known, goes into the reason of a task the service lost."""
        if isinstance(exc, ResultUnavailable):
            age = "" if task_age_s is None else f", created {task_age_s:.0f} s ago"
            if stage == Stage.DOWNLOAD:
                reason = (f"{exc.message}; task {task_id}{age} was finished (and paid for) but its result could "
                          "not be fetched, and asking the service again gave no working link. Move the file "
                          "back into the inbox to run it again (a new credit).")
            else:
                reason = f"task {task_id}{age}: {exc.message}"
            return Verdict(Action.QUARANTINE, reason)
        if isinstance(exc, PermanentError):
            return Verdict(Action.QUARANTINE, exc.message)
        if isinstance(exc, AccountError):
            return Verdict(Action.PAUSE_ACCOUNT, exc.message)
        if isinstance(exc, ServiceUnreachable | RateLimited):
            return Verdict(Action.WAIT_OUT, exc.message, self.outage_delay(getattr(exc, "retry_after", None)))
        if attempts >= self.max_attempts:
            what = "queries of task " + str(task_id) if stage == Stage.POLL else "times"
            return Verdict(Action.QUARANTINE, f"the service failed {attempts} {what}; last: {exc.message}",
                           counts=True)
        delay = backoff_delay(attempts - 1, self.backoff_initial_s, self.backoff_max_s, self._rng)
        return Verdict(Action.RETRY, exc.message, delay, counts=True)

    def outage_delay(self, retry_after: float | None = None) -> float:
        delay = backoff_delay(self.outage_failures, self.backoff_initial_s,
                              min(self.backoff_max_s, OUTAGE_BACKOFF_MAX_S), self._rng)
        self.outage_failures += 1
        return max(delay, retry_after or 0.0)

    def outage_over(self) -> int:
        """The service answered; returns how many failures the outage lasted (0 if none)."""
        failures, self.outage_failures = self.outage_failures, 0
        return failures

    def local_failure_delay(self, key: Hashable = None) -> float:
        """Our own disk failed (full, permissions): wait for it, never blame the file.

        Counted per `key` (the pool uses the file's row): a file that waits on a broken
        subfolder backs off on its own, whatever other files in working folders do.
        """
        failures = self._local_failures.get(key, 0)
        delay = backoff_delay(failures, self.backoff_initial_s,
                              min(self.backoff_max_s, OUTAGE_BACKOFF_MAX_S), self._rng)
        self._local_failures[key] = failures + 1
        return delay

    def local_failure_over(self, key: Hashable = None) -> int:
        """The write of `key` worked (or its file is finished): returns how many failures it
        had (0 if none), and forgets them."""
        return self._local_failures.pop(key, 0)

"""What the pool needs to know, as plain values (the daemon maps the YAML config onto it).

The pool's parts share one instance and read it at each use, never copying a value, so a
reload (SIGHUP) that changes a field in `RELOADABLE` in place (`update`, on the loop,
between two awaits) reaches the next file every part handles. What a file was admitted
with stays its own: its format, language, password and the rule that matched are in its
journal row (`create_options`), so a file queued before a reload is created, shared and
named as admitted. A job's `on_success` (in `places`) is decided when a file ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ocr_watch.api import CreateOptions
from ocr_watch.choices import OnSuccess
from ocr_watch.journal import Row

__all__ = ["RELOADABLE", "JobPlace", "PoolSettings"]

# The fields a reload may change in place (a job's folders do not change without a restart:
# reload.py says so; its on_success does, through `places`).
RELOADABLE = ("places", "max_in_flight")


@dataclass(frozen=True, kw_only=True)
class JobPlace:
    """One job's folders and what becomes of a source after success (issue 18): every row
    says its job, and the pool takes these from it."""

    name: str
    inbox: Path
    outbox: Path
    quarantine: Path
    archive: Path
    on_success: OnSuccess


@dataclass(kw_only=True)
class PoolSettings:
    """Every value a user can set comes from the config (`served.pool_settings`), which alone
    holds their defaults; the two here are the pool's own and not configurable.

    A file's OCR options are not here: they were fixed when it was admitted and are in its
    row (`create_options`)."""

    places: Mapping[str, JobPlace]  # by job name: the jobs this pool serves
    max_in_flight: int
    max_uploads: int  # uploads crossing the line at once (one at a time turned into a task: create.py)
    queue_size: int  # row ids held in memory per job; the journal holds the rest
    poll_min_interval_s: float
    task_timeout_s: float
    max_attempts: int
    ambiguous_creates: int  # lost create answers sent again before quarantine (retry.ambiguous_creates)
    backoff_initial_s: float
    backoff_max_s: float
    # The callback URL given to the service (token included); None: callbacks are off.
    callback_url: str | None = None
    # With callbacks on: when a task that has not called back is queried anyway.
    callback_fallback_s: float | None = None
    poll_max_interval_s: float = 30.0
    # Where the reports of files moved back from quarantine go (out of the quarantine folder);
    # None: left where they are.
    retired_reports: Path | None = None
    # A result URL is valid for an hour; reuse one for identical content only well inside that.
    result_reuse_s: float = 45 * 60.0

    def place(self, row: Row) -> JobPlace:
        """The folders of the row's job."""
        return self.places[row.job]

    def create_options(self, row: Row) -> CreateOptions:
        """What the row is sent with: the options fixed at its admission (see the journal)."""
        if row.format is None or row.language is None:
            raise RuntimeError(f"row {row.id} has no options fixed (a row of an older version not resumed)")
        return CreateOptions(format=row.format, language=row.language, password=row.password,
                             callback_url=self.callback_url)

    def update(self, new: PoolSettings) -> list[str]:
        """Take `new`'s values of the RELOADABLE fields; the names of those that changed."""
        changed = [name for name in RELOADABLE if getattr(self, name) != getattr(new, name)]
        for name in changed:
            setattr(self, name, getattr(new, name))
        return changed

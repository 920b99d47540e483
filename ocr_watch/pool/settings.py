"""What the pool needs to know, as plain values (the daemon maps the YAML config onto it).

The pool's parts share one instance and read it at each use, never copying a value, so a
reload (SIGHUP) that changes a field in `RELOADABLE` in place (`update`, on the loop,
between two awaits) reaches the next file every part handles. What a file was admitted
with stays its own: format and language are in its journal row's `options_key`
(`options_for`, `format_of`), so a file queued before a reload is created, shared and named
as admitted; only the OCR password (not in the key) is the current one at its upload.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ocr_watch.api import CreateOptions
from ocr_watch.choices import OnSuccess

__all__ = ["RELOADABLE", "PoolSettings"]

# The fields a reload may change in place.
RELOADABLE = ("on_success", "create_options", "max_in_flight")


@dataclass(kw_only=True)
class PoolSettings:
    """Every value a user can set comes from the config (`daemon.pool_settings`), which alone
    holds their defaults; the two here are the pool's own and not configurable."""

    inbox: Path
    outbox: Path
    quarantine: Path
    archive: Path
    on_success: OnSuccess
    create_options: CreateOptions
    max_in_flight: int
    max_uploads: int  # uploads crossing the line at once (one at a time turned into a task: create.py)
    queue_size: int  # row ids held in memory; the journal holds the rest
    poll_min_interval_s: float
    task_timeout_s: float
    max_attempts: int
    ambiguous_creates: int  # lost create answers sent again before quarantine (retry.ambiguous_creates)
    backoff_initial_s: float
    backoff_max_s: float
    # With callbacks on (create_options carries a callback URL): when a task that has not
    # called back is queried anyway. None: callbacks are off.
    callback_fallback_s: float | None = None
    poll_max_interval_s: float = 30.0
    # Where the reports of files moved back from quarantine go (out of the quarantine folder);
    # None: left where they are.
    retired_reports: Path | None = None
    # A result URL is valid for an hour; reuse one for identical content only well inside that.
    result_reuse_s: float = 45 * 60.0

    @property
    def options_key(self) -> str:
        """What makes two results of the same content interchangeable; files admitted now get it."""
        return f"{self.create_options.format}|{self.create_options.language}"

    def options_for(self, options_key: str) -> CreateOptions:
        """The create options of a file admitted under `options_key` (a row's): its format and
        language, today's password and callback URL. An unreadable key: today's options."""
        fmt, sep, language = options_key.partition("|")
        if not (sep and fmt and language):
            return self.create_options
        return dataclasses.replace(self.create_options, format=fmt, language=language)

    def format_of(self, options_key: str) -> str:
        """The output format of a file admitted under `options_key`."""
        return self.options_for(options_key).format

    def update(self, new: PoolSettings) -> list[str]:
        """Take `new`'s values of the RELOADABLE fields; the names of those that changed."""
        changed = [name for name in RELOADABLE if getattr(self, name) != getattr(new, name)]
        for name in changed:
            setattr(self, name, getattr(new, name))
        return changed

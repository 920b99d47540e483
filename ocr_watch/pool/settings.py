"""What the pool needs to know, as plain values (the daemon maps the YAML config onto it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ocr_watch.api import CreateOptions
from ocr_watch.choices import OnSuccess

__all__ = ["PoolSettings"]


@dataclass(frozen=True, kw_only=True)
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
        """What makes two results of the same content interchangeable."""
        return f"{self.create_options.format}|{self.create_options.language}"

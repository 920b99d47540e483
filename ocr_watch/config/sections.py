"""The configuration file, declared once: one frozen dataclass per section, each field with
its default and its check (see schema.py). The reader, the known-key lists and `describe`
are derived from these; a key added here is read, checked and shown. Rules that tie several
keys together are in rules.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from ocr_watch.choices import OnSuccess, WatchMode

from . import checks as c
from .job import JOB_KEYS, FoldersSection, Job, OcrSection, read_jobs
from .schema import REQUIRED, Secret, setting

__all__ = [
    "AccountSection",
    "ApiSection",
    "CallbackSection",
    "Config",
    "FoldersSection",
    "MetricsSection",
    "OcrSection",
    "PollSection",
    "PoolSection",
    "RetrySection",
    "WatchSection",
]

DEFAULT_BASE_URL = "https://techhk.aoscdn.com"
DEFAULT_CALLBACK_LISTEN = "127.0.0.1:8765"
FORMATS = c.FORMATS  # the output formats the service makes (checked in checks.py)
WATCH_MODES = tuple(WatchMode)
LOG_LEVELS = ("debug", "info", "warning", "error")

_POSITIVE = c.number(0, inclusive=False)
_NOT_NEGATIVE = c.number(0, inclusive=True)


@dataclass(frozen=True)
class ApiSection:
    """How to reach the OCR service."""

    base_url: str = field(metadata=setting(DEFAULT_BASE_URL, c.url(
        allow_query=False, userinfo_hint="the key goes in api.key", secret="the API key",
        strip_slash=True)))
    # api.key, api.key_file or PICWISH_API_KEY: exactly one.
    key: Secret = field(metadata=setting(REQUIRED, read=c.read_key, extra_keys=("key_file",)))
    requests_per_second: float = field(metadata=setting(2, _POSITIVE))
    # Two requests' headers leave at least (1 + this) / requests_per_second apart: api/ratelimit.py.
    rate_margin: float = field(metadata=setting(0.02, _NOT_NEGATIVE))
    # A call's whole life (httpx's timeouts are per read): see api/client.py.
    answer_timeout_seconds: float = field(metadata=setting(60, _POSITIVE))
    download_min_bytes_per_second: float = field(metadata=setting(16384, _POSITIVE))


@dataclass(frozen=True)
class PoolSection:
    """How much work runs at once and waits in memory."""

    max_in_flight: int = field(metadata=setting(32, c.integer(1)))
    # Uploads sent side by side, sharing the uplink; at most 6 of the client's 8 connections
    # to the API host, so queries always find one (api/client.py: API_CONNECTIONS).
    max_uploads: int = field(metadata=setting(4, c.integer(1, 6)))
    queue_size: int = field(metadata=setting(10000, c.integer(1)))


@dataclass(frozen=True)
class PollSection:
    """How often, and how long, to ask about one task."""

    interval_seconds: float = field(metadata=setting(1, _POSITIVE))
    timeout_seconds: float = field(metadata=setting(120, _POSITIVE))


def _url_shown(url: str | None) -> str | None:
    # Without its query string: the query may carry a token of the user's.
    return None if url is None else urlsplit(url)._replace(query="").geturl()


def _url_note(url: str | None) -> str | None:
    return "callbacks off: every task is polled" if url is None else None


@dataclass(frozen=True)
class CallbackSection:
    """Where the service reports task changes, when it can reach this machine (off: url is None)."""

    # The public URL the service is told to POST to; None = callbacks off (poll only).
    url: str | None = field(metadata=setting(None, c.url(
        allow_query=True, userinfo_hint="the daemon adds its own secret to the URL",
        secret="the callback's secret"), show=_url_shown, note=_url_note))
    listen: c.Listen = field(metadata=setting(DEFAULT_CALLBACK_LISTEN, c.listen, show=str))
    # Query a task anyway if no callback came by then (< poll.timeout_seconds: rules.py).
    fallback_seconds: float = field(metadata=setting(60, _POSITIVE))

    @property
    def listen_host(self) -> str:
        """Where the daemon's receiver binds."""
        return self.listen.host

    @property
    def listen_port(self) -> int:
        return self.listen.port


@dataclass(frozen=True)
class WatchSection:
    """How the inbox is watched."""

    mode: WatchMode = field(metadata=setting(WatchMode.AUTO, c.choice(WATCH_MODES, WatchMode)))
    poll_interval_seconds: float = field(metadata=setting(1.0, _POSITIVE))
    rescan_seconds: float = field(metadata=setting(60, _NOT_NEGATIVE))
    settle_seconds: float = field(metadata=setting(2.0, _NOT_NEGATIVE))


@dataclass(frozen=True)
class RetrySection:
    """How server errors are retried."""

    max_attempts: int = field(metadata=setting(8, c.integer(1)))
    backoff_initial_seconds: float = field(metadata=setting(1, _POSITIVE))
    backoff_max_seconds: float = field(metadata=setting(300, _POSITIVE))  # >= initial: rules.py
    # Uploads sent whole whose answer was lost (a task may exist, and be billed): how many
    # times such a file is sent again before it goes to quarantine instead.
    ambiguous_creates: int = field(metadata=setting(1, c.integer(0)))


def _metrics_note(listen: c.Listen | None) -> str | None:
    return "metrics off" if listen is None else None


@dataclass(frozen=True)
class MetricsSection:
    """Prometheus metrics (off: listen is None)."""

    # host:port serving /metrics; a port that cannot be had stops start-up, naming this key.
    listen: c.Listen | None = field(metadata=setting(None, c.listen, show=lambda v: v if v is None else str(v),
                                                     note=_metrics_note))


@dataclass(frozen=True)
class AccountSection:
    """What to say about the account."""

    # A warning is logged once when the credits left fall below this.
    low_credits_warning: int = field(metadata=setting(100, c.integer(0)))


@dataclass(frozen=True)
class Config:
    """The whole effective configuration; every default filled in, every path absolute.

    The top-level keys, in the file's order: a section field is a ``key:`` mapping, a field
    with a setting is a scalar key (``jobs`` reads ``jobs:`` or the simple setup's
    ``folders``, ``on_success`` and ``ocr``: job.py), the others (path, state_dir_legacy)
    are not in the file.
    """

    # Where a key the top level does not know belongs (schema.Reader.unknown_keys).
    KEY_HINTS: ClassVar[dict[str, str]] = {
        key: f"{key} belong to a job: write the folders as jobs: {{<name>: {{folders: ..., {key}: ...}}}}"
        for key in ("rules", "hooks")}

    path: Path
    # Every job, in the file's order; the simple setup gives exactly one, named 'default'.
    jobs: tuple[Job, ...] = field(metadata=setting(REQUIRED, read=read_jobs, extra_keys=JOB_KEYS))
    # One journal for every job. Default: the simple setup <inbox>/../.ocr-watch/<inbox name>
    # (or the old shared one); with jobs: <config folder>/.ocr-watch/<config name>.jobs (placement.py).
    state_dir: Path = field(metadata=setting(None, c.folder))
    api: ApiSection
    pool: PoolSection
    poll: PollSection
    callback: CallbackSection
    watch: WatchSection
    retry: RetrySection
    metrics: MetricsSection
    account: AccountSection
    log_level: str = field(metadata=setting("info", c.choice(LOG_LEVELS)))
    # True: state_dir is the old shared default <inbox>/../.ocr-watch, kept for its journal.
    state_dir_legacy: bool = False

    @property
    def simple(self) -> bool:
        """The simple setup (top-level folders, no ``jobs:``): its one job's keys are unprefixed."""
        return len(self.jobs) == 1 and self.jobs[0].prefix == ""

    # The one job's, for code (and tests) about the simple setup. The daemon serves
    # `jobs`; with several there is no one answer, and asking is a bug.
    @property
    def folders(self) -> FoldersSection:
        if len(self.jobs) > 1:
            raise ValueError(f"config.folders: {len(self.jobs)} jobs; use config.jobs")
        return self.jobs[0].folders

    @property
    def ocr(self) -> OcrSection:
        return self.jobs[0].ocr

    @property
    def on_success(self) -> OnSuccess:
        return self.jobs[0].on_success

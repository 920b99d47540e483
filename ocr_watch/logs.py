"""The one place logging is configured (structlog).

JSON lines when stderr is not a terminal (systemd's journal, files, pipes), readable
console lines when it is. Every event passes through `Redactor` last before rendering, so a
secret (the API key, an OCR password) is replaced wherever it appears, even inside an
exception text or a URL that some code put into an event by mistake.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["Redactor", "configure"]

MASK = "***"


class Redactor:
    """Replace each secret in every string value of the event (recursively in containers)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Short strings would mask ordinary words; a real key is long.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, MASK)
            return value
        if isinstance(value, MutableMapping):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._clean(v) for v in value)
        return value

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        if not self._secrets:
            return event
        return {k: self._clean(v) for k, v in event.items()}


def configure(level: str = "info", *, secrets: Iterable[str] = (), json: bool | None = None,
              stream: TextIO | None = None) -> None:
    """Configure structlog for this process; `json=None` picks by whether stderr is a TTY."""
    stream = stream or sys.stderr
    if json is None:
        json = not stream.isatty()
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info if json else structlog.dev.set_exc_info,
        Redactor(secrets),
    ]
    processors.append(
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    # httpx logs each request at INFO with its full URL, and a result URL carries its
    # signature; our own events say what matters, so keep the library quiet.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )

"""The one place logging is configured (structlog).

JSON lines when stderr is not a terminal (systemd's journal, files, pipes), readable
console lines when it is. Every event passes through `Redactor` last before rendering, so a
secret (the API key, an OCR password) is replaced wherever it appears, even inside an
exception text or a URL that some code put into an event by mistake. A file name that is not
UTF-8 is shown with its odd bytes as `\\xNN` (`names.readable`), in every field.

Libraries log through the standard `logging` module (watchdog, asyncio); their records, the
`warnings` module's, a thread's uncaught exception and an exception Python could not raise
(`sys.unraisablehook`) take the same road, so that every line on stderr is rendered alike
(JSON for the journal) and redacted, with a `logger` field naming where a library record
came from. A library record whose message cannot be built is still such a line.

Every line is written through one `StatusLine`, so that on a terminal `once`'s progress bar
stays below the log lines.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from ocr_watch.names import readable
from ocr_watch.statusline import StatusLine

__all__ = ["Redactor", "StdlibHandler", "configure"]

MASK = "***"


class Redactor:
    """Replace each secret in every string value of the event (recursively in containers), and
    show a non-UTF-8 file name's odd bytes as `\\xNN`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Short strings would mask ordinary words; a real key is long.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            value = readable(value)
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
        return {k: self._clean(v) for k, v in event.items()}


class StdlibHandler(logging.Handler):
    """The root handler: renders a stdlib record with the structlog processors, one line each.

    It writes through the same `StatusLine` as our own events, whose lock orders every line,
    so a library line and ours never interleave mid-line, nor land on a progress bar.
    """

    def __init__(self, out: StatusLine, formatter: logging.Formatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self._out = out

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._out.msg(self._render(record))
        except Exception:
            self.handleError(record)

    def _render(self, record: logging.LogRecord) -> str:
        """The record's line. One whose message cannot be built (a library's format string and
        arguments that do not fit) is still a line, its parts shown as they are and redacted:
        `logging` itself would print a bare traceback with the arguments (a key, say)."""
        try:
            return self.format(record)
        except Exception as exc:
            error = exc
        try:
            text = f"{record.msg} % {record.args!r} (not formattable: {error!r})"
        except Exception:
            text = f"a log record that cannot be shown ({type(error).__name__})"
        return self.format(logging.makeLogRecord({**record.__dict__, "msg": text, "args": None}))

    def handleError(self, record: logging.LogRecord) -> None:
        """A line that cannot be written has nowhere to go: never `logging`'s bare traceback on
        stderr, which names the record's arguments unredacted. One fixed line, if it can be."""
        try:
            self._out.msg(json.dumps({"event": "log_record_lost", "logger": record.name, "level": "error"}))
        except Exception:
            pass


def configure(level: str = "info", *, secrets: Iterable[str] = (), json: bool | None = None,
              stream: TextIO | None = None) -> StatusLine:
    """Configure structlog for this process; `json=None` picks by whether stderr is a TTY.

    Returns the `StatusLine` every line is written through: a progress bar drawn with it
    stays below the log lines.
    """
    out = StatusLine(stream or sys.stderr)
    if json is None:
        json = not out.isatty()
    redactor = Redactor(secrets)
    renderer: Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    exc_info: Processor = structlog.processors.format_exc_info if json else structlog.dev.set_exc_info
    stamps: list[Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    processors: list[Processor] = [structlog.contextvars.merge_contextvars, *stamps, exc_info, redactor, renderer]
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    # httpx logs each request at INFO with its full URL, and a result URL carries its
    # signature; our own events say what matters, so keep the library quiet.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=lambda *_: out,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*stamps, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, exc_info, redactor, renderer],
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, StdlibHandler)]:
        root.removeHandler(old)  # configured again (tests): one root handler of ours
    root.addHandler(StdlibHandler(out, formatter))
    root.setLevel(numeric_level)
    logging.captureWarnings(True)  # `warnings.warn` becomes a record of the `py.warnings` logger
    threading.excepthook = _log_thread_crash
    sys.unraisablehook = _log_unraisable
    return out


def _log_thread_crash(args: threading.ExceptHookArgs) -> None:
    """A thread's uncaught exception (a watchdog thread's, say) as an event, not a bare traceback."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else None
    structlog.get_logger("ocr_watch").error(
        "thread_crashed", thread=name,
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback))


def _log_unraisable(args: sys.UnraisableHookArgs) -> None:
    """An exception Python cannot raise (in a `__del__`, a finalizer, a callback at shutdown):
    an event, not the bare `Exception ignored in` text, which is neither JSON nor redacted."""
    try:
        shown = None if args.object is None else repr(args.object)
    except Exception:
        shown = f"<{type(args.object).__name__} object>"
    exc_info: Any = False
    if args.exc_value is not None:
        exc_info = (args.exc_type, args.exc_value, args.exc_traceback)
    structlog.get_logger("ocr_watch").error(
        "exception_ignored", message=args.err_msg or "Exception ignored in", object=shown,
        error=args.exc_type.__name__, exc_info=exc_info)

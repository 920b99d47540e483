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

Every event names its `logger` (structlog's logger name, `ocr_watch.pool` say, as a library
record names its own). When `JOURNAL_STREAM` says stderr is the journal (its dev:ino is
stderr's), each line starts with the syslog priority journald reads from a service's stream
(`<3>` error, `<4>` warning, `<6>` info, `<7>` debug), so `journalctl -p warning` finds ours;
never otherwise, where it would only be noise before the JSON. A reload (SIGHUP) changes the
level (`set_level`) and may bring a new secret to mask (`add_secrets`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from ocr_watch.names import readable
from ocr_watch.statusline import StatusLine

__all__ = ["PRIORITIES", "JournalPriority", "Redactor", "StdlibHandler", "add_secrets", "configure",
           "journal_prefix", "set_level", "stderr_is_journal"]

MASK = "***"
# syslog priorities by level: what journald reads from a `<N>` at a line's start.
PRIORITIES = {"critical": 2, "error": 3, "exception": 3, "warning": 4, "warn": 4, "info": 6, "debug": 7}
_INFO = 6
DEFAULT_LOGGER = "ocr_watch"

# The one piece of global state besides structlog's own: the redactor in use, which a reload
# gives new secrets to.
_redactor: Redactor | None = None


class Redactor:
    """Replace each secret in every string value of the event (recursively in containers), and
    show a non-UTF-8 file name's odd bytes as `\\xNN`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Mask these too (a new OCR password after a reload); the old ones stay masked."""
        # Short strings would mask ordinary words; a real key is long. One assignment, so a
        # thread rendering meanwhile sees the old list or the new one.
        self._secrets = sorted({*self._secrets, *(s for s in secrets if s and len(s) >= 4)}, key=len, reverse=True)

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


def stderr_is_journal(env: Mapping[str, str] | None = None, fd: int = 2) -> bool:
    """Whether `fd` is the stream systemd connected to the journal (`JOURNAL_STREAM=dev:ino`)."""
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    try:
        st = os.fstat(fd)
        return bool(sep) and (int(dev), int(ino)) == (st.st_dev, st.st_ino)
    except (OSError, ValueError):
        return False


def journal_prefix(level: str) -> str:
    """The `<N>` for a line of this level."""
    return f"<{PRIORITIES.get(level.lower(), _INFO)}>"


class JournalPriority:
    """Renders with `renderer`, then puts the line's syslog priority before it for journald."""

    def __init__(self, renderer: Processor) -> None:
        self._renderer = renderer

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> str:
        level = str(event.get("level") or method)
        return journal_prefix(level) + str(self._renderer(logger, method, event))


class _Named:
    """What structlog's logger factory returns: the shared `StatusLine`, with the logger's name."""

    __slots__ = ("_out", "name")

    def __init__(self, out: StatusLine, name: str) -> None:
        self._out = out
        self.name = name

    def msg(self, message: str) -> None:
        self._out.msg(message)

    log = debug = info = warn = warning = err = error = critical = exception = fatal = failure = msg


def _add_logger_name(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """`logger`: the name given to `structlog.get_logger` (a library record has its own already)."""
    if "logger" not in event:
        event["logger"] = getattr(logger, "name", None) or DEFAULT_LOGGER
    return event


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
              stream: TextIO | None = None, journal: bool | None = None) -> StatusLine:
    """Configure structlog for this process; `json=None` picks by whether stderr is a TTY;
    `journal=None`: priority prefixes when no `stream` is given and stderr is the journal.

    Returns the `StatusLine` every line is written through: a progress bar drawn with it
    stays below the log lines.
    """
    global _redactor
    out = StatusLine(stream or sys.stderr)
    if json is None:
        json = not out.isatty()
    if journal is None:
        journal = stream is None and stderr_is_journal()
    redactor = _redactor = Redactor(secrets)
    renderer: Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    if journal:
        renderer = JournalPriority(renderer)
    exc_info: Processor = structlog.processors.format_exc_info if json else structlog.dev.set_exc_info
    stamps: list[Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    processors: list[Processor] = [structlog.contextvars.merge_contextvars, *stamps, _add_logger_name, exc_info,
                                   redactor, renderer]
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    # httpx logs each request at INFO with its full URL, and a result URL carries its
    # signature; our own events say what matters, so keep the library quiet.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=lambda *args: _Named(out, str(args[0]) if args else DEFAULT_LOGGER),
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


def set_level(level: str) -> None:
    """Log at `level` from now on (a reload); the rest of the configuration stays."""
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(numeric_level))
    logging.getLogger().setLevel(numeric_level)


def add_secrets(secrets: Iterable[str]) -> None:
    """Mask these in every line from now on too (a reload that brings a new OCR password)."""
    if _redactor is not None:
        _redactor.add(secrets)


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

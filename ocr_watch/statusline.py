"""The one writer of stderr's lines: log lines and, on a terminal, a status line kept below them.

Why: a progress bar is redrawn in place with `\\r`, so a log line written while it is shown
would start right after the bar's text, on the same screen line. Every log line goes through
`StatusLine.msg` (structlog's logger factory and the stdlib root handler both hand it their
rendered line), so it can clear the bar's line first, print the log line, and draw the bar
again below it. One lock orders the writes of every thread (watchdog's, the callback
receiver's, the event loop's), so no two lines ever interleave.
"""

from __future__ import annotations

import os
import threading
from typing import TextIO

__all__ = ["StatusLine"]

CLEAR_LINE = "\r\x1b[K"  # back to the line's start, clear to its end


class StatusLine:
    """Writes whole lines to ``stream``; with `show`, a status line stays below them.

    It has the methods of a structlog logger (``msg``, ``info``, ``error``...), each writing
    one rendered line, so it is the logger structlog's factory returns.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._status = ""

    @property
    def stream(self) -> TextIO:
        return self._stream

    def isatty(self) -> bool:
        try:
            return self._stream.isatty()
        except (AttributeError, ValueError, OSError):
            return False

    def msg(self, message: str) -> None:
        """Write ``message`` as a line of its own, above the status line if one is shown."""
        with self._lock:
            if self._status:
                self._stream.write(f"{CLEAR_LINE}{message}\n{self._status}")
            else:
                self._stream.write(message + "\n")
            self._stream.flush()

    log = debug = info = warn = warning = err = error = critical = exception = fatal = failure = msg

    def show(self, status: str) -> None:
        """Draw ``status`` in place of the status line shown (if any), cut to the terminal's width."""
        width = self._width()
        status = status[:width] if width else status
        with self._lock:
            if status == self._status:
                return
            self._stream.write(CLEAR_LINE + status)
            self._stream.flush()
            self._status = status

    def end(self) -> None:
        """Leave the status line on the screen as it is; later lines print below it."""
        with self._lock:
            if self._status:
                self._stream.write("\n")
                self._stream.flush()
                self._status = ""

    def _width(self) -> int:
        """Columns of the terminal less one (a full line would wrap and `\\r` reach only its
        last part); 0 when unknown."""
        try:
            columns = os.get_terminal_size(self._stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            return 0
        return max(columns - 1, 0)


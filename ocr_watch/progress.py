"""A one-line progress bar for `ocr-watch once` on a terminal (never in logs or pipes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from ocr_watch.daemon import Outcome

__all__ = ["ProgressLine"]


class ProgressLine:
    """Redraws `[#####.....] 12/40 done, 1 quarantined, 3 in flight` in place."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self._stream = stream
        self._width = width
        self._last = ""

    def update(self, outcome: Outcome) -> None:
        total = max(outcome.admitted, 1)
        finished = outcome.done + outcome.quarantined
        filled = int(self._width * finished / total)
        line = (f"[{'#' * filled}{'.' * (self._width - filled)}] {finished}/{outcome.admitted} finished: "
                f"{outcome.done} done, {outcome.quarantined} quarantined, {outcome.in_flight} in flight")
        if line != self._last:
            self._stream.write("\r" + line.ljust(len(self._last)))
            self._stream.flush()
            self._last = line

    def close(self) -> None:
        if self._last:
            self._stream.write("\n")
            self._stream.flush()

"""A one-line progress bar for `ocr-watch once` on a terminal (never in logs or pipes).

It is drawn through the `StatusLine` every log line goes through, so a log line printed while
the bar is shown goes above it, never onto the bar's line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ocr_watch.statusline import StatusLine

__all__ = ["Counts", "ProgressLine"]


class Counts(Protocol):
    """What the bar shows (the daemon's `Outcome` has it); a protocol, so this module, below
    the daemon, does not import it."""

    @property
    def admitted(self) -> int: ...
    @property
    def done(self) -> int: ...
    @property
    def quarantined(self) -> int: ...
    @property
    def in_flight(self) -> int: ...


class ProgressLine:
    """Redraws `[#####.....] 12/40 finished: 11 done, 1 quarantined, 3 in flight` in place."""

    def __init__(self, status: StatusLine, width: int = 30) -> None:
        self._status = status
        self._width = width

    def update(self, outcome: Counts) -> None:
        total = max(outcome.admitted, 1)
        finished = outcome.done + outcome.quarantined
        filled = int(self._width * finished / total)
        self._status.show(
            f"[{'#' * filled}{'.' * (self._width - filled)}] {finished}/{outcome.admitted} finished: "
            f"{outcome.done} done, {outcome.quarantined} quarantined, {outcome.in_flight} in flight")

    def close(self) -> None:
        """The last bar stays on the screen; what is printed next goes below it."""
        self._status.end()

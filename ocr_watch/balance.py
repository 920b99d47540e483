"""The account's credits left: asked of the service at start and every CREDITS_EVERY_S, kept
in the journal for `status`, given to the metrics, and a warning logged once when low.

Why every few minutes and not per file: the balance only matters to a person deciding when to
buy more, and each ask costs a request from the same quota as the files. Why in the journal's
meta table: `status` reads the journal anyway, with or without the daemon.

The answer's shape is not documented (see `api.answers.read_credits`): a shape that cannot be
read, a refusal or a failure leaves the figure unknown, logged once, and never stops anything.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from ocr_watch.api import ApiError
from ocr_watch.journal import Journal
from ocr_watch.journal.reader import META_CREDITS_ASKED_AT, META_CREDITS_LEFT
from ocr_watch.recorder import NULL, Recorder

__all__ = ["CREDITS_EVERY_S", "BalanceWatch"]

log = structlog.get_logger("ocr_watch.balance")

CREDITS_EVERY_S = 300.0


class BalanceWatch:
    """Asks for the balance now and then; see the module docstring."""

    def __init__(self, ask: Callable[[], Awaitable[int | None]], journal: Journal, *, low_warning: int,
                 recorder: Recorder = NULL, every_s: float = CREDITS_EVERY_S,
                 wall: Callable[[], float] = time.time) -> None:
        self._ask = ask
        self._journal = journal
        self._low = low_warning
        self._recorder = recorder
        self._every_s = every_s
        self._wall = wall
        self._warned = False
        self._said_unknown = False

    async def keep(self) -> None:
        """Ask now, then every `every_s`; until cancelled (it never ends on its own)."""
        while True:
            await self.check()
            await asyncio.sleep(self._every_s)

    async def check(self) -> int | None:
        """Ask once; note and report the figure (None: unknown)."""
        asked = self._wall()
        try:
            figure = await self._ask()
            why = "the answer's shape was not understood" if figure is None else None
        except asyncio.CancelledError:
            raise
        except ApiError as exc:
            figure, why = None, exc.message
        except Exception as exc:  # never a reason to stop: the balance is for a person to read
            figure, why = None, repr(exc)
        self._journal.note(META_CREDITS_LEFT, "" if figure is None else str(figure))
        self._journal.note(META_CREDITS_ASKED_AT, repr(asked))
        self._recorder.credits_left(figure)
        if figure is None:
            if not self._said_unknown:
                self._said_unknown = True
                log.info("credits_left_unknown", reason=why)
            return None
        self._said_unknown = False
        log.debug("credits_left", credits_left=figure)
        if figure < self._low and not self._warned:
            self._warned = True
            log.warning("credits_low", credits_left=figure, low_credits_warning=self._low,
                        message=f"{figure} credits left on the account (warning below {self._low}); "
                                "buy more before uploads are refused")
        elif figure >= self._low:
            self._warned = False  # topped up: warn again next time it falls
        return figure

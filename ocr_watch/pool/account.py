"""The account gate: while the service refuses the account, one probe call at a time.

A refused key, or an account out of credits, fails every file the same way, so calls stop
instead of failing one by one. Every `probe_every_s` one call is let through as the probe;
the moment one is answered, every call flows again, with no restart. While refused that is
at most 60 / `probe_every_s` calls a minute, whatever the number of files waiting.

A credit refusal holds creates only: tasks already paid for are still queried and their
results fetched (with no credits left, the service still serves what it sold). A refused
key holds everything.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import structlog

from ocr_watch.api import AccountError

__all__ = ["PROBE_EVERY_S", "AccountGate"]

log = structlog.get_logger("ocr_watch.pool")

PROBE_EVERY_S = 15.0


class AccountGate:
    """Holds API calls while the account is refused; see the module docstring."""

    def __init__(self, *, probe_every_s: float = PROBE_EVERY_S, on_change: Callable[[], None] = lambda: None) -> None:
        self.probe_every_s = probe_every_s
        self.problem: str | None = None
        self._credits_only = False
        self._changed = asyncio.Event()
        self._probe_due = False
        self._probing = False
        self._timer: asyncio.TimerHandle | None = None
        self._on_change = on_change

    def holds(self, *, create: bool) -> bool:
        """Whether a call of this kind would wait now."""
        return self.problem is not None and (create or not self._credits_only)

    @property
    def key_refused(self) -> bool:
        """Refused for the key itself (nothing can be done), not for credits alone."""
        return self.problem is not None and not self._credits_only

    @asynccontextmanager
    async def call(self, *, create: bool) -> AsyncIterator[None]:
        """Wrap one API call: :meth:`admit`, then :meth:`settle` with how it ended."""
        await self.admit(create=create)
        try:
            yield
        except BaseException as exc:
            self.settle(create=create, error=exc)
            raise
        self.settle(create=create, error=None)

    def settle(self, *, create: bool, error: BaseException | None) -> None:
        """What a call let through by :meth:`admit` says about the account."""
        if isinstance(error, AccountError):
            self._refused(error)
        elif error is None:
            self._answered(create)
        else:
            self._inconclusive(create)

    async def admit(self, *, create: bool) -> None:
        """Wait while the account is refused, unless this call is the probe."""
        while self.holds(create=create):
            if self._probe_due and not self._probing and (create or not self._credits_only):
                self._probe_due = False
                self._probing = True
                return
            self._changed.clear()
            await self._changed.wait()

    def _wake(self) -> None:
        self._changed.set()

    def _schedule_probe(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self.probe_every_s, self._probe_now)

    def _probe_now(self) -> None:
        self._timer = None
        self._probe_due = True
        self._wake()

    def _refused(self, exc: AccountError) -> None:
        self._probing = False
        first = self.problem is None
        self.problem = exc.message
        self._credits_only = exc.credits
        self._schedule_probe()
        if first:
            log.error("account_problem", error=exc.message, http_status=exc.status_code,
                      probe_every_s=self.probe_every_s,
                      action=("new uploads paused; tasks already paid for go on" if exc.credits
                              else "all calls paused") + "; files stay in the inbox; fix the key or credits")
            self._on_change()
        self._wake()

    def _answered(self, create: bool) -> None:
        was_probe, self._probing = self._probing, False
        if self.problem is None or (self._credits_only and not create and not was_probe):
            return  # a query answered says nothing about credits
        problem, self.problem = self.problem, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        log.info("account_working_again", was=problem)
        self._on_change()
        self._wake()

    def _inconclusive(self, create: bool) -> None:  # `create` unused: kept symmetric with _answered
        """The probe failed for another reason (the network): probe again at the next turn."""
        if self._probing:
            self._probing = False
            self._probe_due = True
            self._wake()

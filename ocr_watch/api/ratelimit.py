"""A priority token bucket that spaces every call to the API host, and the gate that
keeps their headers apart as the service's gateway sees them arrive.

One bucket is shared by every request to the API host, so however many files are in
flight the key's rate limit is never exceeded. It is precise rather than bursty: with the
default ``burst=1`` grants are ``gap = (1 + margin)/rate`` apart.

Why the margin and the gate: how the service measures its limit is undocumented, and the
strictest common gateway (nginx ``limit_req`` without burst) refuses a request whose
headers arrive less than ``1/rate`` after the previous one's. A grant is not a send: the
caller then builds its request, waits for a connection, maybe connects, and two requests
granted ``1/rate`` apart can leave closer than that. So the client calls
:meth:`TokenBucket.before_send` right before it writes a request's headers (after any
connection wait; nothing yields between that call and the write), which holds the request
until ``gap`` has passed since the last headers written, and :meth:`TokenBucket.sent` once
they are written: the time counted is then never earlier than the write, even if the process
was descheduled in between. ``margin`` covers what is left: the network and the gateway's
own timing (measured in bench/throughput.py ``--limiter gateway``).

A new bucket starts empty, and its gate counts the bucket's creation as a send: the first
request goes ``gap`` after it, so a daemon restarted after ``kill -9`` (its lock shows the
old one gone) cannot follow the old process's last call too closely, however fast it
starts. That costs one ``gap`` at start, nothing more.

Waiters are served by ``(priority, arrival)``: a lower number first, FIFO within one
priority (the pool gives polls of tasks already paid for priority over new uploads).

429 handling (``penalize``):

* with ``Retry-After``: no token is handed out before ``now + retry_after``; the rate is
  left alone, since the service told us exactly what it wants.
* without it: back off exponentially, ``gap * 2**(n-1)`` for the n-th penalty in a
  row (capped at ``max_backoff_s``), and halve the effective rate (floor
  ``1/16`` of the paced rate ``1/gap``). Each ``note_success`` adds back 5 % of it
  (additive increase, multiplicative decrease), so a burst of 429s slows us quickly and
  we creep back up over a few dozen calls.

A single dispatcher task hands out tokens; ``clock`` and ``sleep`` are injectable so unit
tests can run on simulated time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable

__all__ = ["TokenBucket"]

_MIN_RATE_FRACTION = 1 / 16
_RECOVERY_FRACTION = 0.05


class TokenBucket:
    """Async token bucket with priorities and 429 back-off; see the module docstring."""

    def __init__(
        self,
        rate_per_s: float,
        burst: float = 1.0,
        *,
        margin: float = 0.0,
        max_backoff_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        if margin < 0:
            raise ValueError("margin must not be negative")
        self._rate = float(rate_per_s)
        self._margin = float(margin)
        self._gap = (1 + self._margin) / self._rate  # least time between two sends' headers
        self._pace = 1 / self._gap  # the rate grants are handed out at
        self._effective_rate = self._pace
        self._burst = float(burst)
        self._max_backoff_s = max_backoff_s
        self._clock = clock
        self._sleep = sleep
        self._tokens = 0.0  # starts empty: the first grant comes ``gap`` after creation
        self._last = clock()
        self._last_send = self._last  # creation counts as a send: see the module docstring
        self._held = 0  # sends the gate delayed
        self._held_s = 0.0
        self._streak = 0  # penalties in a row without a success in between
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()
        self._dispatcher: asyncio.Task[None] | None = None
        self._granted = 0
        self._penalties = 0
        self._refunds = 0

    def __repr__(self) -> str:
        return (
            f"TokenBucket(rate_per_s={self._rate}, burst={self._burst}, margin={self._margin}, "
            f"effective_rate_per_s={self._effective_rate:.3f}, waiting={self.waiting})"
        )

    @property
    def rate_per_s(self) -> float:
        """The configured rate (the ceiling; never exceeded)."""
        return self._rate

    @property
    def gap_s(self) -> float:
        """The least time between two requests' headers: ``(1 + margin)/rate``."""
        return self._gap

    @property
    def effective_rate_per_s(self) -> float:
        """The rate grants are handed out at: ``1/gap``, lower after 429s without Retry-After."""
        return self._effective_rate

    @property
    def waiting(self) -> int:
        """Callers currently queued for a token."""
        return sum(1 for _, _, fut in self._waiters if not fut.done())

    @property
    def stats(self) -> dict[str, float | int]:
        """Counters for status pages and tests."""
        return {
            "granted": self._granted,
            "penalties": self._penalties,
            "refunded": self._refunds,
            "waiting": self.waiting,
            "rate_per_s": self._rate,
            "effective_rate_per_s": self._effective_rate,
            "margin": self._margin,
            "sends_held": self._held,
            "sends_held_s": self._held_s,
        }

    async def acquire(self, priority: int = 0) -> None:
        """Wait for a token; lower ``priority`` numbers are served first."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._waiters, (priority, next(self._arrivals), fut))
        self._wake()
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                # Granted, but the caller went away before using it: give it back.
                self._refunds += 1
                self._granted -= 1
                self._tokens = min(self._burst, self._tokens + 1)
                self._wake()
            raise

    async def before_send(self) -> None:
        """Hold a granted request until ``gap`` has passed since the last headers written,
        then count it as written now. Call it right before writing the headers."""
        first = self._clock()
        while True:
            now = self._clock()
            ready = self._last_send + self._gap
            if now >= ready:
                self._last_send = now
                if now > first and ready > first:  # it did wait
                    self._held += 1
                    self._held_s += now - first
                return
            await self._sleep(ready - now)

    def sent(self) -> None:
        """A request's headers were written (or failed to be): count the gap from now."""
        self._last_send = max(self._last_send, self._clock())

    def penalize(self, retry_after: float | None) -> None:
        """A 429 was received: hold all tokens back (see the module docstring)."""
        self._penalties += 1
        now = self._clock()
        self._refill(now)
        if retry_after is not None and retry_after >= 0:
            resume = now + retry_after
        else:
            self._streak += 1
            backoff = min(self._max_backoff_s, self._gap * 2 ** (self._streak - 1))
            resume = now + backoff
            self._effective_rate = max(self._pace * _MIN_RATE_FRACTION, self._effective_rate / 2)
        # Exactly one token becomes available at ``resume``; refilling restarts from there.
        if resume > self._last:
            self._last = resume
            self._tokens = 1.0
        self._wake()

    def set_rate(self, rate_per_s: float) -> None:
        """A new configured rate (a reload): the next token comes at it, and a rate lowered by
        429s keeps its fraction of the new ceiling."""
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self._refill(self._clock())  # tokens earned so far at the old rate
        pace = 1 / ((1 + self._margin) / rate_per_s)
        self._effective_rate = pace * (self._effective_rate / self._pace)
        self._rate = float(rate_per_s)
        self._gap = (1 + self._margin) / self._rate  # the gate's spacing follows at once
        self._pace = pace
        d = self._dispatcher
        if d is not None and not d.done():
            d.cancel()  # it may be asleep for a delay worked out at the old rate
            self._dispatcher = None
        self._wake()

    def note_success(self) -> None:
        """A call went through: recover the rate gradually after penalties."""
        self._streak = 0
        if self._effective_rate < self._pace:
            now = self._clock()
            self._refill(now)
            self._effective_rate = min(
                self._pace, self._effective_rate + self._pace * _RECOVERY_FRACTION
            )

    # -- internals -------------------------------------------------------------------

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._effective_rate)
            self._last = now

    def _delay_until_token(self, now: float) -> float:
        """Seconds until one whole token is available (0 when it already is)."""
        self._refill(now)
        if now < self._last:  # held back by a penalty
            return self._last - now + max(0.0, 1 - self._tokens) / self._effective_rate
        if self._tokens >= 1 - 1e-9:  # float residue must not cause a zero-length sleep
            return 0.0
        return (1 - self._tokens) / self._effective_rate

    def _wake(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # penalize() from sync code: nobody can be waiting here
            return
        d = self._dispatcher
        if d is None or d.done() or d.get_loop() is not loop:
            self._dispatcher = loop.create_task(self._dispatch())

    async def _dispatch(self) -> None:
        """Hand out tokens to the head of the queue, one at a time, until it is empty."""
        while True:
            while self._waiters and self._waiters[0][2].done():
                heapq.heappop(self._waiters)  # cancelled while queued
            if not self._waiters:
                return
            delay = self._delay_until_token(self._clock())
            if delay > 0:
                # Re-check after sleeping: a penalty or a more urgent waiter may have arrived.
                await self._sleep(delay)
                continue
            _, _, fut = heapq.heappop(self._waiters)
            self._tokens = max(0.0, self._tokens - 1)
            self._granted += 1
            fut.set_result(None)

"""When to ask about a task next.

Every query spends a request that another file could have used (the default quota is two a
second), and every second a finished result waits is latency. A fixed one-second poll, as
the vendor samples do, spends about one query per second of processing. The planner spends
about one or two per task instead:

- The first query goes out when a task like this one has usually finished. After a few
  tasks have been learnt, that delay is tracked from the first queries' outcomes (found done:
  a little sooner next time; still running: a little later), settling where a target share
  of first queries find the task done. The share depends on whether the quota is the
  bottleneck: when other files are waiting to upload, every second query is half a file not
  uploaded, so aim late (`first_quantile`, 88 %); when there is spare rate, a query costs
  nothing and an early finisher should not wait, so aim at the median (`spare_quantile`).
  At quota the gate is never idle, so a query goes at the next slot of a grid that starts at
  its task's create (0.51 s apart at 2 req/s): a first query aimed a little past a slot
  waits almost a whole spacing. Aiming at 95 % put most first queries one slot late (3 s
  +- 30 % tasks: 4.09 s median age, 1.09 s from done to download, 2.06 calls a file); 88 %
  puts most a slot earlier (3.58 s, 0.97 s, 2.13 calls), measured with
  `bench/throughput.py --limiter gateway`. Lower costs calls faster than it buys time: a
  task still running waits `min_interval_s` for its second query. A first
  query that finds a task done only bounds its duration from above, so learning durations
  from them would ratchet the delay upwards.
- Ages are taken when a query was *sent*: time spent waiting for a rate-limit token is not
  processing time.
- A query that finds the task unfinished reads `progress` and extrapolates when it will
  reach 100. Two readings give a rate, which is trusted. One reading is extrapolated as if
  progress had started at creation, but it says little (progress often starts late, so 1 %
  early on would predict a hundred times the age): the wait it sets is scaled by a factor
  tracked from how often such queries find the task done (95 % is the aim, so it learns how
  late progress starts without being told), and capped at the task's current age, so at
  worst the interval doubles. With no progress yet, it waits for the
  durations seen in tasks that outlived this age.
- Never sooner than `min_interval_s` after the previous query of the same task, never later
  than `max_interval_s`.

The observed duration of a finished task is estimated inside the interval between its last
unfinished reading and the reading that found it done, so polling late does not teach the
planner that tasks are slow.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass
from typing import Any, TypeGuard

__all__ = ["PollPlanner", "Reading", "positive_number"]

# How far the one-reading scale may go: from "progress starts at once" to "late, by a lot".
_SCALE_MIN, _SCALE_MAX = 0.05, 2.0


@dataclass(frozen=True, slots=True)
class Reading:
    """One answer about an unfinished task: its age (seconds since create) and progress."""

    age_s: float
    progress: int


class PollPlanner:
    """Shared by all tasks of one pool; learns from every task that finishes."""

    def __init__(
        self,
        *,
        min_interval_s: float = 1.0,
        max_interval_s: float = 30.0,
        first_quantile: float = 0.88,
        spare_quantile: float = 0.55,
        margin_s: float = 0.15,
        history: int = 64,
        warmup: int = 3,
        first_step: float = 0.05,
    ) -> None:
        self.min_interval_s = min_interval_s
        self.max_interval_s = max(max_interval_s, min_interval_s)
        self.first_quantile = first_quantile
        self.spare_quantile = spare_quantile
        self.margin_s = margin_s
        self.warmup = warmup
        self._durations: deque[float] = deque(maxlen=history)
        self._sorted: list[float] = []
        # The first-poll delay for a busy and for a spare quota, each tracked so that its
        # share of first queries find the task done (Robbins-Monro); None until warmed up.
        self.first_step = first_step
        self._first: dict[bool, float | None] = {True: None, False: None}
        # The wait planned from a single reading, scaled so that `second_share` of such queries
        # find the task done: it learns how late progress starts, without being told.
        self.second_share = 0.95
        self._second_scale = 1.0

    # -- learning ------------------------------------------------------------------------

    def record_done(self, done_at_age_s: float, last: Reading | None) -> float:
        """Learn from a task found done at `done_at_age_s`; returns the duration estimated."""
        if last is None:
            estimate = done_at_age_s
        else:
            predicted = self._extrapolate(last, None)
            low, high = last.age_s, done_at_age_s
            estimate = (low + high) / 2 if predicted is None else min(max(predicted, low), high)
        if len(self._durations) == self._durations.maxlen:
            self._sorted.remove(self._durations[0])
        self._durations.append(estimate)
        bisect.insort(self._sorted, estimate)
        return estimate

    def first_outcome(self, done: bool, *, busy: bool = True) -> None:
        """The first query of a task found it done, or not: nudge that regime's first delay.

        A task found done at its first query only says its duration is at most that age;
        fed to the duration quantile as if it were the duration, that upper bound raised
        the next first delay, hence the next upper bound: the delay ratcheted up without
        limit. Tracking the delay from the done/pending outcomes has no such bias: it settles
        where the regime's share of first queries find the task done.
        """
        current = self._first[busy]
        if current is None:
            if len(self._durations) < self.warmup:
                return
            current = self.first_delay(busy=busy)
        share = self.first_quantile if busy else self.spare_quantile
        self._first[busy] = self._clamp(current * math.exp(self.first_step * (share - float(done))))

    @property
    def learnt(self) -> int:
        return len(self._durations)

    # -- remembering across restarts -------------------------------------------------------

    def memory(self) -> dict[str, Any]:
        """What has been learnt, as plain JSON values (see `recall`)."""
        return {
            "durations": list(self._durations),
            "first_busy": self._first[True],
            "first_spare": self._first[False],
            "second_scale": self._second_scale,
        }

    def recall(self, memory: dict[str, Any]) -> None:
        """Start from what an earlier run learnt (why: see memory.py).

        Raises ValueError, changing nothing, if any value is not one this planner could have
        written.
        """
        durations = memory.get("durations")
        if not isinstance(durations, list) or not all(positive_number(d) for d in durations):
            raise ValueError("durations must be a list of positive numbers")
        first = {True: memory.get("first_busy"), False: memory.get("first_spare")}
        if not all(value is None or positive_number(value) for value in first.values()):
            raise ValueError("first_busy and first_spare must be positive numbers or null")
        scale = memory.get("second_scale")
        if not positive_number(scale) or not _SCALE_MIN <= scale <= _SCALE_MAX:
            raise ValueError(f"second_scale must be a number from {_SCALE_MIN:g} to {_SCALE_MAX:g}")
        kept = [float(d) for d in durations[-(self._durations.maxlen or 0):]]
        self._durations = deque(kept, maxlen=self._durations.maxlen)
        self._sorted = sorted(kept)
        # This run's interval bounds may differ from the last one's.
        self._first = {busy: None if value is None else self._clamp(float(value)) for busy, value in first.items()}
        self._second_scale = float(scale)

    def _quantile(self, q: float, above: float = 0.0) -> float | None:
        pool = self._sorted[bisect.bisect_right(self._sorted, above) :]
        if not pool:
            return None
        index = min(len(pool) - 1, max(0, round(q * (len(pool) - 1))))
        return pool[index]

    # -- planning ------------------------------------------------------------------------

    def first_delay(self, *, busy: bool = True) -> float:
        """Seconds from create to the first query, for a busy or a spare quota."""
        tracked = self._first[busy]
        if tracked is None:
            tracked = self._first[not busy]  # start from what the other regime learnt
        if tracked is not None:
            return tracked
        if len(self._durations) < self.warmup:
            return self.min_interval_s
        guess = self._quantile(self.first_quantile if busy else self.spare_quantile)
        assert guess is not None
        return self._clamp(guess + self.margin_s)

    def next_delay(self, now: Reading, previous: Reading | None) -> float:
        """Seconds from this (unfinished) reading to the next query."""
        done_at = self._from_rate(now, previous)
        if done_at is not None:
            return self._clamp(done_at - now.age_s + self.margin_s)
        done_at = self._extrapolate(now, previous)
        if done_at is None and len(self._durations) >= self.warmup:
            done_at = self._quantile(0.5, above=now.age_s)
        if done_at is None:
            return self.min_interval_s
        wait = (done_at - now.age_s) * (self._second_scale if self.one_reading(now, previous) else 1.0)
        cap = max(self.min_interval_s, now.age_s)
        return self._clamp(min(wait + self.margin_s, cap))

    def one_reading(self, now: Reading, previous: Reading | None) -> bool:
        """Whether the next query is planned from this reading's progress alone."""
        return self._from_rate(now, previous) is None and now.progress > 0

    def one_reading_outcome(self, done: bool) -> None:
        """A query planned from one reading found the task done, or not: rescale those waits."""
        self._second_scale = min(_SCALE_MAX, max(_SCALE_MIN, self._second_scale * math.exp(
            self.first_step * (self.second_share - float(done)))))

    @staticmethod
    def _from_rate(now: Reading, previous: Reading | None) -> float | None:
        # A rate needs two readings of progress under way. From a reading of 0 it is not a
        # rate: progress started somewhere in between, so 0 -> 1 % in a second predicted
        # 100 s for a 10 s task, the query went out 20 s late, and the 33 s "duration" it
        # taught set the next first queries 30 s out (measured in planner_sim.py).
        if (previous is not None and previous.progress > 0 and now.progress > previous.progress
                and now.age_s > previous.age_s):
            rate = (now.progress - previous.progress) / (now.age_s - previous.age_s)
            return now.age_s + (100 - now.progress) / rate
        return None

    def _extrapolate(self, now: Reading, previous: Reading | None) -> float | None:
        by_rate = self._from_rate(now, previous)
        if by_rate is not None:
            return by_rate
        if now.progress > 0:
            return now.age_s * 100 / now.progress
        return None

    def _clamp(self, delay: float) -> float:
        return min(max(delay, self.min_interval_s), self.max_interval_s)


def positive_number(value: object) -> TypeGuard[float]:
    """A finite number above zero, and not a bool: what a JSON value must be to be a time."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0

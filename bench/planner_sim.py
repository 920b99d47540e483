"""The poll planner alone, on simulated time: does its first-poll delay stay near the task durations?

    python bench/planner_sim.py                          # 3 s +- 30 %, answers arrive at once
    python bench/planner_sim.py --query-wait 0.5         # each answer 0.5 s after the planned time
                                                         # (a token-bucket queue at the rate limit)

No daemon, no emulator: tasks one after another, durations uniform in d*(1 +- jitter) like the
emulator's, progress as the emulator reports it (0 until 25 % of the duration, then 0..99),
and `ocr_watch.pool.planner.PollPlanner` with the pool's defaults, fed exactly as the poller
feeds it (age measured when the answer is back). Prints the first-poll delay as it learns,
queries per task and the lag from done to the query that saw it.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import command_line, percentile  # noqa: E402

from ocr_watch.pool.planner import PollPlanner, Reading  # noqa: E402


class ProposedPlanner(PollPlanner):
    """The change proposed for `ocr_watch/pool/planner.py` (see the report of issue 4).

    The first-poll delay is tracked directly, Robbins-Monro style, so that a fraction
    `first_quantile` of tasks is found done by their first query: every first answer nudges
    it (done: shorter, pending: longer). A task found done at its first query only tells
    that its duration is *at most* that age; learning that upper bound as the duration, as
    `record_done(age, None)` does, raises the quantile, hence the next first delay, hence the
    next upper bound: a ratchet. The ages fed in are taken when the query is sent, not when
    its answer is back (a token-bucket wait is not processing time).
    """

    def __init__(self, *args: object, step: float = 0.05, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.step = step
        self._first: float | None = None

    def first_delay(self) -> float:
        if self._first is None:
            return super().first_delay()
        return self._clamp(self._first)

    def first_outcome(self, done: bool) -> None:
        """The first query of a task found it done (or not)."""
        if self._first is None:
            if self.learnt < self.warmup:
                return
            self._first = super().first_delay()
        self._first *= math.exp(self.step * (self.first_quantile - (1.0 if done else 0.0)))


def progress(age: float, duration: float) -> tuple[bool, int]:
    if age >= duration:
        return True, 100
    start = 0.25 * duration
    if age < start:
        return False, 0
    return False, max(0, min(99, int(99 * (age - start) / (duration - start))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--processing-seconds", type=float, default=3.0)
    parser.add_argument("--jitter", type=float, default=0.3)
    parser.add_argument("--query-wait", type=float, default=0.0, help="seconds from planned query to answer")
    parser.add_argument("--min-interval", type=float, default=1.0, help="poll.interval_seconds")
    parser.add_argument("--proposed", action="store_true", help="the proposed planner (ProposedPlanner)")
    parser.add_argument("--quantile", type=float, default=0.6, help="first_quantile (default: the pool's 0.6)")
    args = parser.parse_args()
    rng = random.Random(1)
    planner_cls = ProposedPlanner if args.proposed else PollPlanner
    planner = planner_cls(min_interval_s=args.min_interval, max_interval_s=30.0, first_quantile=args.quantile)
    print(f"command: {command_line()}")
    print(f"{'tasks':>6} {'first delay s':>14} {'queries/task':>13} {'lag p50 s':>10} {'lag p95 s':>10}")
    queries, lags = [], []
    for i in range(1, args.tasks + 1):
        duration = args.processing_seconds * (1 + args.jitter * rng.uniform(-1, 1))
        planned = planner.first_delay()
        last: Reading | None = None
        n = 0
        while True:
            n += 1
            # Today the poller reads the age once the answer is back; the proposal, when sent.
            age = planned if args.proposed else planned + args.query_wait
            done, prog = progress(planned, duration)
            if n == 1 and isinstance(planner, ProposedPlanner):
                planner.first_outcome(done)
            if done:
                planner.record_done(age, last)
                lags.append(planned - duration)
                break
            reading = Reading(age, prog)
            planned = age + planner.next_delay(reading, last)
            last = reading
        queries.append(n)
        if i % (args.tasks // 10 or 1) == 0:
            window = lags[-(args.tasks // 10 or 1):]
            qs = queries[-(args.tasks // 10 or 1):]
            print(f"{i:>6} {planner.first_delay():>14.2f} {sum(qs) / len(qs):>13.2f} "
                  f"{percentile(window, 50):>10.2f} {percentile(window, 95):>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The poll planner alone, on simulated time: does its first-poll delay stay near the task durations?

    python bench/planner_sim.py                          # 3 s +- 30 %, answers arrive at once
    python bench/planner_sim.py --spare                  # as for a quota with room to spare
    python bench/planner_sim.py --query-wait 0.5         # each query waits 0.5 s for a token
    python bench/planner_sim.py --slot 0.51              # at quota: queries go out on the gate's grid
    python bench/planner_sim.py --processing-seconds 10 --first-quantile 0.6 --second-share 0.8
                                                         # the trade: calls per task for latency

No daemon, no emulator: tasks one after another, durations uniform in d*(1 +- jitter) like the
emulator's, progress as the emulator reports it (0 until 25 % of the duration, then 0..99),
and `ocr_watch.pool.planner.PollPlanner` with the pool's defaults, fed exactly as the poller
feeds it (age taken when a query is sent, after any wait for a token). `--spare` plans as for a
quota with room to spare (the first query aims at the median), the default as for a busy one.
`--slot S` models the gate at quota: it is never idle, so requests leave every S seconds on a
grid that starts at the task's own create, and a query due between two slots goes at the next.
Prints the first-poll delay as it learns, queries per task and the lag from done to the query
that saw it, for each tenth of the run and for all of it.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import command_line, percentile

from ocr_watch.emulator.tasks import Task as EmulatedTask
from ocr_watch.pool.planner import PollPlanner, Reading


def progress(age: float, duration: float) -> tuple[bool, int]:
    """(done, progress) as the emulator answers a query `age` seconds after create."""
    state, percent = EmulatedTask("sim", "", "sim.png", 0, "txt", None, 0.0, 0.0, duration).state_at(age)
    return state == 1, percent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--processing-seconds", type=float, default=3.0)
    parser.add_argument("--jitter", type=float, default=0.3)
    parser.add_argument("--query-wait", type=float, default=0.0,
                        help="seconds a planned query waits for a token before it is sent")
    parser.add_argument("--slot", type=float, default=0.0,
                        help="the gate's spacing at quota: a query is sent at the next multiple of it "
                             "after it is due (0: at once)")
    parser.add_argument("--min-interval", type=float, default=1.0, help="poll.interval_seconds")
    parser.add_argument("--spare", action="store_true", help="plan as for a quota with room to spare")
    parser.add_argument("--first-quantile", type=float, default=None,
                        help="share of busy first queries to find the task done [the planner's default]")
    parser.add_argument("--second-share", type=float, default=None,
                        help="share of one-reading queries to find the task done [the planner's default]")
    args = parser.parse_args()
    rng = random.Random(1)
    busy = not args.spare
    planner = PollPlanner(min_interval_s=args.min_interval, max_interval_s=30.0)
    if args.first_quantile is not None:
        planner.first_quantile = args.first_quantile
    if args.second_share is not None:
        planner.second_share = args.second_share
    print(f"command: {command_line()}")
    print(f"{'tasks':>6} {'first delay s':>14} {'queries/task':>13} {'lag p50 s':>10} {'lag p95 s':>10}")
    queries, lags = [], []
    for i in range(1, args.tasks + 1):
        duration = args.processing_seconds * (1 + args.jitter * rng.uniform(-1, 1))
        planned = planner.first_delay(busy=busy)
        last: Reading | None = None
        one_reading = False
        n = 0
        while True:
            n += 1
            age = planned + args.query_wait  # sent once a token is free
            if args.slot > 0:  # ... and the gate's next slot (1e-9: a float just past a slot)
                age = math.ceil(age / args.slot - 1e-9) * args.slot
            done, prog = progress(age, duration)
            if n == 1:
                planner.first_outcome(done, busy=busy)
            elif one_reading:
                planner.one_reading_outcome(done)
            if done:
                planner.record_done(age, last)
                lags.append(age - duration)
                break
            reading = Reading(age, prog)
            planned = age + planner.next_delay(reading, last)
            one_reading = planner.one_reading(reading, last)
            last = reading
        queries.append(n)
        if i % (args.tasks // 10 or 1) == 0:
            window = lags[-(args.tasks // 10 or 1):]
            qs = queries[-(args.tasks // 10 or 1):]
            print(f"{i:>6} {planner.first_delay(busy=busy):>14.2f} {sum(qs) / len(qs):>13.2f} "
                  f"{percentile(window, 50):>10.2f} {percentile(window, 95):>10.2f}")
    print(f"{'all':>6} {'':>14} {sum(queries) / len(queries):>13.2f} "
          f"{percentile(lags, 50):>10.2f} {percentile(lags, 95):>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

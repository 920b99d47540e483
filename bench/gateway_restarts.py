"""Restarts against a strict gateway: kill -9 and restart the daemon again and again during a
run, right after one of its requests arrived, and count the 429s the restarts cost.

    python bench/gateway_restarts.py                          # 150 files, 15 kill -9, 2 req/s
    python bench/gateway_restarts.py --files 6 --kills 2 --every 1.5 --processing-seconds 0.3 --rps 5  # smoke

One emulator with the gateway limiter (one request per 1/rate per key, measured when its
headers arrive, no burst: nginx `limit_req` without burst), one workspace, every file in the
inbox before the first start. The daemon runs; --every seconds after its first request, the
bench waits for its next request to arrive at the emulator and kills it at once (SIGKILL:
the worst moment for the next process's first call), then starts it again at once. After
--kills kills it runs to the end. A restart's first request is measured against the killed
process's last one: a gateway refuses it if it comes closer than 1/rate.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Daemon, EmulatorProc, Report, Workspace, api_gaps_ms, png_bytes, wait_until


def api_calls(emu: EmulatorProc) -> int:
    """API requests that reached the emulator so far (its counters: cheaper than its log)."""
    stats = emu.stats()
    return int(stats["create_requests"]) + int(stats["queries"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=150)
    parser.add_argument("--kills", type=int, default=15)
    parser.add_argument("--every", type=float, default=8.0, help="seconds of running before each kill")
    parser.add_argument("--processing-seconds", type=float, default=3.0)
    parser.add_argument("--jitter", type=float, default=0.3)
    parser.add_argument("--rps", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=1200.0)
    args = parser.parse_args()
    spacing = 1 / args.rps
    report = Report(f"Restarts against a strict gateway: {args.files} files, {args.kills} x kill -9 and restart, "
                    f"{args.processing_seconds:g} s +- {args.jitter:.0%}, {args.rps:g} req/s")
    ws = Workspace(prefix="ocr-bench-gw-restarts-")
    restarts: list[float] = []  # wall time each new process was started
    kills = 0
    daemon: Daemon | None = None
    try:
        with EmulatorProc(rps=args.rps, processing_seconds=args.processing_seconds, jitter=args.jitter,
                          extra=("--limiter", "gateway")) as emu:
            ws.write_config(emu.base_url, api={"requests_per_second": args.rps},
                            pool={"max_in_flight": 32}, watch={"mode": "native"})
            for i in range(args.files):
                (ws.inbox / f"doc{i:04d}.png").write_bytes(png_bytes(i))
            for run in range(args.kills + 1):
                restarts.append(time.time())
                daemon = Daemon(ws, log_name=f"daemon{run}.log").start()
                if run == args.kills:
                    break
                seen = api_calls(emu)
                wait_until(lambda n=seen: api_calls(emu) > n or ws.finished() >= args.files, 60, 0.01,
                           "the new process's first request")
                time.sleep(args.every)  # let it run: the workload, not a synchronisation
                seen = api_calls(emu)
                wait_until(lambda n=seen: api_calls(emu) > n or ws.finished() >= args.files, 60, 0.003,
                           "a request to kill after")
                if ws.finished() >= args.files:
                    report.note(f"every file finished after {run} kills: no more to kill")
                    break
                kills += 1
                assert daemon.proc is not None
                daemon.proc.send_signal(signal.SIGKILL)
                daemon.proc.wait(10)
                report.note(f"kill {run + 1}: {ws.finished()} files finished")
            assert daemon is not None
            try:
                wait_until(lambda: ws.finished() >= args.files, args.timeout, 0.2, "every file finished")
            finally:
                exit_code = daemon.stop()
            reqs = [r for r in emu.requests() if r["host"] == "api"]
            creates = emu.stats()["creates"]
            finished, quarantined = ws.finished(), ws.count(ws.quarantine)
    finally:
        if daemon is not None:
            daemon.stop_quietly()  # a run that failed midway leaves no daemon behind
        ws.cleanup()

    times = sorted((float(r["t"]), r["status"]) for r in reqs)
    gaps, first_after, late_429 = [], [], 0
    for start in restarts[1:]:
        before = [t for t, _ in times if t < start]
        after = [(t, s) for t, s in times if t >= start]
        if before and after:
            gaps.append(after[0][0] - before[-1])
            first_after.append(after[0][0] - start)
            late_429 += sum(1 for t, s in after if s == 429 and t < after[0][0] + 5)
    status_429 = sum(1 for _, s in times if s == 429)
    report.figure("kill -9 and restart", kills, "{}", "", f"{args.kills}", kills == args.kills)
    report.figure("429s from the restarts (first 5 s of each new process)", late_429, "{}", "", "0", late_429 == 0)
    report.figure("429s in the whole run", status_429, "{}", "", "0", status_429 == 0)
    if gaps:
        report.figure("closest: killed process's last request to the new one's first", min(gaps) * 1000,
                      "{:.0f}", "ms", f">= {spacing * 1000:g} ms", min(gaps) >= spacing)
        report.figure("restart: start to first request, min/median",
                      f"{min(first_after):.2f}/{sorted(first_after)[len(first_after) // 2]:.2f}", unit="s")
    gap_stats = api_gaps_ms(reqs, spacing)
    report.figure("API requests closer than 1/rate at the emulator", gap_stats.get("below", 0), "{}")
    report.figure("files finished (of which quarantined)", f"{finished} ({quarantined})", unit="",
                  target=f"{args.files} (0)", ok=finished == args.files and quarantined == 0)
    report.note(f"{kills} kills, {len(restarts)} processes; {len(reqs)} API requests, statuses "
                f"{dict(Counter(str(s) for _, s in times))}; {creates} tasks created for {args.files} files "
                f"({creates - args.files} extra: a kill between a task's creation and its commit); "
                f"last daemon exit {exit_code}")
    report.print()
    return 1 if report.missed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

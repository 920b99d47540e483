"""Backlog: thousands of files already waiting when the daemon starts (a weekend's outage).

    python bench/backlog.py                               # 2,000 files to the end; 20,000 to the first create
    python bench/backlog.py --files 200 --large 0         # smoke

Case 1: --files small files in the inbox (two folders deep, as a scanner's day folders are)
before `ocr-watch run` starts; emulator near instant (0 s processing), --rps requests a second
(the daemon's api.requests_per_second too). Figures: start (the daemon process spawned) to the
first create at the emulator, and files a second from start to the last result downloaded.
Case 2: --large files waiting, the same emulator; the daemon runs until every file is
admitted. Figures: start to the first create, peak RSS (VmHWM) then.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Daemon, EmulatorProc, Report, Workspace, png_bytes, wait_until

MIB = 1024


def fill(ws: Workspace, files: int) -> None:
    for i in range(files):
        folder = ws.inbox / f"day{i % 7}"
        folder.mkdir(exist_ok=True)
        (folder / f"scan{i:06d}.png").write_bytes(png_bytes(i))


def first_create(emu: EmulatorProc, started: float) -> float:
    creates = [r["t"] for r in emu.requests() if r["host"] == "api" and r["method"] == "POST"]
    return min(creates) - started


def spacing(emu: EmulatorProc) -> tuple[float, float]:
    """Median and mean gap between API requests as the emulator received them, in ms: with a
    backlog the bucket always has a waiter, so what exceeds 1/rate is the daemon's lag."""
    times = sorted(r["t"] for r in emu.requests() if r["host"] == "api")
    gaps = sorted(b - a for a, b in itertools.pairwise(times))
    if not gaps:
        return 0.0, 0.0
    return 1000 * gaps[len(gaps) // 2], 1000 * (times[-1] - times[0]) / len(gaps)


def drain(args: argparse.Namespace, report: Report) -> None:
    ws = Workspace(prefix="ocr-bench-backlog-")
    try:
        with EmulatorProc(rps=args.rps, processing_seconds=0) as emu:
            config = ws.write_config(emu.base_url, api={"requests_per_second": args.rps},
                                     pool={"max_in_flight": args.max_in_flight})
            fill(ws, args.files)
            daemon = Daemon(ws)
            started = time.time()
            daemon.start()
            try:
                wait_until(lambda: ws.count(ws.archive) >= args.files, args.timeout, 0.05, "every file archived")
                ended = time.time()
            finally:
                code = daemon.stop()
            first = first_create(emu, started)
            stats = emu.stats()
            median_gap, mean_gap = spacing(emu)
    finally:
        ws.cleanup()
    rate = args.files / (ended - started)
    report.figure(f"{args.files} files: start to first create", first, "{:.2f}", "s", "<= 2 s", first <= 2.0)
    report.figure(f"{args.files} files: files a second, start to all archived", rate, "{:.1f}", "files/s",
                  ">= 80", rate >= 80)
    report.figure("  API requests: gap between two, median", median_gap, "{:.2f}", "ms")
    report.figure("  API requests: gap between two, mean", mean_gap, "{:.2f}", "ms")
    report.note(f"1/rate is {1000 / args.rps:.2f} ms: a gap beyond it is the daemon's lag (the bucket "
                f"spaces each grant from the last one, so a late wake-up is not made up)")
    report.note(f"{args.files} files: {ended - started:.1f} s; emulator creates {stats['creates']}, queries "
                f"{stats['queries']}, 429s {stats['rate_limited']}; config api {config['api']['requests_per_second']} "
                f"req/s, pool {config['pool']}, watch {config['watch']}; daemon exit {code}")


def large(args: argparse.Namespace, report: Report) -> None:
    ws = Workspace(prefix="ocr-bench-backlog-large-")
    try:
        with EmulatorProc(rps=args.rps, processing_seconds=0) as emu:
            ws.write_config(emu.base_url, api={"requests_per_second": args.rps},
                            pool={"max_in_flight": args.max_in_flight})
            fill(ws, args.large)
            daemon = Daemon(ws)
            started = time.time()
            daemon.start()
            try:
                daemon.wait_event("file_admitted", count=args.large, timeout=args.timeout, interval=0.2)
                admitted = time.time() - started
                peak = daemon.status_kib("VmHWM")
            finally:
                code = daemon.stop()
            first = first_create(emu, started)
            creates = emu.stats()["creates"]
    finally:
        ws.cleanup()
    report.figure(f"{args.large} files: start to first create", first, "{:.2f}", "s", "<= 5 s", first <= 5.0)
    report.figure(f"{args.large} files: peak RSS until all admitted", peak / MIB, "{:.1f}", "MiB", "<= 150 MiB",
                  peak <= 150 * MIB)
    report.figure("  start to all admitted", admitted, "{:.1f}", "s")
    report.note(f"{args.large} files: {creates} created by the time all were admitted; daemon exit {code}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000, help="case 1's backlog (0 = skip)")
    parser.add_argument("--large", type=int, default=20_000, help="case 2's backlog (0 = skip)")
    parser.add_argument("--rps", type=float, default=200.0)
    # README: max_in_flight must cover about requests_per_second / 2 x a task's seconds. Here
    # a task is first queried poll.interval_seconds (1 s) after its create, and a backlog's
    # tasks go in waves (all created, all queried, all downloaded): 100 x 2 x 1.2 s.
    parser.add_argument("--max-in-flight", type=int, default=256, help="pool.max_in_flight")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    report = Report(f"Backlog: files waiting at start, emulator instant, {args.rps:g} req/s")
    if args.files:
        drain(args, report)
    if args.large:
        large(args, report)
    report.print()
    return 1 if report.missed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

"""What a restart costs in queries: the same batch before and after the daemon restarts.

    python bench/restart.py                                   # 2 x 40 files, 10 s +- 30 %, 2 req/s
    python bench/restart.py --kill                            # the restart follows a kill -9
    python bench/restart.py --files 4 --processing-seconds 0.3 --first 4   # smoke

One emulator, one workspace (so one state dir). Run 1: start the daemon, drop --files files,
wait until all are finished, stop it (SIGTERM, or SIGKILL with --kill). Run 2: start it again
on the same state dir and drop another --files files. Tasks are split between the runs by
creation order; for each run the figure is queries per task over its first --first tasks,
where a planner that starts from nothing spends most. A restart that forgot what it had
learnt pays the same again in run 2; one that remembered should pay about what a warmed-up
daemon pays (run 1's later tasks, also printed).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Daemon, EmulatorProc, Report, Workspace, png_bytes, wait_until


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=40, help="files per run")
    parser.add_argument("--first", type=int, default=30, help="tasks counted at the start of each run")
    parser.add_argument("--processing-seconds", type=float, default=10.0)
    parser.add_argument("--jitter", type=float, default=0.3)
    parser.add_argument("--rps", type=float, default=2.0)
    parser.add_argument("--kill", action="store_true", help="end run 1 with SIGKILL instead of SIGTERM")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    first = min(args.first, args.files)
    report = Report(f"Restart: 2 x {args.files} files, {args.processing_seconds:g} s +- {args.jitter:.0%}, "
                    f"{args.rps:g} req/s, run 1 ended by {'SIGKILL' if args.kill else 'SIGTERM'}")
    ws = Workspace(prefix="ocr-bench-restart-")
    try:
        with EmulatorProc(rps=args.rps, processing_seconds=args.processing_seconds, jitter=args.jitter) as emu:
            ws.write_config(emu.base_url, api={"requests_per_second": args.rps}, log_level="info")
            for run in (1, 2):
                daemon = Daemon(ws, log_name=f"daemon{run}.log").start()
                try:
                    daemon.wait_event("watching", timeout=30)
                    for i in range(args.files):
                        staged = ws.staging / f"r{run}-{i:04d}.png"
                        staged.write_bytes(png_bytes(run * 100_000 + i))
                        os.rename(staged, ws.inbox / staged.name)
                    expected = run * args.files
                    wait_until(lambda n=expected: ws.finished() >= n, args.timeout, 0.1,
                               f"run {run}'s files finished")
                finally:
                    if run == 1 and args.kill and daemon.proc is not None:
                        daemon.proc.send_signal(signal.SIGKILL)
                        daemon.proc.wait(10)
                    else:
                        daemon.stop()
            requests = emu.requests()
            tasks = emu.tasks()
    finally:
        ws.cleanup()

    created = sorted((t["created_t"], t["task_id"]) for t in tasks)
    queries = Counter(r["task_id"] for r in requests if r["host"] == "api" and r["method"] == "GET")
    runs = [[task_id for _, task_id in created[:args.files]], [task_id for _, task_id in created[args.files:]]]
    per_task = [[queries[t] for t in ids] for ids in runs]
    for run, counts in enumerate(per_task, start=1):
        head = counts[:first]
        report.figure(f"run {run}: queries per task, first {len(head)} tasks",
                      sum(head) / len(head) if head else float("nan"), "{:.2f}")
    rest = per_task[0][first:]
    if rest:
        report.figure(f"run 1: queries per task, tasks {first + 1}..{len(per_task[0])} (warmed up)",
                      sum(rest) / len(rest), "{:.2f}")
    extra = sum(per_task[1][:first]) - sum(per_task[0][:first])
    report.figure("queries saved by run 2 over run 1's start", -extra, "{:d}")
    report.note(f"tasks created {len(created)} (expected {2 * args.files}); "
                f"429s {sum(1 for r in requests if r['status'] == 429)}")
    report.print()
    return 0 if len(created) == 2 * args.files else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

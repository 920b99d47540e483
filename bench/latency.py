"""Drop-to-upload latency: a file closed in the inbox of an idle daemon, to its create request
arriving at the emulator (the emulator's request log `t`, wall clock of the same machine).

    python bench/latency.py                                  # 200 files native, 200 polling
    python bench/latency.py --files 5 --polling-files 5      # smoke

One file at a time: write it straight into the inbox, close it, note the time; wait until the
daemon has created its task and finished it, then wait a random 0.6-0.9 s more (native)
or 0.6 s plus up to one polling period (polling), so the daemon is idle, its token bucket
full, and drops fall at random phases of the polling observer's period before the next.
Emulator: instant processing, no rate limit, own process.

With `watch.mode: native` a close-after-write event makes a file ready at once. With
`polling` there is no close event, so the figure is about poll_interval/2 + settle_seconds
+ up to one more poll interval: both are printed.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Daemon, EmulatorProc, Report, Workspace, log_time, percentile, png_bytes


def measure(mode: str, files: int, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(7)
    emu = EmulatorProc(rps=0, processing_seconds=0)
    ws = Workspace(prefix=f"bench-latency-{mode}-")
    try:
        watch = {"mode": mode, "poll_interval_seconds": args.poll_interval, "settle_seconds": args.settle_seconds}
        ws.write_config(emu.base_url, api={"requests_per_second": args.rps},
                        poll={"interval_seconds": 0.1}, watch=watch)
        daemon = Daemon(ws).start(keep={"task_created", "file_admitted"})
        closed: dict[str, float] = {}
        try:
            daemon.wait_event("watching", timeout=30)
            time.sleep(1.0)
            for i in range(files):
                name = f"lat{i:04d}.png"
                with (ws.inbox / name).open("wb") as f:
                    f.write(png_bytes(i))
                closed[name] = time.time()
                daemon.wait_event("file_done", count=i + 1, timeout=60, interval=0.005)
                # Idle again, and a random phase over a whole polling period (a fixed-ish
                # period close to the observer's would lock the drops to one phase).
                time.sleep(rng.uniform(0.6, 0.6 + (args.poll_interval if mode == "polling" else 0.3)))
        finally:
            daemon.stop()
        created = {r["task_id"]: r["t"] for r in emu.requests() if r["host"] == "api" and r["method"] == "POST"}
        task_of = {e["file"]: e["task_id"] for e in daemon.kept if e["event"] == "task_created"}
        admitted = {e["file"]: log_time(e) for e in daemon.kept if e["event"] == "file_admitted"}
        lat = [created[task_of[n]] - t for n, t in closed.items()]
        to_admit = [admitted[n] - t for n, t in closed.items()]
        admit_to_create = [created[task_of[n]] - admitted[n] for n in closed]
        return {"files": files, "lat": lat, "to_admit": to_admit, "admit_to_create": admit_to_create}
    finally:
        emu.stop()
        ws.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200, help="files dropped with watch.mode native (0 = skip)")
    parser.add_argument("--polling-files", type=int, default=200,
                        help="files dropped with watch.mode polling (0 = skip)")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="watch.poll_interval_seconds (polling mode)")
    parser.add_argument("--settle-seconds", type=float, default=0.5,
                        help="watch.settle_seconds (only polling mode waits for it; config default is 2)")
    parser.add_argument("--rps", type=float, default=2.0, help="daemon api.requests_per_second")
    args = parser.parse_args()

    report = Report("Drop-to-upload latency (file closed in the inbox -> create request at the emulator)")
    runs = [(mode, n) for mode, n in (("native", args.files), ("polling", args.polling_files)) if n]
    for mode, files in runs:
        r = measure(mode, files, args)
        p50, p99 = percentile(r["lat"], 50) * 1000, percentile(r["lat"], 99) * 1000
        report.note(f"{mode}: {files} files, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        target = ("<= 50 ms", p50 <= 50) if mode == "native" else ("", None)
        report.figure(f"{mode} p50", p50, "{:.1f}", "ms", *target)
        report.figure(f"{mode} p99", p99, "{:.1f}", "ms")
        report.figure(f"{mode} max", max(r["lat"]) * 1000, "{:.1f}", "ms")
        report.figure(f"{mode} p50 close->file_admitted (log)", percentile(r["to_admit"], 50) * 1000, "{:.1f}", "ms")
        report.figure(f"{mode} p50 file_admitted->create", percentile(r["admit_to_create"], 50) * 1000,
                      "{:.1f}", "ms")
    report.note(f"polling mode: watch.poll_interval_seconds={args.poll_interval:g}, "
                f"watch.settle_seconds={args.settle_seconds:g}; native ignores both for closed files; "
                f"api.requests_per_second={args.rps:g}, poll.interval_seconds=0.1, emulator instant and unlimited")
    report.print()
    return 1 if report.missed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

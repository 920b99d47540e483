"""Pipeline capacity: how fast the daemon itself moves files when the service costs nothing.

    python bench/capacity.py                 # 2,000 small files
    python bench/capacity.py --files 50      # smoke
    python bench/capacity.py --callbacks     # the emulator POSTs each task's news to the daemon
    python bench/capacity.py --metrics       # metrics.listen set: what the recorder costs a file

Emulator instant (processing 0) and unlimited (--rps 0), in its own process. The daemon is
started on an empty inbox; once it is watching, the files (made beforehand in a staging
folder on the same file system) are renamed into the inbox as fast as possible. Rate = files
/ (first rename .. last source archived). CPU = the daemon's utime+stime from
/proc/<pid>/stat, after start-up (taken once it is watching) to the end.

With --callbacks the daemon sets `callback.url` and its receiver settles tasks; the emulator
posts every state change, one connection each, and the receiver's cost is in the daemon's CPU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (
    Daemon,
    EmulatorProc,
    Report,
    Workspace,
    callback_section,
    png_bytes,
    proc_cpu_seconds,
    proc_cpu_split,
    wait_until,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--max-in-flight", type=int, default=64, help="pool.max_in_flight")
    parser.add_argument("--poll-interval", type=float, default=0.01, help="poll.interval_seconds")
    parser.add_argument("--rps", type=float, default=10000.0, help="daemon api.requests_per_second")
    parser.add_argument("--log-level", default="info", choices=["debug", "info"],
                        help="daemon log_level (the bench reads its info events, so not higher)")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--profile", help="also record the daemon with py-spy (collapsed stacks) into this file; "
                                          "slows the daemon, so its figures are not the benchmark's")
    parser.add_argument("--idle", action="store_true", help="with --profile: sample waiting threads too (wall-clock)")
    parser.add_argument("--gil", action="store_true",
                        help="with --profile: sample only the thread holding the GIL (where Python's CPU goes)")
    parser.add_argument("--keep-log", help="copy the daemon's log here")
    parser.add_argument("--callbacks", action="store_true",
                        help="set callback.url: tasks are settled by the emulator's POSTs, not by queries")
    parser.add_argument("--metrics", action="store_true",
                        help="set metrics.listen (a free loopback port): the recorder's cost is in the daemon's CPU")
    args = parser.parse_args()

    mode = (", callbacks" if args.callbacks else "") + (", metrics on" if args.metrics else "")
    report = Report(f"Pipeline capacity: {args.files} small files, emulator instant and unlimited{mode}")
    emu = EmulatorProc(rps=0, processing_seconds=0)
    ws = Workspace(prefix="bench-capacity-")
    try:
        config = ws.write_config(
            emu.base_url,
            api={"requests_per_second": args.rps},
            pool={"max_in_flight": args.max_in_flight},
            poll={"interval_seconds": args.poll_interval},
            watch={"mode": "native", "settle_seconds": 0.2},
            log_level=args.log_level,
            **({"callback": callback_section()} if args.callbacks else {}),
            **({"metrics": {"listen": "127.0.0.1:0"}} if args.metrics else {}),
        )
        staged = []
        for i in range(args.files):
            path = ws.staging / f"cap{i:05d}.png"
            path.write_bytes(png_bytes(i))
            staged.append(path)
        daemon = Daemon(ws).start()
        try:
            daemon.wait_event("watching", timeout=30)
            time.sleep(0.5)
            spy = None
            if args.profile:
                spy = subprocess.Popen(["py-spy", "record", "--pid", str(daemon.pid), "--rate", "250",
                                        "--format", "raw", "--nonblocking", "-o", args.profile,
                                        *(["--idle"] if args.idle else []), *(["--gil"] if args.gil else [])],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.0)
            split0, emu_cpu0 = proc_cpu_split(daemon.pid), proc_cpu_seconds(emu.proc.pid)
            t0 = time.monotonic()
            for path in staged:
                os.rename(path, ws.inbox / path.name)
            t_dropped = time.monotonic() - t0
            wait_until(lambda: ws.finished() >= args.files, args.timeout, 0.02, "all files finished")
            elapsed = time.monotonic() - t0
            split1 = proc_cpu_split(daemon.pid)
            split = [b - a for a, b in zip(split0, split1, strict=True)]
            cpu = sum(split)
            emu_cpu = proc_cpu_seconds(emu.proc.pid) - emu_cpu0
            total_cpu = sum(split1)
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
        finally:
            code = daemon.stop()
        daemon.poll_log()
        if args.keep_log:
            shutil.copy(daemon.log_path, args.keep_log)
        stats = emu.stats()
    finally:
        emu.stop()
        ws.cleanup()

    rate = args.files / elapsed
    per_file_ms = cpu / args.files * 1000
    report.figure("files per second", rate, "{:.1f}", "files/s", ">= 200", rate >= 200)
    report.figure("daemon CPU per file", per_file_ms, "{:.2f}", "ms", "<= 5 ms", per_file_ms <= 5)
    report.figure("elapsed (first drop .. all archived)", elapsed, "{:.2f}", "s")
    report.figure("daemon CPU in that time", cpu, "{:.2f}", "s")
    report.figure("  of which user (Python)", split[0], "{:.2f}", "s")
    report.figure("  of which system (kernel)", split[1], "{:.2f}", "s")
    report.figure("daemon CPU incl. start-up", total_cpu, "{:.2f}", "s")
    report.figure("emulator CPU in that time (own process)", emu_cpu, "{:.2f}", "s")
    report.note(f"emulator queries {stats['queries']}, callbacks sent {stats['callbacks_sent']} "
                f"(failed {stats['callbacks_failed']}), callback_missing {daemon.counts['callback_missing']}")
    report.note(f"drops took {t_dropped:.2f} s; emulator creates {stats['creates']}, "
                f"429s {stats['status_counts'].get('429', 0)}; done {daemon.counts['file_done']}, "
                f"quarantined {daemon.counts['file_quarantined']}; daemon exit {code}")
    report.note(f"daemon config: api.requests_per_second={args.rps:g}, pool.max_in_flight={args.max_in_flight}, "
                f"poll.interval_seconds={args.poll_interval:g}, watch.mode=native, log_level={config['log_level']}; "
                "files are renamed in (ready at once, no settle wait)")
    if args.profile:
        report.note(f"profiled with py-spy into {args.profile}: the figures above include its overhead")
    report.print()
    return 1 if report.missed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

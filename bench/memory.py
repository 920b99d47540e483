"""Memory: the daemon's peak RSS (VmHWM in /proc/<pid>/status) in two situations.

    python bench/memory.py                                   # 200 MB upload; 10,000 files waiting
    python bench/memory.py --size-mb 20 --waiting-files 200  # smoke

1. A 200 MB file (sparse: PNG magic then zeros) renamed into the inbox of an idle daemon;
   emulator instant, unlimited, --max-upload-mb size+50. VmHWM once the file is done.
2. 10,000 small files already in the inbox when the daemon starts; the emulator processes
   for 600 s at 2 req/s, so all but max_in_flight of them stay waiting. VmHWM once the log
   shows every file admitted (scanned, settled, journalled, queued).

Each case gets a fresh daemon process and its own emulator process. (`bench/upload_memory.py`
measures the client alone.)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import PNG, Daemon, EmulatorProc, Report, Workspace, png_bytes

MIB = 1024


def big_upload(args: argparse.Namespace, report: Report) -> None:
    emu = EmulatorProc(rps=0, processing_seconds=0, max_upload_mb=args.size_mb + 50)
    ws = Workspace(prefix="bench-memory-big-")
    try:
        ws.write_config(emu.base_url, api={"requests_per_second": 2}, poll={"interval_seconds": 0.2},
                        watch={"mode": "native"})
        source = ws.staging / "big.png"
        with source.open("wb") as f:
            f.write(PNG)
            f.truncate(args.size_mb * 1024 * 1024)
        daemon = Daemon(ws).start()
        try:
            daemon.wait_event("watching", timeout=30)
            time.sleep(0.5)
            idle = daemon.status_kib("VmHWM")
            t0 = time.monotonic()
            os.rename(source, ws.inbox / source.name)
            daemon.wait_event("file_done", timeout=args.timeout, interval=0.1)
            elapsed = time.monotonic() - t0
            peak, rss = daemon.status_kib("VmHWM"), daemon.status_kib("VmRSS")
        finally:
            code = daemon.stop()
        received = [t["size"] for t in emu.tasks()]
    finally:
        emu.stop()
        ws.cleanup()
    report.figure(f"peak RSS, {args.size_mb} MiB upload", peak / MIB, "{:.1f}", "MiB", "<= 80 MiB", peak <= 80 * MIB)
    report.figure("  peak RSS when idle, before the drop", idle / MIB, "{:.1f}", "MiB")
    report.figure("  RSS after the upload", rss / MIB, "{:.1f}", "MiB")
    report.note(f"big upload: {args.size_mb} MiB sparse file done in {elapsed:.1f} s; emulator received "
                f"{received} bytes; daemon exit {code}")


def waiting_files(args: argparse.Namespace, report: Report) -> None:
    emu = EmulatorProc(rps=2, processing_seconds=600)
    ws = Workspace(prefix="bench-memory-many-")
    try:
        config = ws.write_config(emu.base_url, api={"requests_per_second": 2}, watch={"mode": "native"})
        for i in range(args.waiting_files):
            (ws.inbox / f"wait{i:05d}.png").write_bytes(png_bytes(i))
        daemon = Daemon(ws).start()
        try:
            t0 = time.monotonic()
            daemon.wait_event("file_admitted", count=args.waiting_files, timeout=args.timeout, interval=0.2)
            admitted_s = time.monotonic() - t0
            time.sleep(1.0)
            peak, rss = daemon.status_kib("VmHWM"), daemon.status_kib("VmRSS")
            cpu = daemon.cpu_seconds()
        finally:
            code = daemon.stop()
        creates = emu.stats()["creates"]
    finally:
        emu.stop()
        ws.cleanup()
    report.figure(f"peak RSS, {args.waiting_files} files waiting", peak / MIB, "{:.1f}", "MiB", "<= 150 MiB",
                  peak <= 150 * MIB)
    report.figure("  RSS then", rss / MIB, "{:.1f}", "MiB")
    report.figure("  start to all admitted", admitted_s, "{:.1f}", "s")
    report.figure("  daemon CPU by then", cpu, "{:.1f}", "s")
    report.note(f"waiting files: {args.waiting_files} admitted, {creates} tasks created meanwhile "
                f"(emulator 600 s processing, 2 req/s; pool.max_in_flight default), "
                f"watch settle default; config {config['watch']}; daemon exit {code}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=200, help="size of the big upload, MiB (0 = skip)")
    parser.add_argument("--waiting-files", type=int, default=10_000, help="files waiting in the inbox (0 = skip)")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    report = Report("Memory: daemon peak RSS (VmHWM)")
    if args.size_mb:
        big_upload(args, report)
    if args.waiting_files:
        waiting_files(args, report)
    report.print()
    return 1 if report.missed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

"""Head of line: small files dropped while a big upload crosses a slow uplink.

    python bench/head_of_line.py                       # 48 MB + 24 small, 4 MB/s, 2 s, 8 req/s
    python bench/head_of_line.py --rps 4               # as issue 19 first measured it
    python bench/head_of_line.py --big-mb 2 --small 4 --upload-bps 1000000 --processing-seconds 0.3  # smoke

One emulator with an upload bandwidth shared by every connection (`--upload-bps`), processing
--processing-seconds, --rps requests a second (the daemon's api.requests_per_second too). The
big file (PNG magic, then random bytes) is moved into the inbox of a running daemon; --after
seconds after its upload reached the emulator (its create request's headers), --small small
files are moved in. Before all that, --warm small files are done, so the poll planner has
seen a task as a running daemon has (with none it queries each early task twice, and queries
go before creates). Figures, from the emulator's tasks and the daemon's log: how many small
files were created while the big upload was still crossing the line, and each small file's
drop-to-output time (moved into the inbox .. `file_done`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import PNG, Daemon, EmulatorProc, Report, Workspace, log_time, percentile, png_bytes, wait_until


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big-mb", type=float, default=48.0)
    parser.add_argument("--small", type=int, default=24)
    parser.add_argument("--after", type=float, default=1.0, help="seconds into the big upload the small ones drop")
    parser.add_argument("--upload-bps", type=float, default=4_000_000.0)
    parser.add_argument("--processing-seconds", type=float, default=2.0)
    parser.add_argument("--rps", type=float, default=8.0)
    parser.add_argument("--warm", type=int, default=4,
                        help="small files done first, so the poll planner has seen tasks (0: a cold start)")
    parser.add_argument("--timeline", action="store_true", help="print each API call: sent, answered (s from drop)")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    report = Report(f"Head of line: {args.big_mb:g} MB then {args.small} small files {args.after:g} s into its "
                    f"upload; uplink {args.upload_bps / 1e6:g} MB/s, {args.processing_seconds:g} s, {args.rps:g} req/s")
    ws = Workspace(prefix="ocr-bench-hol-")
    dropped: dict[str, float] = {}
    try:
        with EmulatorProc(rps=args.rps, processing_seconds=args.processing_seconds,
                          extra=["--upload-bps", str(args.upload_bps)]) as emu:
            ws.write_config(emu.base_url, api={"requests_per_second": args.rps}, log_level="info")
            big = ws.staging / "big.png"
            with big.open("wb") as f:
                f.write(PNG)
                f.write(os.urandom(int(args.big_mb * 1_000_000) - len(PNG)))
            small = []
            for i in range(args.small):
                path = ws.staging / f"small-{i:02d}.png"
                path.write_bytes(png_bytes(i))
                small.append(path)
            daemon = Daemon(ws).start(keep=["file_done"])
            try:
                daemon.wait_event("watching", timeout=30)
                for i in range(args.warm):
                    (ws.staging / f"warm-{i}.png").write_bytes(png_bytes(1000 + i))
                    os.rename(ws.staging / f"warm-{i}.png", ws.inbox / f"warm-{i}.png")
                daemon.wait_event("file_done", count=args.warm, timeout=args.timeout, interval=0.1)
                warm_calls = emu.stats()["create_requests"]
                warm_done = time.time()
                os.rename(big, ws.inbox / big.name)
                wait_until(lambda: emu.stats()["create_requests"] > warm_calls, 30, 0.01, "the big upload to start")
                time.sleep(args.after)
                for path in small:
                    dropped[path.name] = time.time()
                    os.rename(path, ws.inbox / path.name)
                daemon.wait_event("file_done", count=args.warm + 1 + args.small, timeout=args.timeout,
                                  interval=0.1)
                done = {Path(e["file"]).name: log_time(e) for e in daemon.kept if e.get("event") == "file_done"}
            finally:
                code = daemon.stop()
            tasks = {t["source_name"]: t for t in emu.tasks()}
            api = [r for r in emu.requests() if r["host"] == "api" and r["t"] >= warm_done]
            creates = [r for r in api if r["method"] == "POST"]
    finally:
        ws.cleanup()

    big_task = tasks["big.png"]
    big_start = min(r["t"] for r in creates)
    big_end = big_task["created_t"]
    during = sum(1 for name in dropped if tasks[name]["created_t"] < big_end)
    waits = [done[name] - dropped[name] for name in dropped]
    to_create = [tasks[name]["created_t"] - dropped[name] for name in dropped]
    most = args.small // 2 + 1
    report.figure("small files created during the big upload", during, "{:d}", f"of {args.small}",
                  f">= {most} (most)", during >= most)
    report.figure("small drop-to-output p50", percentile(waits, 50), "{:.2f}", "s", "<= 6 s",
                  percentile(waits, 50) <= 6.0)
    report.figure("small drop-to-output p95", percentile(waits, 95), "{:.2f}", "s", "<= 10 s",
                  percentile(waits, 95) <= 10.0)
    report.figure("  small drop-to-output max", max(waits), "{:.2f}", "s")
    report.figure("  small drop-to-create p50", percentile(to_create, 50), "{:.2f}", "s")
    report.figure("  big upload (its create request .. its task)", big_end - big_start, "{:.2f}", "s")
    report.figure("  big file drop-to-output", done["big.png"] - big_start, "{:.2f}", "s")
    report.note(f"{args.warm} small files done first (--warm); then tasks {len(tasks) - args.warm} (expected "
                f"{1 + args.small}); API calls {len(api)}: creates {len(creates)}, "
                f"429s {sum(1 for r in creates if r['status'] == 429)}; daemon exit {code}")
    if args.timeline:
        t0 = min(dropped.values())
        for r in api:
            print(f"{r['t'] - t0:8.3f} {r.get('answered_t', 0) - t0:8.3f} {r['method']} {r['status']} {r['task_id']}")
    report.print()
    return 0 if not report.missed and len(tasks) == args.warm + 1 + args.small else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

"""Kills: what kill -9 costs in creates while several uploads are under way.

    python bench/kills.py                                  # 150 files, 15 kills, 4 uploads at once
    python bench/kills.py --files 20 --kills 3 --processing-seconds 0.3   # smoke

One emulator (--rps, processing --processing-seconds +- 30 %, an uplink of --upload-bps shared
by all connections), files of 50 kB to 1 MB so several uploads cross the line at once
(pool.max_uploads, --max-uploads). The daemon is started and killed with SIGKILL --kills
times, each after a random 1 to 3 s (a seeded RNG: the moment of the crash, not a wait for
anything), then started once more and left to finish every file. Each file has its own
content, so every task beyond one a file is a create the kills cost. Each such task is put
down to the first kill after its create request arrived (its last bytes may reach the
service, and be made a task, after the sender died); targets: at most one per kill, and none
whose answer had gone out (the emulator's log) at least a second before that kill.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import PNG, Daemon, EmulatorProc, Report, Workspace, wait_until


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=150)
    parser.add_argument("--kills", type=int, default=15)
    parser.add_argument("--max-uploads", type=int, default=4, help="pool.max_uploads")
    parser.add_argument("--upload-bps", type=float, default=2_000_000.0)
    parser.add_argument("--processing-seconds", type=float, default=1.0)
    parser.add_argument("--rps", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    report = Report(f"Kills: {args.files} files, {args.kills} x kill -9, pool.max_uploads {args.max_uploads}, "
                    f"uplink {args.upload_bps / 1e6:g} MB/s, {args.rps:g} req/s")
    ws = Workspace(prefix="ocr-bench-kills-")
    kills: list[float] = []
    under_way: list[int] = []
    try:
        with EmulatorProc(rps=args.rps, processing_seconds=args.processing_seconds, jitter=0.3,
                          extra=["--upload-bps", str(args.upload_bps)]) as emu:
            ws.write_config(emu.base_url, api={"requests_per_second": args.rps},
                            pool={"max_uploads": args.max_uploads})
            for i in range(args.files):
                size = rng.randrange(50_000, 1_000_000)
                (ws.inbox / f"k{i:03d}.png").write_bytes(PNG + i.to_bytes(4, "big") + os.urandom(size))
            for run in range(args.kills):
                daemon = Daemon(ws, log_name=f"daemon{run}.log").start()
                time.sleep(rng.uniform(1.0, 3.0))  # the random moment of the crash
                stats = emu.stats()
                answered = sum(1 for r in emu.requests() if r["host"] == "api" and r["method"] == "POST")
                kills.append(time.time())
                assert daemon.proc is not None
                daemon.proc.kill()
                daemon.proc.wait(10)
                under_way.append(stats["create_requests"] - answered)
            daemon = Daemon(ws, log_name="daemon-last.log").start()
            try:
                wait_until(lambda: ws.finished() >= args.files, args.timeout, 0.2, "every file finished")
            finally:
                code = daemon.stop()
            tasks = emu.tasks()
            # Sent (headers arrived) and answered, for every create that made a task.
            creates = {r["task_id"]: (r["t"], r["answered_t"]) for r in emu.requests()
                       if r["host"] == "api" and r["method"] == "POST" and r["task_id"]}
    finally:
        ws.cleanup()

    by_content: dict[str, list[dict]] = defaultdict(list)
    for task in tasks:
        by_content[task["sha256"]].append(task)
    per_kill = [0] * len(kills)
    late = []
    after_death = 0
    for same in by_content.values():
        for task in sorted(same, key=lambda t: t["created_t"])[:-1]:  # all but the one kept
            # The kill that ended the run which sent it: its bytes may still have reached the
            # service, and been made a task, after the process died.
            sent, answered = creates[task["task_id"]]
            after = [k for k, t in enumerate(kills) if t >= sent]
            if not after:
                continue
            per_kill[after[0]] += 1
            after_death += answered > kills[after[0]]
            if kills[after[0]] - answered >= 1.0:
                late.append(task["task_id"])

    extra = len(tasks) - args.files
    report.figure("extra creates", extra, "{:d}", f"for {len(kills)} kills", f"<= {len(kills)}", extra <= len(kills))
    report.figure("most extra creates put down to one kill", max(per_kill, default=0), "{:d}", "", "<= 1",
                  max(per_kill, default=0) <= 1)
    report.figure("extra creates answered >= 1 s before their kill", len(late), "{:d}", "", "0", not late)
    report.figure("  of the extra creates, made after their sender was killed", after_death, "{:d}")
    report.figure("  creates under way at a kill, mean", sum(under_way) / len(under_way), "{:.1f}")
    report.figure("  creates under way at a kill, most", max(under_way), "{:d}")
    report.note(f"tasks {len(tasks)} for {args.files} files ({len(by_content)} contents); extra per kill "
                f"{per_kill}; finished {args.files}; last daemon exit {code}")
    report.print()
    return 0 if not report.missed and len(by_content) == args.files else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

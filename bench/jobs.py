"""Jobs on one key: three jobs sharing one API key at its quota, against one job with the same files.

    python bench/jobs.py                                    # 300 files, 3 s +- 30 %, 2 req/s
    python bench/jobs.py --files 30 --processing-seconds 0.3 --rps 5

Two workloads, each against its own emulator process (same settings, same seed), run
concurrently (the rate limit, not the CPU, bounds them):

- one job: the `--files` files in one inbox (the simple setup);
- three jobs: the same number of files, a third in each of three jobs' inboxes, one
  configuration, one key (`jobs:`), every job with its own format;
- busy and quiet: `--files` files in one job, then, once they are all admitted, one file in
  another: how long that one takes from its drop to its output, and how many of the busy
  job's were done by then (--no-quiet skips it).

Files per minute = files / (first API request .. last result download, at the emulator); a
job's = its files / (its first create .. its last download). Targets: the three jobs together
keep the single job's rate (>= 0.95x: one key's quota is one quota, shared, not paced per
job), no 429, and no job starved (slowest job's rate >= 0.8x the fastest's: round robin);
the quiet file done within QUIET_TARGET_S of its drop, not after the busy backlog.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import KEY, Daemon, EmulatorProc, Report, Workspace, api_figures, png_bytes, run_workloads, wait_until

JOBS = {"invoices": "xlsx", "letters": "docx", "contracts": "pdf"}
QUIET_TARGET_S = 15.0


def _config(args: argparse.Namespace, base_url: str) -> dict[str, Any]:
    return {
        "api": {"base_url": base_url, "key": KEY, "requests_per_second": args.rps},
        "pool": {"max_in_flight": args.max_in_flight},
        "poll": {"interval_seconds": 1.0, "timeout_seconds": 300},
        "watch": {"mode": "native", "rescan_seconds": 0},
    }


def run(args: argparse.Namespace, emu: EmulatorProc, result: dict[str, Any], jobs: bool) -> None:
    ws = Workspace(prefix="bench-jobs-")
    try:
        config = _config(args, emu.base_url)
        inboxes: list[Path] = []
        finished: list[Path] = []
        if jobs:
            config["jobs"] = {}
            for name, fmt in JOBS.items():
                folders = {key: str(ws.root / name / key) for key in ("inbox", "outbox", "quarantine", "archive")}
                for folder in folders.values():
                    Path(folder).mkdir(parents=True)
                config["jobs"][name] = {"folders": folders, "ocr": {"format": fmt}}
                inboxes.append(ws.root / name / "inbox")
                finished += [ws.root / name / "archive", ws.root / name / "quarantine"]
            config["state_dir"] = str(ws.root / "state")
        else:
            config["folders"] = {key: key for key in ("inbox", "outbox", "quarantine", "archive")}
            inboxes.append(ws.inbox)
            finished += [ws.archive, ws.quarantine]
        ws.config_path.write_text(yaml.safe_dump(config))
        for i in range(args.files):
            inbox = inboxes[i % len(inboxes)]
            (inbox / f"{inbox.parent.name if jobs else 'doc'}-{i:04d}.png").write_bytes(png_bytes(i))
        daemon = Daemon(ws).start()
        t0 = time.monotonic()
        try:
            wait_until(lambda: sum(ws.count(f) for f in finished) >= args.files, args.timeout, 0.2,
                       "all files finished")
            result["wall_s"] = time.monotonic() - t0
        finally:
            result["exit"] = daemon.stop()
        result["quarantined"] = sum(ws.count(f) for f in finished[1::2])
        result.update(api_figures(emu, args.files))
        if jobs:
            result["per_job"] = _per_job(emu)
    finally:
        ws.cleanup()


def run_quiet(args: argparse.Namespace, emu: EmulatorProc, result: dict[str, Any]) -> None:
    """A busy job's backlog admitted, then one file of a quiet job: its drop to its output."""
    ws = Workspace(prefix="bench-jobs-quiet-")
    try:
        config = _config(args, emu.base_url)
        config["jobs"] = {}
        for name in ("busy", "quiet"):
            folders = {key: str(ws.root / name / key) for key in ("inbox", "outbox", "quarantine", "archive")}
            for folder in folders.values():
                Path(folder).mkdir(parents=True)
            config["jobs"][name] = {"folders": folders}
        config["state_dir"] = str(ws.root / "state")
        ws.config_path.write_text(yaml.safe_dump(config))
        daemon = Daemon(ws).start()
        try:
            daemon.wait_event("watching", count=2)
            for i in range(args.files):
                (ws.root / "busy" / "inbox" / f"busy-{i:04d}.png").write_bytes(png_bytes(i))
            daemon.wait_event("file_admitted", count=args.files, timeout=args.timeout)
            quiet = ws.root / "quiet"
            (ws.staging / "q.png").write_bytes(png_bytes(10**6))
            dropped = time.monotonic()
            os.replace(ws.staging / "q.png", quiet / "inbox" / "q.png")
            wait_until(lambda: (quiet / "outbox" / "q.txt").exists(), args.timeout, 0.05, "the quiet file's output")
            result["quiet_s"] = time.monotonic() - dropped
            result["busy_done_first"] = ws.count(ws.root / "busy" / "outbox")
        finally:
            result["exit"] = daemon.stop()
        result["status_429"] = sum(1 for r in emu.requests() if r["status"] == 429)
    finally:
        ws.cleanup()


def _per_job(emu: EmulatorProc) -> dict[str, float]:
    """Files per minute of each job, from its tasks at the emulator (named after the job)."""
    rates = {}
    tasks = emu.tasks()
    for name in JOBS:
        mine = [t for t in tasks if t["source_name"].startswith(f"{name}-") and t.get("first_download_t")]
        if not mine:
            rates[name] = 0.0
            continue
        span = max(t["first_download_t"] for t in mine) - min(t["created_t"] for t in mine)
        rates[name] = len(mine) / span * 60 if span > 0 else 0.0
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=300, help="in each workload (a third per job)")
    parser.add_argument("--processing-seconds", type=float, default=3.0)
    parser.add_argument("--jitter", type=float, default=0.3)
    parser.add_argument("--rps", type=float, default=2.0, help="limit at the emulator and in the daemon")
    parser.add_argument("--max-in-flight", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--no-quiet", action="store_true", help="skip the busy-and-quiet workload")
    args = parser.parse_args()

    report = Report(f"Jobs on one key: {args.files} files, processing {args.processing_seconds:g} s "
                    f"+- {args.jitter:.0%}, {args.rps:g} req/s")
    results: dict[str, dict[str, Any]] = {"one job": {}, "three jobs": {}}
    if not args.no_quiet:
        results["busy and quiet"] = {}
    emulators = {name: EmulatorProc(rps=args.rps, processing_seconds=args.processing_seconds,
                                    jitter=args.jitter, seed=1) for name in results}

    def workload(name: str) -> Callable[[], None]:
        if name == "busy and quiet":
            return lambda: run_quiet(args, emulators[name], results[name])
        return lambda: run(args, emulators[name], results[name], jobs=name == "three jobs")

    if not run_workloads({name: workload(name) for name in results}, emulators.values()):
        return 2

    one, three = results["one job"], results["three jobs"]
    ratio = three["files_per_min"] / one["files_per_min"]
    report.figure("one job files per minute", one["files_per_min"], "{:.1f}", "files/min")
    report.figure("three jobs files per minute, in total", three["files_per_min"], "{:.1f}", "files/min")
    report.figure("three jobs vs one job (rate ratio)", ratio, "{:.2f}", "x", ">= 0.95x", ratio >= 0.95)
    for name, rate in three["per_job"].items():
        report.figure(f"job {name} files per minute", rate, "{:.1f}", "files/min")
    rates = list(three["per_job"].values())
    spread = min(rates) / max(rates) if max(rates) > 0 else 0.0
    report.figure("slowest job vs fastest (rate ratio)", spread, "{:.2f}", "x", ">= 0.8x", spread >= 0.8)
    if "busy and quiet" in results:
        q = results.pop("busy and quiet")
        report.figure("quiet job's file, drop to output", q["quiet_s"], "{:.1f}", "s",
                      f"<= {QUIET_TARGET_S:g} s", q["quiet_s"] <= QUIET_TARGET_S)
        report.figure(f"busy job's files done before it (of {args.files})", q["busy_done_first"], "{}")
        report.figure("busy and quiet 429s received", q["status_429"], "{}", "", "0", q["status_429"] == 0)
    for name, r in results.items():
        report.figure(f"{name} 429s received", r["status_429"], "{}", "", "0", r["status_429"] == 0)
        report.figure(f"{name} API calls per file", r["calls_per_file"], "{:.2f}")
        report.note(f"{name}: {r['files']} files, span {r['span_s']:.1f} s, {r['creates']} creates, "
                    f"statuses {r['statuses']}, {r['quarantined']} quarantined, daemon exit {r['exit']}")
    report.print()
    return 1 if report.missed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

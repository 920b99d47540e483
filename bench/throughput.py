"""Throughput at quota: ocr-watch against the vendor's algorithm and a naive concurrent client.

    python bench/throughput.py                              # 300 files, 3 s +- 30 %, 2 req/s
    python bench/throughput.py --processing-seconds 10      # the slow-service run
    python bench/throughput.py --files 5 --vendor-files 3 --naive-files 3 --processing-seconds 0.3
    python bench/throughput.py --limiter gateway            # "Strict gateway at quota" (issue 19)

Four workloads, each against its own emulator process and key quota (same settings, same
seed), run concurrently by default so the wall time is the longest one, not the sum
(--sequential to run them one after another; the rate limit, not the CPU, bounds them all):

- ocr-watch: the daemon (`python -m ocr_watch run`), every file already in the inbox, polling
  (the default: it needs nothing but outbound HTTPS).
- ocr-watch+callbacks: the same, with `callback.url` set: the emulator POSTs each task's
  changes to the daemon's receiver, and a query is only the fallback (--no-callbacks skips it).
- vendor: the vendor's Python sample's algorithm, one file at a time: create, query at once
  and then every 1 s until state 1 or < 0, download.
- naive: the same files as ocr-watch, all tasks in flight up to --max-in-flight, each queried
  every 1 s (first query 1 s after create), through the same client and the same 2 req/s
  token bucket.

`--limiter gateway` runs every emulator with the strict gateway limiter (one request per
1/rate per key, measured when its headers arrive, no burst: nginx `limit_req` without burst)
instead of the token bucket, and holds ocr-watch to the targets of that case: zero 429s,
at least 0.9 of the files a minute that the quota allows (2 calls a file polling, 1 with
callbacks), at most 2.2 calls a file, done-to-downloaded p50 at most 1.0 s.

Rate = files / (first API request .. last result download, at the emulator). Done-to-downloaded
= the task's done_t at the emulator to its first download arriving there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (
    KEY,
    Daemon,
    EmulatorProc,
    Report,
    Workspace,
    api_figures,
    api_gaps_ms,
    callback_section,
    png_bytes,
    run_workloads,
    wait_until,
)

from ocr_watch.api import CreateOptions, PicWishClient

TASKS = "/api/tasks/document/ocr"


def make_files(folder: Path, n: int, tag: str) -> list[Path]:
    out = []
    for i in range(n):
        path = folder / f"{tag}{i:04d}.png"
        path.write_bytes(png_bytes(i + 100_000 * len(tag)))
        out.append(path)
    return out


# -- the workloads ----------------------------------------------------------------------------


def run_ocr_watch(args: argparse.Namespace, emu: EmulatorProc, result: dict[str, Any],
                  callbacks: bool = False) -> None:
    ws = Workspace(prefix="bench-throughput-")
    try:
        for i in range(args.files):
            (ws.inbox / f"doc{i:04d}.png").write_bytes(png_bytes(i))
        extra: dict[str, Any] = {}
        if callbacks:
            extra["callback"] = callback_section()
        config = ws.write_config(
            emu.base_url,
            api={"requests_per_second": args.rps,
                 **({} if args.margin is None else {"rate_margin": args.margin})},
            pool={"max_in_flight": args.max_in_flight},
            poll={"interval_seconds": args.poll_interval, "timeout_seconds": 300},
            watch={"mode": "native"},
            **extra,
        )
        result["config"] = {k: config[k] for k in ("pool", "poll", "watch", *extra)}
        daemon = Daemon(ws).start()
        t0 = time.monotonic()
        try:
            wait_until(lambda: ws.finished() >= args.files, args.timeout, 0.2, "all files finished")
            result["wall_s"] = time.monotonic() - t0
            result["daemon_cpu_s"] = daemon.cpu_seconds()
        finally:
            result["exit"] = daemon.stop()
        result["quarantined"] = ws.count(ws.quarantine)
        result["callbacks_missing"] = daemon.poll_log()["callback_missing"]
        result.update(api_figures(emu, args.files))
        result["api_gaps_ms"] = api_gaps_ms(emu.requests(), 1 / args.rps)
        if args.dump and not callbacks:
            dump = Path(args.dump)
            dump.mkdir(parents=True, exist_ok=True)
            (dump / "requests.json").write_text(json.dumps(emu.requests()))
            (dump / "tasks.json").write_text(json.dumps(emu.tasks()))
            shutil.copy(daemon.log_path, dump / "daemon.log")
    finally:
        ws.cleanup()


def run_ocr_watch_callbacks(args: argparse.Namespace, emu: EmulatorProc, result: dict[str, Any]) -> None:
    run_ocr_watch(args, emu, result, callbacks=True)


def run_vendor(args: argparse.Namespace, emu: EmulatorProc, result: dict[str, Any]) -> None:
    """The vendor sample's loop (`polling_task_result`), one file at a time, file uploads."""
    with tempfile.TemporaryDirectory(prefix="bench-vendor-") as tmp:
        files = make_files(Path(tmp), args.vendor_files, "vendor")
        headers = {"X-API-KEY": KEY}
        failed = 0
        t0 = time.monotonic()
        with httpx.Client(timeout=60) as http:
            for path in files:
                with path.open("rb") as f:
                    resp = http.post(emu.base_url + TASKS, headers=headers, data={"format": "txt"},
                                     files={"image_file": (path.name, f, "image/png")})
                body = resp.json()
                task_id = (body.get("data") or {}).get("task_id") if body.get("status") == 200 else None
                if task_id is None:
                    failed += 1
                    continue
                url = None
                for i in range(120):
                    if i != 0:
                        time.sleep(1)
                    data = http.get(f"{emu.base_url}{TASKS}/{task_id}", headers=headers).json().get("data") or {}
                    state = data.get("state")
                    if state == 1:
                        url = data.get("file")
                        break
                    if isinstance(state, int) and state < 0:
                        break
                if url is None:
                    failed += 1
                    continue
                (Path(tmp) / f"{path.stem}.txt").write_bytes(http.get(url).content)
        result["wall_s"] = time.monotonic() - t0
        result["failed"] = failed
        result.update(api_figures(emu, args.vendor_files))


def run_naive(args: argparse.Namespace, emu: EmulatorProc, result: dict[str, Any]) -> None:
    """Up to max_in_flight tasks at once, each polled every second, one shared token bucket."""

    async def main(files: list[Path], out: Path) -> int:
        failed = 0
        sem = asyncio.Semaphore(args.max_in_flight)
        async with PicWishClient(emu.base_url, KEY, requests_per_second=args.rps) as client:

            async def one(path: Path) -> None:
                nonlocal failed
                async with sem:
                    task_id = await client.create_task(path, CreateOptions())
                    while True:
                        await asyncio.sleep(1.0)
                        task = await client.get_task(task_id)
                        if task.state == 1 or task.state < 0:
                            break
                    if task.state == 1 and task.file_url:
                        await client.download_result(task.file_url, out / f"{path.stem}.txt")
                    else:
                        failed += 1

            await asyncio.gather(*(one(p) for p in files))
        return failed

    with tempfile.TemporaryDirectory(prefix="bench-naive-") as tmp:
        files = make_files(Path(tmp), args.naive_files, "naive")
        out = Path(tmp) / "out"
        out.mkdir()
        t0 = time.monotonic()
        result["failed"] = asyncio.run(main(files, out))
        result["wall_s"] = time.monotonic() - t0
        result.update(api_figures(emu, args.naive_files))


# -- driver -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--processing-seconds", type=float, default=3.0)
    parser.add_argument("--jitter", type=float, default=0.3)
    parser.add_argument("--rps", type=float, default=2.0, help="limit at the emulator and in the daemon")
    parser.add_argument("--limiter", choices=("bucket", "gateway"), default="bucket",
                        help="the emulators' rate limiter (gateway: the strict-gateway targets)")
    parser.add_argument("--margin", type=float, default=None,
                        help="daemon api.rate_margin, a fraction of 1/rate [its default]")
    parser.add_argument("--vendor-files", type=int, default=30)
    parser.add_argument("--naive-files", type=int, default=None,
                        help="files through the naive client [the same workload as ocr-watch: --files]")
    parser.add_argument("--max-in-flight", type=int, default=32,
                        help="daemon pool.max_in_flight, and the naive client's")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="daemon poll.interval_seconds")
    parser.add_argument("--sequential", action="store_true", help="run the workloads one after another")
    parser.add_argument("--no-callbacks", action="store_true", help="skip the ocr-watch+callbacks workload")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--dump", help="folder to save ocr-watch's emulator request log, tasks and daemon log")
    args = parser.parse_args()
    if args.naive_files is None:
        args.naive_files = args.files

    gateway = " (strict gateway limiter)" if args.limiter == "gateway" else ""
    report = Report(f"Throughput at quota: {args.files} files, processing {args.processing_seconds:g} s "
                    f"+- {args.jitter:.0%}, {args.rps:g} req/s{gateway}")
    runners = {"ocr-watch": run_ocr_watch, "ocr-watch+callbacks": run_ocr_watch_callbacks,
               "vendor": run_vendor, "naive": run_naive}
    if args.no_callbacks:
        del runners["ocr-watch+callbacks"]
    results: dict[str, dict[str, Any]] = {name: {} for name in runners}
    emulators = {name: EmulatorProc(rps=args.rps, processing_seconds=args.processing_seconds,
                                    jitter=args.jitter, seed=1, extra=("--limiter", args.limiter))
                 for name in runners}
    def workload(name: str) -> Callable[[], None]:
        def go() -> None:
            runners[name](args, emulators[name], results[name])
            r = results[name]
            report.note(f"{name} finished: {r['files']} files in {r['span_s']:.1f} s "
                        f"({r['files_per_min']:.1f}/min)")
        return go

    if not run_workloads({name: workload(name) for name in runners}, emulators.values(),
                         sequential=args.sequential):
        return 2

    ven, nai = results["vendor"], results["naive"]
    for label in ("ocr-watch", "ocr-watch+callbacks"):
        if label in results:
            report_ocr_watch(report, label, results[label], ven, nai)
            if args.limiter == "gateway":
                report_gateway(report, label, results[label], args.rps)
    for name, r in (("vendor", ven), ("naive", nai)):
        report.figure(f"{name} files per minute ({r['files']} files)", r["files_per_min"], "{:.1f}", "files/min")
        report.figure(f"{name} API calls per file", r["calls_per_file"], "{:.2f}")
        report.figure(f"{name} 429s received", r["status_429"], "{}")
        report.figure(f"{name} done-to-downloaded p50/p95", f"{r['done_to_dl_p50']:.3f}/{r['done_to_dl_p95']:.3f}",
                      unit="s")
    for label in ("ocr-watch", "ocr-watch+callbacks"):
        if label in results:
            ow = results[label]
            report.note(f"{label}: {ow['files']} files, span {ow['span_s']:.1f} s (first API request to last "
                        f"download), {ow['creates']} creates, statuses {ow['statuses']}, {ow['quarantined']} "
                        f"quarantined, {ow['callbacks_missing']} callbacks missing, daemon exit {ow['exit']}")
            report.note(f"{label} config: {ow['config']}")
    report.note(f"vendor: {ven['files']} files one at a time, span {ven['span_s']:.1f} s, failed {ven['failed']}; "
                f"naive: {nai['files']} files, {args.max_in_flight} in flight, span {nai['span_s']:.1f} s, "
                f"failed {nai['failed']}; workloads ran {'sequentially' if args.sequential else 'concurrently'}, "
                "each against its own emulator process")
    report.print()
    return 1 if report.missed else 0


def report_ocr_watch(report: Report, label: str, ow: dict[str, Any], ven: dict[str, Any],
                     nai: dict[str, Any]) -> None:
    """One ocr-watch workload's figures, each beside its target, and as ratios to both baselines."""
    vendor_ratio = ow["files_per_min"] / ven["files_per_min"]
    naive_ratio = ow["files_per_min"] / nai["files_per_min"]
    report.figure(f"{label} files per minute", ow["files_per_min"], "{:.1f}", "files/min")
    report.figure(f"{label} vs vendor (rate ratio)", vendor_ratio, "{:.2f}", "x", ">= 3x", vendor_ratio >= 3)
    report.figure(f"{label} vs naive (rate ratio)", naive_ratio, "{:.2f}", "x", ">= 1.5x", naive_ratio >= 1.5)
    report.figure(f"{label} API calls per file", ow["calls_per_file"], "{:.2f}", "", "<= 2.6",
                  ow["calls_per_file"] <= 2.6)
    report.figure(f"{label} 429s received", ow["status_429"], "{}", "", "0", ow["status_429"] == 0)
    report.figure(f"{label} done-to-downloaded p50", ow["done_to_dl_p50"], "{:.3f}", "s", "<= 1.5 s",
                  ow["done_to_dl_p50"] <= 1.5)
    report.figure(f"{label} done-to-downloaded p95", ow["done_to_dl_p95"], "{:.3f}", "s")
    # The rest of the figures as ratios too: what each baseline's rate costs in calls and in
    # waiting (below 1: ocr-watch spends fewer calls, or its results wait less).
    for name, r in (("vendor", ven), ("naive", nai)):
        report.figure(f"{label} vs {name} (calls per file ratio)", ow["calls_per_file"] / r["calls_per_file"],
                      "{:.2f}", "x")
        if r["done_to_dl_p50"] > 0:
            report.figure(f"{label} vs {name} (done-to-downloaded p50 ratio)",
                          ow["done_to_dl_p50"] / r["done_to_dl_p50"], "{:.2f}", "x")
    report.figure(f"{label} achieved API req/s", ow["api_calls"] / ow["span_s"], "{:.2f}", "req/s")
    report.figure(f"{label} daemon CPU", ow["daemon_cpu_s"], "{:.1f}", "s")


def report_gateway(report: Report, label: str, ow: dict[str, Any], rps: float) -> None:
    """The strict-gateway targets (issue 19): no 429 at all, and 0.9 of what the quota allows."""
    calls_needed = 1 if label.endswith("callbacks") else 2
    floor = 0.9 * rps * 60 / calls_needed
    report.figure(f"{label} at the gateway: 429s", ow["status_429"], "{}", "", "0", ow["status_429"] == 0)
    report.figure(f"{label} at the gateway: files per minute", ow["files_per_min"], "{:.1f}", "files/min",
                  f">= {floor:g}", ow["files_per_min"] >= floor)
    if calls_needed == 2:
        report.figure(f"{label} at the gateway: API calls per file", ow["calls_per_file"], "{:.2f}", "",
                      "<= 2.2", ow["calls_per_file"] <= 2.2)
        report.figure(f"{label} at the gateway: done-to-downloaded p50", ow["done_to_dl_p50"], "{:.3f}", "s",
                      "<= 1.0 s", ow["done_to_dl_p50"] <= 1.0)
    gaps = ow.get("api_gaps_ms") or {}
    if gaps:
        report.figure(f"{label} at the gateway: closest two API requests", gaps["min"], "{:.1f}", "ms")
        report.note(f"{label}: gaps between API requests at the emulator (ms): min {gaps['min']:.1f}, "
                    f"p1 {gaps['p1']:.1f}, p50 {gaps['p50']:.1f}; below {1000 / rps:g} ms: {gaps['below']}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

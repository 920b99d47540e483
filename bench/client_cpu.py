"""The HTTP floor under capacity.py: CPU per file of the API client alone, no daemon.

    python bench/client_cpu.py                # 1,000 files, 64 at once
    python bench/client_cpu.py --files 60     # smoke
    python bench/client_cpu.py --bare-httpx   # and the same requests through plain httpx

Each file is what the daemon asks of the service: one create (multipart upload), one query
that finds it done, one result download (temp file, fsync, rename). Emulator instant and
unlimited, in its own process, so only this process's CPU is counted. No journal, no
watcher, no archive: what is left of capacity.py's CPU per file beyond this figure is the
daemon's own work. The first --warm files (connections, imports) are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import KEY, EmulatorProc, Report, png_bytes, proc_cpu_split

from ocr_watch.api import CreateOptions, PicWishClient
from ocr_watch.api.client import API_CONNECTIONS, RESULT_CONNECTIONS

One = Callable[[Path], Awaitable[None]]


async def run(base_url: str, sources: list[Path], out: Path, concurrency: int, warm: int) -> dict[str, float]:
    async with PicWishClient(base_url, KEY, requests_per_second=100_000.0) as client:
        async def one(source: Path) -> None:
            task_id = await client.create_task(source, CreateOptions())
            task = await client.get_task(task_id)
            assert task.is_done and task.file_url is not None, task
            await client.download_result(task.file_url, out / f"{source.stem}.txt")

        return await measure(one, sources, concurrency, warm)


async def run_bare(base_url: str, sources: list[Path], out: Path, concurrency: int, warm: int) -> dict[str, float]:
    """The same three requests through a plain httpx.AsyncClient and a plain file write: no
    ocr-watch code, no token bucket, no fsync. What httpx itself costs a file here."""
    # The client's pool sizes: httpx's default of 100 connections overruns the emulator.
    api_limits = httpx.Limits(max_connections=API_CONNECTIONS, max_keepalive_connections=API_CONNECTIONS)
    result_limits = httpx.Limits(max_connections=RESULT_CONNECTIONS, max_keepalive_connections=RESULT_CONNECTIONS)
    async with httpx.AsyncClient(base_url=base_url, headers={"X-API-KEY": KEY}, limits=api_limits) as api, \
            httpx.AsyncClient(limits=result_limits) as results:
        async def one(source: Path) -> None:
            answer = await api.post("/api/tasks/document/ocr", data={"format": "txt"},
                                    files={"image_file": (source.name, source.read_bytes(), "image/png")})
            task_id = answer.json()["data"]["task_id"]
            answer = await api.get(f"/api/tasks/document/ocr/{task_id}")
            result = await results.get(answer.json()["data"]["file"])
            (out / f"{source.stem}.txt").write_bytes(result.content)

        return await measure(one, sources, concurrency, warm)


async def measure(one: One, sources: list[Path], concurrency: int, warm: int) -> dict[str, float]:
    gate = asyncio.Semaphore(concurrency)

    async def gated(source: Path) -> None:
        async with gate:
            await one(source)

    await asyncio.gather(*(gated(p) for p in sources[:warm]))
    user0, sys0 = proc_cpu_split(os.getpid())
    t0 = time.monotonic()
    await asyncio.gather(*(gated(p) for p in sources[warm:]))
    elapsed = time.monotonic() - t0
    user1, sys1 = proc_cpu_split(os.getpid())
    counted = len(sources) - warm
    return {"rate": counted / elapsed, "user_ms": 1000 * (user1 - user0) / counted,
            "sys_ms": 1000 * (sys1 - sys0) / counted}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--warm", type=int, default=50, help="files run first and not counted")
    parser.add_argument("--concurrency", type=int, default=64, help="files between create and download at once")
    parser.add_argument("--bare-httpx", action="store_true",
                        help="also run the same requests through a plain httpx.AsyncClient: httpx's own cost")
    args = parser.parse_args()
    warm = min(args.warm, args.files // 2)
    report = Report(f"API client alone: create + query + download, {args.files - warm} files counted, "
                    f"{args.concurrency} at once, emulator instant and unlimited")
    with tempfile.TemporaryDirectory(prefix="ocr-bench-client-") as tmp, \
            EmulatorProc(rps=0, processing_seconds=0) as emu:
        sources = []
        for i in range(args.files):
            path = Path(tmp) / f"doc{i:05d}.png"
            path.write_bytes(png_bytes(i))
            sources.append(path)
        out = Path(tmp) / "out"
        out.mkdir()
        figures = asyncio.run(run(emu.base_url, sources, out, args.concurrency, warm))
        written = len(list(out.iterdir()))
        if args.bare_httpx:
            bare_out = Path(tmp) / "bare"
            bare_out.mkdir()
            bare = asyncio.run(run_bare(emu.base_url, sources, bare_out, args.concurrency, warm))
    report.figure("client CPU per file", figures["user_ms"] + figures["sys_ms"], "{:.2f}", "ms")
    report.figure("  of which user", figures["user_ms"], "{:.2f}", "ms")
    report.figure("  of which system", figures["sys_ms"], "{:.2f}", "ms")
    report.figure("files per second (one process, one core)", figures["rate"], "{:.1f}", "files/s")
    if args.bare_httpx:
        report.figure("plain httpx, same requests: CPU per file", bare["user_ms"] + bare["sys_ms"], "{:.2f}", "ms")
    report.note(f"{written} results written of {args.files}; compare with capacity.py's daemon CPU per file")
    report.print()
    return 0 if written == args.files else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

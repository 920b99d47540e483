"""How much does uploading a large file grow the uploader's peak memory?

The client must stream uploads, so growth should not depend on file size. Three
processes keep the figures honest: this driver, the emulator (its own subprocess, so
parsing 200 MB is not counted), and a fresh measuring child that imports the client,
records VmHWM, uploads once, and records VmHWM again.

    python bench/upload_memory.py --size-mb 200          # the benchmark
    python bench/upload_memory.py --size-mb 50 --json    # what tests/api runs
    python bench/upload_memory.py --size-mb 50 --buffered  # control: a read-it-all upload

Prints the figures and the command; exits 1 when growth reaches --max-growth-mb.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
KEY = "bench-key"

# The child: a fresh interpreter, so nothing the driver did inflates its high-water mark.
CHILD = r"""
import asyncio, json, pathlib, resource, sys

def hwm_kib():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

from ocr_watch.api import CreateOptions, PicWishClient

base_url, key, path, mode = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3]), sys.argv[4]

async def main():
    async with PicWishClient(base_url, key, requests_per_second=100.0) as client:
        before = hwm_kib()
        if mode == "buffered":  # the control: what a non-streaming upload would cost
            source = pathlib.Path(str(path) + ".copy.png")
            source.write_bytes(path.read_bytes())
        else:
            source = path
        task_id = await client.create_task(source, CreateOptions())
        after = hwm_kib()
        task = await client.get_task(task_id)
    return before, after, task_id, task.input_size

imports = hwm_kib()
before, after, task_id, received = asyncio.run(main())
print(json.dumps({"hwm_after_imports_kib": imports, "hwm_before_upload_kib": before,
                  "hwm_after_upload_kib": after, "task_id": task_id, "bytes_received": received}))
"""


def make_sparse_png(path: Path, size_bytes: int) -> None:
    """A PNG header then zeros, made in no time by extending the file sparsely."""
    with path.open("wb") as f:
        f.write(PNG_MAGIC)
        f.truncate(size_bytes)


def start_emulator(max_upload_mb: int) -> tuple[subprocess.Popen[str], str]:
    """Run the emulator in its own process; it prints its base URL as the first line."""
    cmd = [
        sys.executable, "-m", "ocr_watch.emulator", "--port", "0",
        "--max-upload-mb", str(max_upload_mb), "--key", KEY,
        "--processing-seconds", "0", "--rps", "0",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("http"):
        proc.kill()
        raise SystemExit(f"emulator did not print its base URL (got {line!r}): {shlex.join(cmd)}")
    return proc, line


def measure(size_mb: int, base_url: str | None, mode: str = "streamed") -> dict[str, Any]:
    emulator: subprocess.Popen[str] | None = None
    with tempfile.TemporaryDirectory(prefix="upload-memory-") as tmp:
        source = Path(tmp) / "big.png"
        make_sparse_png(source, size_mb * 1024 * 1024)
        if base_url is None:
            emulator, base_url = start_emulator(size_mb + 50)
        try:
            child = [sys.executable, "-c", CHILD, base_url, KEY, str(source), mode]
            done = subprocess.run(child, capture_output=True, text=True, timeout=600)
        finally:
            if emulator is not None:
                emulator.terminate()
                emulator.wait(timeout=10)
        if done.returncode != 0:
            raise SystemExit(f"measuring child failed:\n{done.stderr}")
        figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["size_mb"] = size_mb
    figures["mode"] = mode
    figures["growth_mib"] = round(
        (figures["hwm_after_upload_kib"] - figures["hwm_before_upload_kib"]) / 1024, 1
    )
    figures["growth_since_imports_mib"] = round(
        (figures["hwm_after_upload_kib"] - figures["hwm_after_imports_kib"]) / 1024, 1
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--max-growth-mb", type=float, default=50.0)
    parser.add_argument("--base-url", help="use a running emulator (its key must be bench-key)")
    parser.add_argument("--json", action="store_true", help="print one JSON line only")
    parser.add_argument(
        "--buffered", action="store_true",
        help="control run: read the whole file into memory first, to show the measurement sees it",
    )
    args = parser.parse_args()
    figures = measure(args.size_mb, args.base_url, "buffered" if args.buffered else "streamed")
    figures["command"] = shlex.join([sys.executable, *sys.argv])
    ok = figures["growth_mib"] < args.max_growth_mb
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"command:            {figures['command']}")
        print(f"uploaded:           {args.size_mb} MiB {figures['mode']}, emulator received "
              f"{figures['bytes_received']} bytes (task {figures['task_id']})")
        print(f"VmHWM after imports {figures['hwm_after_imports_kib'] / 1024:8.1f} MiB")
        print(f"VmHWM before upload {figures['hwm_before_upload_kib'] / 1024:8.1f} MiB")
        print(f"VmHWM after upload  {figures['hwm_after_upload_kib'] / 1024:8.1f} MiB")
        print(f"growth from upload  {figures['growth_mib']:8.1f} MiB (limit {args.max_growth_mb})")
        print(f"growth since imports{figures['growth_since_imports_mib']:8.1f} MiB")
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

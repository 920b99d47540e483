"""Uploads stream from disk: peak memory of the uploading process does not grow with file size.

Runs bench/upload_memory.py, which measures VmHWM in a fresh child process against an
emulator in another process. The 200 MB figure is measured by hand (see the bench's
docstring); the suite uses 50 MB, plus a buffered control to prove the probe can see it.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from typing import Any

BENCH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "upload_memory.py"
SIZE_MB = 50


def run_bench(*extra: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--size-mb", str(SIZE_MB), "--json", *extra],
        capture_output=True, text=True, timeout=90,
    )
    assert done.stdout, done.stderr
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["bytes_received"] == SIZE_MB * 1024 * 1024, "the emulator must get the whole file"
    return figures


def test_streamed_upload_does_not_grow_memory() -> None:
    """A 50 MB upload raises the uploader's peak memory by well under 50 MB."""
    figures = run_bench()
    assert figures["growth_mib"] < 50, figures
    assert figures["growth_mib"] < SIZE_MB / 5, figures


def test_probe_sees_a_buffered_upload() -> None:
    """Control: reading the file into memory first shows up as roughly its size."""
    figures = run_bench("--buffered", "--max-growth-mb", "1000")
    assert figures["growth_mib"] > SIZE_MB * 0.8, figures

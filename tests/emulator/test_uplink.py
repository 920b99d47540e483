"""The emulator's shared upload bandwidth (`--upload-bps`): one line for every connection."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from ocr_watch.emulator.cli import add_arguments, settings_from_args
from ocr_watch.emulator.uplink import Uplink

CREATE = "/api/tasks/document/ocr"
PNG = b"\x89PNG\r\n\x1a\n"


def test_pieces_from_any_connection_queue_on_one_line() -> None:
    now = [100.0]
    line = Uplink(1000.0, clock=lambda: now[0])
    assert line.carried(500) == 0.5  # an idle line: the piece's own time
    assert line.carried(500) == 1.0  # another connection's piece waits for the first
    now[0] = 105.0
    assert abs(line.carried(100) - 0.1) < 1e-9  # idle again: no debt carried over
    assert Uplink(0).carried(10**9) == 0.0  # 0: unlimited


def test_two_uploads_share_the_cap(make_emulator: Any) -> None:
    """Two 300 kB uploads at 1 MB/s together cannot be read in under 0.6 s."""
    emu = make_emulator(requests_per_second=0, upload_bytes_per_second=1_000_000)
    body = PNG + b"\0" * 300_000
    codes: list[int] = []

    def upload(name: str) -> None:
        with httpx.Client(base_url=emu.base_url, headers={"X-API-KEY": "emu-key"}, timeout=30) as c:
            codes.append(c.post(CREATE, files={"image_file": (name, body)}).status_code)

    started = time.monotonic()
    threads = [threading.Thread(target=upload, args=(f"{i}.png",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert codes == [200, 200]
    assert time.monotonic() - started >= 0.6
    emu.update(upload_bytes_per_second=0)  # live settings reach the line too
    assert emu.uplink.carried(10**9) == 0.0


def test_cli_flag() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert settings_from_args(parser.parse_args(["--upload-bps", "4000000"])).upload_bytes_per_second == 4e6

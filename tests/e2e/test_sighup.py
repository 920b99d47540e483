"""SIGHUP to a real `ocr-watch run`: a new rate limit changes the request rate the emulator
measures; a new format reaches the files dropped after it; a broken file changes nothing, says
what check-config says, and the daemon goes on processing."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ocr_watch.emulator import Emulator, render_result
from ocr_watch.testing import Daemon, Workspace, png_bytes, sha256, wait_for

pytestmark = pytest.mark.timeout(90)


def hup(daemon: Daemon, count: int) -> dict[str, Any]:
    """SIGHUP, then the `count`-th reload's outcome line (reloaded or refused)."""
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    outcomes = ("config_reloaded", "config_reload_refused")
    found = wait_for(lambda: [e for e in daemon.events() if e.get("event") in outcomes][count - 1:], 30,
                     what=f"reload #{count}")
    return found[0]


def api_times(emulator: Emulator, since: int) -> list[float]:
    """When each API-host request from the `since`-th on arrived."""
    return [float(r["t"]) for r in emulator.requests()[since:] if r["host"] == "api"]


def busiest_second(times: list[float]) -> int:
    return max(sum(1 for u in times if t <= u < t + 1.0) for t in times)


def drop_and_finish(workspace: Workspace, names: list[str], n0: int, ext: str = "txt") -> None:
    for n, name in enumerate(names):
        workspace.drop(f"{name}.png", png_bytes(n0 + n))
    wait_for(lambda: all((workspace.outbox / f"{name}.{ext}").exists() for name in names), 60, what="outputs")


def test_a_new_rate_limit_changes_the_measured_request_rate(
        workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator) -> None:
    """20/s: the busiest second holds 8 or more API calls. Reloaded to 3/s: the next files'
    calls are about 1/3 s apart (at least 0.2 s: arrival jitter on a busy machine), never 5 in a second."""
    emulator.update(processing_seconds=0.05)
    daemon = daemon_factory(workspace.write_config(api={"requests_per_second": 20})).start()
    daemon.wait_event("watching")
    drop_and_finish(workspace, [f"fast{n}" for n in range(8)], 0)
    fast = api_times(emulator, 0)
    assert busiest_second(fast) >= 8, fast

    seen = len(emulator.requests())
    workspace.write_config(api={"requests_per_second": 3})
    reloaded = hup(daemon, 1)
    assert reloaded["event"] == "config_reloaded" and reloaded["applied"] == ["api.requests_per_second"]
    drop_and_finish(workspace, [f"slow{n}" for n in range(4)], 100)
    slow = api_times(emulator, seen)
    assert len(slow) >= 8
    gaps = [b - a for a, b in itertools.pairwise(slow)]
    assert min(gaps) >= 0.2, gaps  # 1/3 s, less what a busy machine adds to one arrival and not the next
    assert busiest_second(slow) <= 4
    assert daemon.terminate() == 0


def test_a_new_format_and_log_level_reach_the_next_files(
        workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator) -> None:
    daemon = daemon_factory(workspace.write_config()).start()
    daemon.wait_event("watching")
    drop_and_finish(workspace, ["first"], 0)
    workspace.write_config(ocr={"format": "docx"}, on_success="keep", log_level="debug")
    assert set(hup(daemon, 1)["applied"]) == {"ocr.format", "on_success", "log_level"}
    data = png_bytes(1)
    workspace.drop("second.png", data)
    wait_for(lambda: (workspace.outbox / "second.docx").exists(), 30, what="the docx")
    assert (workspace.outbox / "second.docx").read_bytes() == render_result(sha256(data), "second.png", "docx")
    wait_for(lambda: daemon.wait_event("file_done", count=2), 30)
    assert (workspace.inbox / "second.png").exists()  # kept in place, as on_success now says
    assert sorted(t["format"] for t in emulator.tasks()) == ["docx", "txt"]
    # The log level too: debug lines for the second file only.
    assert [e["file"] for e in daemon.events() if e.get("event") == "file_hashed"] == ["second.png"]
    assert daemon.terminate() == 0


def test_a_broken_file_changes_nothing_and_the_daemon_goes_on(
        workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator) -> None:
    daemon = daemon_factory(workspace.write_config()).start()
    daemon.wait_event("watching")
    good = workspace.config_path.read_text()
    broken = good.replace("requests_per_second: 50", "requests_per_second: fast\n  reqests: 1")
    assert broken != good
    workspace.config_path.write_text(broken)
    check = subprocess.run([sys.executable, "-m", "ocr_watch", "check-config", "--config",
                            str(workspace.config_path)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 2
    said = [json.loads(line)["message"].removeprefix("config error: ") for line in check.stderr.splitlines()]

    refused = hup(daemon, 1)
    assert refused["event"] == "config_reload_refused" and refused["level"] == "error"
    assert refused["problems"] == said and len(said) == 2
    workspace.drop("after.png", png_bytes(7))
    wait_for(lambda: (workspace.outbox / "after.txt").exists(), 30, what="a file after the refused reload")
    assert daemon.proc is not None and daemon.proc.poll() is None
    # Fixed again, it reloads (nothing changed: nothing applied).
    workspace.config_path.write_text(good)
    fixed = hup(daemon, 2)
    assert fixed["event"] == "config_reloaded" and fixed["applied"] == []
    assert daemon.terminate() == 0


def test_a_shorter_poll_interval_takes_effect_at_once(
        workspace: Workspace, daemon_factory: Callable[[Path], Daemon]) -> None:
    """Polling every 60 s, reloaded to 0.2 s: a file dropped next is taken within seconds (the
    polling observer is restarted with the new interval, and the inbox scanned)."""
    slow = {"mode": "polling", "poll_interval_seconds": 60, "settle_seconds": 0.2, "rescan_seconds": 0}
    daemon = daemon_factory(workspace.write_config(watch=slow)).start()
    daemon.wait_event("watching")
    workspace.write_config(watch={**slow, "poll_interval_seconds": 0.2})
    assert hup(daemon, 1)["applied"] == ["watch.poll_interval_seconds"]
    workspace.drop("polled.png", png_bytes(3))
    wait_for(lambda: (workspace.outbox / "polled.txt").exists(), 10, what="the file, polled at the new interval")
    assert daemon.terminate() == 0

"""Against a strict gateway (one request per 1/rate per key, measured when its headers
arrive, no burst): a small load, and a restart right after kill -9, never get a 429."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ocr_watch.emulator import Emulator, render_result
from ocr_watch.testing import Daemon, Workspace, png_bytes, sha256, wait_for


def _api(emulator: Emulator) -> list[dict]:
    return [r for r in emulator.requests() if r["host"] == "api"]


def _outputs_are_right(workspace: Workspace, sources: dict[str, bytes]) -> None:
    for name, data in sources.items():
        expected = render_result(sha256(data), name, "txt")
        assert (workspace.outbox / name.replace(".png", ".txt")).read_bytes() == expected


def test_a_small_load_at_the_limit_gets_no_429(
    workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
) -> None:
    """12 files at 10 req/s, every call queued behind the limit: the gateway lets each through."""
    emulator.update(requests_per_second=10, limiter="gateway", processing_seconds=0.3)
    config = workspace.write_config(api={"requests_per_second": 10})
    sources = {f"doc{n:02d}.png": workspace.drop(f"doc{n:02d}.png", png_bytes(n)).read_bytes() for n in range(12)}
    daemon = daemon_factory(config).start()
    wait_for(lambda: len(workspace.files(workspace.outbox)) == 12, 60, what="12 outputs")
    assert daemon.terminate() == 0
    _outputs_are_right(workspace, sources)
    statuses = [r["status"] for r in _api(emulator)]
    assert len(statuses) >= 24  # a create and at least one query each, all spaced by the client
    assert 429 not in statuses and emulator.stats()["rate_limited"] == 0


def test_restart_right_after_kill_9_does_not_follow_the_last_call_too_closely(
    workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
) -> None:
    """Killed just after its call arrived, restarted at once with a new file waiting: the new
    process's first call still comes at least 1/rate after the old one's (a fresh bucket that
    started full sent it within the restart time and got a 429)."""
    emulator.update(requests_per_second=1, limiter="gateway", processing_seconds=0.2)
    config = workspace.write_config(api={"requests_per_second": 1})
    sources = {"first.png": workspace.drop("first.png", png_bytes(1)).read_bytes()}
    daemon = daemon_factory(config).start()
    wait_for(lambda: _api(emulator), 15, interval=0.005, what="the first process's first call")
    daemon.kill9()
    killed_at = max(r["t"] for r in _api(emulator))
    sources["second.png"] = workspace.drop("second.png", png_bytes(2)).read_bytes()
    daemon = daemon_factory(config).start()
    wait_for(lambda: len(_api(emulator)) >= 2, 15, interval=0.005, what="the new process's first call")
    first_after = min(r["t"] for r in _api(emulator) if r["t"] > killed_at)
    assert first_after - killed_at >= 1.0
    wait_for(lambda: len(workspace.files(workspace.outbox)) == 2, 30, what="both outputs")
    assert daemon.terminate() == 0
    _outputs_are_right(workspace, sources)
    assert 429 not in [r["status"] for r in _api(emulator)]

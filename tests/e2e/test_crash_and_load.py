"""The daemon under kill -9, under load at the rate limit, and started before the service."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ocr_watch.emulator import Emulator, EmulatorSettings, render_result
from ocr_watch.testing import (
    EMU_KEY,
    Daemon,
    Workspace,
    free_port,
    png_bytes,
    sha256,
    wait_for,
)

pytestmark = pytest.mark.slow


def _api_requests(emulator: Emulator) -> list[dict]:
    return [r for r in emulator.requests() if r["host"] == "api"]


@pytest.mark.timeout(300)
def test_kill_9_at_random_moments_loses_nothing_and_pays_at_most_once_more_per_kill(
    workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
) -> None:
    """100 files, 12 kills at random moments, restarted each time: every file ends in exactly one place."""
    emulator.update(processing_seconds=0.4, processing_jitter=0.5, requests_per_second=40)
    config = workspace.write_config(api={"requests_per_second": 40}, pool={"max_in_flight": 8})
    sources: dict[str, bytes] = {}
    for n in range(100):
        name = f"batch{n % 4}/doc{n:03d}.png" if n % 10 else f"batch{n % 4}/bad{n:03d}.png"
        data = png_bytes(n) if n % 10 else b"corrupt " + bytes([n])
        sources[name] = workspace.drop(name, data).read_bytes()
    rng = random.Random(20261124)
    kills = 12
    for _ in range(kills):
        daemon = daemon_factory(config).start()
        time.sleep(rng.uniform(0.4, 2.0))  # the random moment of the crash, not a synchronisation
        daemon.kill9()
    watching = sum(1 for e in daemon.events() if e.get("event") == "watching")
    daemon = daemon_factory(config).start()
    # The killed runs may have finished every file already; a SIGTERM sent before this run
    # has set up its signal handling would end it by the signal, not by a clean stop.
    daemon.wait_event("watching", count=watching + 1)
    wait_for(lambda: not workspace.files(workspace.inbox), 120, what="inbox drained")
    wait_for(lambda: len(workspace.files(workspace.archive)) + len(
        [f for f in workspace.files(workspace.quarantine) if not f.endswith(".error.json")]) == 100,
        60, what="every source in one place")
    assert daemon.terminate() == 0

    archived = set(workspace.files(workspace.archive))
    quarantined = {f for f in workspace.files(workspace.quarantine) if not f.endswith(".error.json")}
    assert archived | quarantined == set(sources), "every source is in archive or quarantine"
    assert not archived & quarantined, "no source is in both"
    assert quarantined == {n for n in sources if "/bad" in n}
    for name in quarantined:
        report = json.loads((workspace.quarantine / f"{name}.error.json").read_text())
        assert report["last_task_state"] == -7
    outputs = workspace.files(workspace.outbox)
    assert sorted(outputs) == sorted(n.replace(".png", ".txt") for n in archived), "one output per success"
    for name in archived:
        assert (workspace.archive / name).read_bytes() == sources[name]
        expected = render_result(sha256(sources[name]), Path(name).name, "txt")
        assert (workspace.outbox / name.replace(".png", ".txt")).read_bytes() == expected

    per_content = emulator.stats()["tasks_by_sha256"]
    extra = sum(count - 1 for count in per_content.values())
    assert set(per_content) == {sha256(d) for d in sources.values()}
    print(f"{kills} kills: {len(archived)} archived, {len(quarantined)} quarantined, "
          f"{extra} extra uploads, {emulator.stats()['credits_spent']} credits for {len(archived)} outputs")
    assert extra <= kills, f"{extra} extra uploads for {kills} kills"


@pytest.mark.timeout(240)
def test_200_files_at_10_requests_per_second_keep_the_rate_without_a_429(
    workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
) -> None:
    """The pool, not the daemon, is the bottleneck: the achieved rate is close to the limit."""
    emulator.update(processing_seconds=0.5, processing_jitter=0.3, requests_per_second=10)
    config = workspace.write_config(api={"requests_per_second": 10}, pool={"max_in_flight": 16},
                                    poll={"interval_seconds": 0.2})
    daemon = daemon_factory(config).start()
    daemon.wait_event("watching")
    for n in range(200):
        workspace.drop(f"f{n:03d}.png", png_bytes(n))
    wait_for(lambda: len(workspace.files(workspace.archive)) == 200, 180, interval=0.2, what="200 archived")
    assert daemon.terminate() == 0
    assert len(workspace.files(workspace.outbox)) == 200
    stats = emulator.stats()
    assert stats["rate_limited"] == 0
    assert stats["creates"] == 200
    calls = _api_requests(emulator)
    span = calls[-1]["t"] - calls[0]["t"]
    rate = (len(calls) - 1) / span
    print(f"achieved {rate:.2f} req/s over {span:.1f} s; {len(calls) / 200:.2f} API calls per file")
    assert 9.0 <= rate <= 10.5, f"achieved {rate:.2f} req/s against a limit of 10"


@pytest.mark.timeout(120)
def test_files_wait_while_the_service_is_down_and_go_when_it_is_back(
    tmp_path: Path, daemon_factory: Callable[[Path], Daemon]
) -> None:
    port = free_port()
    workspace = Workspace(tmp_path, f"http://127.0.0.1:{port}")
    workspace.inbox.mkdir()
    daemon = daemon_factory(workspace.write_config()).start()
    daemon.wait_event("watching")
    for n in range(5):
        workspace.drop(f"w{n}.png", png_bytes(n))
    daemon.wait_event("service_unreachable")
    assert workspace.files(workspace.quarantine) == []
    emulator = Emulator(EmulatorSettings(api_keys=(EMU_KEY,), processing_seconds=0.2), port=port).start()
    try:
        wait_for(lambda: len(workspace.files(workspace.archive)) == 5, 60, what="all archived after recovery")
        assert workspace.files(workspace.quarantine) == []
        assert emulator.stats()["creates"] == 5
    finally:
        assert daemon.terminate() == 0
        emulator.stop()

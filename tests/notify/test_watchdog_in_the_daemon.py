"""The watchdog inside a real `ocr-watch run` (in this process, so that its event loop can be
blocked and its observer thread killed from a test thread, as a bug or a crash would): the
pings stop while the loop is wedged, come back when it answers, and stop for good when the
watcher's thread dies (and the daemon then exits 70 for systemd to restart it)."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ocr_watch import cli, served
from ocr_watch.emulator import Emulator
from ocr_watch.testing import EMU_KEY, NotifyReceiver, restore_logging, wait_for
from ocr_watch.watch import InboxWatcher

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify, abstract sockets")]

WATCHDOG_USEC = 200_000  # a ping every 0.1 s


def test_a_wedged_loop_and_a_dead_observer_stop_the_pings(
        tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    receiver = NotifyReceiver(f"@ocr-watch-test-{tmp_path.name}-{time.monotonic_ns()}")
    monkeypatch.setenv("NOTIFY_SOCKET", receiver.address)
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    made: list[tuple[InboxWatcher, asyncio.AbstractEventLoop]] = []
    seen: dict[str, float] = {}

    class Recorded(InboxWatcher):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append((self, asyncio.get_running_loop()))  # built on the daemon's loop

        def stop(self) -> None:
            seen.setdefault("watcher_stopped", time.monotonic())  # the stop after watcher_died
            super().stop()

    monkeypatch.setattr(served, "InboxWatcher", Recorded)  # built per job there
    (tmp_path / "inbox").mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "folders": {"inbox": "inbox", "outbox": "outbox", "quarantine": "quarantine"},
        "api": {"base_url": emulator.base_url, "key": EMU_KEY},
        "watch": {"mode": "native", "rescan_seconds": 0},
    }))

    def pings() -> list[float]:
        return [t for t, v in receiver.values("WATCHDOG") if v == "1"]

    def meddle() -> None:
        receiver.wait("READY", "1", timeout=30)
        watcher, loop = made[0]
        wait_for(lambda: len(pings()) >= 3, 10, what="pings once ready")

        def wedge() -> None:
            seen["wedged"] = time.monotonic()
            time.sleep(1.0)  # the deliberate block: a blocking call on the daemon's loop
            seen["unwedged"] = time.monotonic()
        loop.call_soon_threadsafe(wedge)
        wait_for(lambda: [t for t in pings() if t > seen.get("unwedged", float("inf"))], 10,
                 what="a ping once the loop answers again")
        observer = watcher._observer
        assert observer is not None
        observer.stop()  # from outside, as a crash would end it
        observer.join(10)
        seen["dead"] = time.monotonic()

    helper = threading.Thread(target=meddle)
    helper.start()
    try:
        code = cli.main(["run", "--config", str(config)])
        seen["exited"] = time.monotonic()
    finally:
        helper.join(30)
        receiver.close()
        restore_logging()
    err = capsys.readouterr().err
    assert code == 70 and '"watcher_died"' in err
    assert "dead" in seen, "the helper did not get through"
    times = pings()
    interval = WATCHDOG_USEC / 2e6
    assert [t for t in times if seen["wedged"] + 1.5 * interval < t < seen["unwedged"]] == []
    # Until the daemon stops its watcher (closed on purpose: healthy again for the rest of the stop).
    assert seen["watcher_stopped"] - seen["dead"] > 0
    assert [t for t in times if seen["dead"] + 1.5 * interval < t < seen["watcher_stopped"]] == []
    assert '"watchdog_withheld"' in err
    assert receiver.values("STOPPING") and receiver.values("READY")


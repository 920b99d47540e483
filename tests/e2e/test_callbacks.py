"""Callbacks end to end: a real `ocr-watch run`, the emulator POSTing to the daemon's receiver."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ocr_watch.api.callbacks import callback_token
from ocr_watch.emulator import Emulator, render_result
from ocr_watch.testing import (
    EMU_KEY,
    Daemon,
    Workspace,
    free_port,
    png_bytes,
    sha256,
    wait_for,
)

pytestmark = pytest.mark.timeout(90)

FILES = 8


def run_with_callbacks(workspace: Workspace, daemon_factory: Callable[[Path], Daemon], *, url: str,
                       listen_port: int, fallback_seconds: float) -> Daemon:
    """Start a daemon with callbacks on, drop FILES files, wait until every one is finished
    with the emulator's exact result bytes, and stop it cleanly."""
    daemon = daemon_factory(workspace.write_config(callback={
        "url": url, "listen": f"127.0.0.1:{listen_port}", "fallback_seconds": fallback_seconds})).start()
    daemon.wait_event("watching")
    data = [png_bytes(i) for i in range(FILES)]
    for i, d in enumerate(data):
        workspace.drop(f"scan{i}.png", d)
    wait_for(lambda: len(workspace.files(workspace.archive)) == FILES, 40, what="every source archived")
    for i, d in enumerate(data):
        assert (workspace.outbox / f"scan{i}.txt").read_bytes() == render_result(sha256(d), f"scan{i}.png", "txt")
    assert daemon.terminate() == 0
    return daemon


def test_with_callbacks_a_file_costs_one_api_call(
    workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
) -> None:
    """Every task is settled by its callback: one create per file, no query, every result whole."""
    port = free_port()
    daemon = run_with_callbacks(workspace, daemon_factory, url=f"http://127.0.0.1:{port}/ocr/cb",
                                listen_port=port, fallback_seconds=30)
    stats = emulator.stats()
    assert (stats["creates"], stats["queries"], stats["callbacks_failed"]) == (FILES, 0, 0)
    assert stats["callbacks_sent"] >= FILES
    callback_urls = {t["callback_url"] for t in emulator.tasks()}
    assert callback_urls == {f"http://127.0.0.1:{port}/ocr/cb?ocrw={callback_token(EMU_KEY)}"}
    log = workspace.root.joinpath("daemon.log").read_text()
    assert callback_token(EMU_KEY) not in log and EMU_KEY not in log
    assert not [e for e in daemon.events() if e.get("event") == "callback_missing"]


def test_callbacks_that_never_arrive_are_covered_by_the_fallback_query(
    workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
) -> None:
    """callback.url leads nowhere (a proxy misconfigured): every file still finishes, by a
    query after callback.fallback_seconds, and the log says callbacks are missing."""
    port, nowhere = free_port(), free_port()
    daemon = run_with_callbacks(workspace, daemon_factory, url=f"http://127.0.0.1:{nowhere}/cb",
                                listen_port=port, fallback_seconds=0.5)
    stats = emulator.stats()
    assert stats["creates"] == FILES and stats["queries"] >= FILES and stats["callbacks_failed"] >= FILES
    assert len([e for e in daemon.events() if e.get("event") == "callback_missing"]) == FILES


@pytest.mark.parametrize(("family", "host", "shown"), [
    (socket.AF_INET, "127.0.0.1", "127.0.0.1:{port}"),
    (socket.AF_INET6, "::1", "[::1]:{port}"),
], ids=["ipv4", "ipv6"])
def test_a_taken_listen_port_stops_start_up_naming_the_key(
        workspace: Workspace, family: socket.AddressFamily, host: str, shown: str) -> None:
    with socket.socket(family) as taken:
        try:
            taken.bind((host, 0))
        except OSError as exc:
            pytest.skip(f"no {host} here: {exc}")
        taken.listen()
        port = taken.getsockname()[1]
        listen = shown.format(port=port)
        config = workspace.write_config(
            callback={"url": f"http://{listen}/cb", "listen": listen, "fallback_seconds": 5})
        done = subprocess.run([sys.executable, "-m", "ocr_watch", "run", "--config", str(config)],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"callback.listen: cannot listen on {listen}:" in done.stderr

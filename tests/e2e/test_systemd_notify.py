"""`ocr-watch run` under a stand-in for systemd: the notify socket (READY, STATUS, WATCHDOG at
the asked interval, RELOADING/READY around a SIGHUP, STOPPING), and the log lines journald
reads (the version and pid at start, each line's logger, `<N>` priorities on the journal's
own stream only). The blocked loop and the dead observer are in tests/notify/."""

from __future__ import annotations

import itertools
import json
import os
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ocr_watch.emulator import Emulator
from ocr_watch.testing import Daemon, NotifyReceiver, Workspace, png_bytes, wait_for
from ocr_watch.version import version

pytestmark = pytest.mark.timeout(90)

WATCHDOG_USEC = 400_000  # pings every 0.2 s


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifyReceiver]:
    """A socket at a path (as systemd gives one), named to the daemon in NOTIFY_SOCKET."""
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:  # short: a socket path has 108 bytes
        made = NotifyReceiver(os.path.join(folder, "notify"))
        monkeypatch.setenv("NOTIFY_SOCKET", made.address)
        monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
        yield made
        made.close()


def test_ready_status_watchdog_reload_and_stopping(
        workspace: Workspace, daemon_factory: Callable[[Path], Daemon], receiver: NotifyReceiver,
        emulator: Emulator) -> None:
    daemon = daemon_factory(workspace.write_config()).start()
    receiver.wait("READY", "1")
    # Ready means the watcher runs: its line was written before READY was sent.
    assert [e for e in daemon.events() if e.get("event") == "watching"]
    (starting,) = daemon.wait_event("starting")
    assert starting["version"] == version() and starting["pid"] == daemon.pid
    assert starting["logger"] == "ocr_watch.daemon"

    workspace.drop("a.png", png_bytes(1))
    wait_for(lambda: (workspace.outbox / "a.txt").exists(), 30, what="the output")
    receiver.wait("STATUS", "0 in flight, 0 waiting, 1 done, 0 quarantined")

    first_ping = receiver.wait("WATCHDOG", "1")
    receiver.wait("WATCHDOG", "1", count=11)
    pings = [t for t, v in receiver.values("WATCHDOG") if v == "1" and t >= first_ping]
    gaps = sorted(b - a for a, b in itertools.pairwise(pings))
    assert 0.15 <= gaps[len(gaps) // 2] <= 0.3, gaps  # half of WATCHDOG_USEC

    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_event("config_reloaded")
    reloading = receiver.wait("RELOADING", "1")
    assert receiver.wait("READY", "1", count=2) >= reloading
    assert next(v for _, v in receiver.values("MONOTONIC_USEC")).isdigit()

    assert daemon.terminate() == 0
    assert receiver.values("STOPPING") == [(receiver.values("STOPPING")[0][0], "1")]
    assert all("logger" in e for e in daemon.events()), "a line without its logger"


def test_lines_carry_journald_priorities_only_on_the_journals_own_stream(
        workspace: Workspace, daemon_factory: Callable[[Path], Daemon], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """JOURNAL_STREAM naming stderr's dev:ino: every line starts with `<N>` (a warning `<4>`)."""
    log = tmp_path / "daemon.log"
    log.touch()
    st = log.stat()
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    config = workspace.write_config(log_level="debug")
    daemon = daemon_factory(config).start()
    wait_for(lambda: '"watching"' in log.read_text(), 30, what="the watcher")
    # A change that needs a restart is a warning; the reload itself is info.
    workspace.write_config(log_level="debug", folders={"outbox": "outbox2"})
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: '"config_reloaded"' in log.read_text(), 30, what="the reload")
    assert daemon.terminate() == 0
    rows = log.read_text().splitlines()
    parsed = [(row[:3], json.loads(row[3:])) for row in rows]
    priority = {"debug": "<7>", "info": "<6>", "warning": "<4>", "error": "<3>"}
    assert all(prefix == priority[event["level"]] for prefix, event in parsed), rows
    assert {event["event"]: prefix for prefix, event in parsed}["config_reload_needs_restart"] == "<4>"
    assert {event["level"] for _, event in parsed} >= {"debug", "info", "warning"}


def test_a_journal_stream_that_is_not_stderr_adds_nothing(
        workspace: Workspace, daemon_factory: Callable[[Path], Daemon], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Inherited JOURNAL_STREAM, stderr redirected elsewhere (a file): plain JSON lines."""
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    daemon = daemon_factory(workspace.write_config()).start()
    daemon.wait_event("watching")
    assert daemon.terminate() == 0
    assert all(e["event"] != "unparsed" for e in daemon.events())


def test_a_refusal_to_start_is_an_error_on_the_journal(tmp_path: Path) -> None:
    """A bad config, stderr being the journal: the config_error line starts with `<3>`."""
    import subprocess
    import sys

    config = tmp_path / "bad.yaml"
    config.write_text("folders: {inbox: in, outbox: out, quarantine: q}\npool: {max_in_flight: many}\n")
    with (tmp_path / "stderr").open("w+") as err:
        st = os.fstat(err.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}", "PICWISH_API_KEY": "k" * 20}
        code = subprocess.run([sys.executable, "-m", "ocr_watch", "run", "--config", str(config)], stderr=err,
                              env=env, timeout=30).returncode
        err.seek(0)
        rows = err.read().splitlines()
    assert code == 2
    assert rows and all(row.startswith("<3>{") for row in rows), rows
    assert json.loads(rows[0][3:])["event"] == "config_error"

"""One daemon per state_dir and per inbox: a second `run` or `once` exits 75 naming the holder.

Real `ocr-watch` subprocesses on real folders, the emulator counting every create: two daemons
on one journal, or on one inbox, would pay for files twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ocr_watch.emulator import Emulator
from ocr_watch.testing import Daemon, Workspace, png_bytes, sha256, wait_for

pytestmark = pytest.mark.timeout(150)

EXIT_BUSY = 75


@pytest.fixture
def second_daemons(tmp_path: Path) -> Iterator[Callable[[Path, str], Daemon]]:
    """Daemons with a log of their own (the second one's stderr is what the test reads)."""
    made: list[Daemon] = []

    def make(config: Path, name: str) -> Daemon:
        daemon = Daemon(config, tmp_path / f"{name}.log")
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.stop_quietly()


def exit_code(daemon: Daemon, timeout: float = 30.0) -> int:
    """The exit code of a daemon that must stop by itself (a second one: at once)."""
    proc = daemon.proc
    assert proc is not None
    wait_for(lambda: proc.poll() is not None, timeout, what="the second daemon to exit")
    return proc.returncode


def stderr_of(daemon: Daemon) -> str:
    return daemon.log_path.read_text(errors="replace")


def derived_config(workspace: Workspace, name: str, **changes: Any) -> Path:
    """A copy of the workspace's config with top-level or folder keys changed."""
    config = yaml.safe_load(workspace.config_path.read_text())
    for key, value in changes.items():
        if key in ("inbox", "outbox", "quarantine", "archive"):
            config["folders"][key] = value
        else:
            config[key] = value
    path = workspace.root / name
    path.write_text(yaml.safe_dump(config))
    return path


def drop_many(workspace: Workspace, prefix: str, numbers: range) -> dict[str, bytes]:
    dropped = {}
    for n in numbers:
        data = png_bytes(n)
        workspace.drop(f"{prefix}{n}.png", data)
        dropped[f"{prefix}{n}.png"] = data
    return dropped


def assert_paid_once(emulator: Emulator, dropped: dict[str, bytes]) -> None:
    stats = emulator.stats()
    assert stats["create_requests"] == len(dropped)
    assert stats["tasks_by_sha256"] == {sha256(data): 1 for data in dropped.values()}


def test_the_same_config_twice_the_second_exits_75_naming_the_state_dir_and_pid(
    workspace: Workspace, emulator: Emulator, second_daemons: Callable[[Path, str], Daemon]
) -> None:
    first = second_daemons(workspace.write_config(), "first").start()
    first.wait_event("watching", 30)
    dropped = drop_many(workspace, "a", range(10))
    second = second_daemons(workspace.config_path, "second").start()
    assert exit_code(second) == EXIT_BUSY
    state_dir = workspace.root.resolve() / ".ocr-watch" / "inbox"
    assert first.proc is not None
    message = stderr_of(second)
    assert f"(pid {first.proc.pid})" in message and f"state_dir {state_dir};" in message, message
    assert "not starting" in message
    dropped |= drop_many(workspace, "b", range(10, 20))
    wait_for(lambda: len(workspace.files(workspace.archive)) == 20, 60, what="20 files archived")
    assert len(workspace.files(workspace.outbox)) == 20
    assert workspace.files(workspace.quarantine) == []
    assert_paid_once(emulator, dropped)
    assert first.terminate() == 0


def test_two_state_dirs_on_one_inbox_the_second_exits_75_naming_the_inbox(
    workspace: Workspace, emulator: Emulator, second_daemons: Callable[[Path, str], Daemon]
) -> None:
    first = second_daemons(workspace.write_config(), "first").start()
    first.wait_event("watching", 30)
    dropped = drop_many(workspace, "a", range(8))
    other = derived_config(workspace, "other.yaml", state_dir="other-state", outbox="outbox2")
    second = second_daemons(other, "second").start()
    assert exit_code(second) == EXIT_BUSY
    assert first.proc is not None
    message = stderr_of(second)
    assert f"(pid {first.proc.pid})" in message and f"inbox {workspace.inbox.resolve()};" in message, message
    dropped |= drop_many(workspace, "b", range(8, 16))
    wait_for(lambda: len(workspace.files(workspace.archive)) == 16, 60, what="16 files archived")
    assert len(workspace.files(workspace.outbox)) == 16
    assert not (workspace.root / "outbox2").exists() or workspace.files(workspace.root / "outbox2") == []
    assert_paid_once(emulator, dropped)
    assert first.terminate() == 0


def test_once_while_run_holds_the_lock_exits_75(
    workspace: Workspace, emulator: Emulator, second_daemons: Callable[[Path, str], Daemon]
) -> None:
    first = second_daemons(workspace.write_config(), "first").start()
    first.wait_event("watching", 30)
    once = subprocess.run([sys.executable, "-m", "ocr_watch", "once", "--config", str(workspace.config_path)],
                          capture_output=True, timeout=60)
    assert once.returncode == EXIT_BUSY
    assert first.proc is not None
    assert f"another ocr-watch (pid {first.proc.pid})".encode() in once.stderr, once.stderr
    assert emulator.stats()["create_requests"] == 0
    assert first.terminate() == 0


def test_check_config_takes_no_lock(
    workspace: Workspace, second_daemons: Callable[[Path, str], Daemon]
) -> None:
    first = second_daemons(workspace.write_config(), "first").start()
    first.wait_event("watching", 30)
    check = subprocess.run([sys.executable, "-m", "ocr_watch", "check-config", "--config", str(workspace.config_path)],
                           capture_output=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert first.terminate() == 0


def test_the_lock_is_released_on_sigterm_and_on_kill_9(
    workspace: Workspace, emulator: Emulator, second_daemons: Callable[[Path, str], Daemon]
) -> None:
    workspace.write_config()
    lock_file = workspace.root / ".ocr-watch" / "inbox" / "lock"
    first = second_daemons(workspace.config_path, "first").start()
    first.wait_event("watching", 30)
    assert first.terminate() == 0

    after_term = second_daemons(workspace.config_path, "after-term").start()
    after_term.wait_event("watching", 30)
    assert after_term.proc is not None
    assert lock_file.read_text().strip() == str(after_term.proc.pid)
    dropped = drop_many(workspace, "t", range(2))
    wait_for(lambda: len(workspace.files(workspace.archive)) == 2, 60, what="2 files archived")
    after_term.kill9()

    after_kill = second_daemons(workspace.config_path, "after-kill").start()
    after_kill.wait_event("watching", 30)
    assert after_kill.proc is not None
    assert lock_file.read_text().strip() == str(after_kill.proc.pid)
    dropped |= drop_many(workspace, "k", range(2, 4))
    wait_for(lambda: len(workspace.files(workspace.archive)) == 4, 60, what="4 files archived")
    # The lock after a kill -9 restart is a real one: a third start is refused.
    once = subprocess.run([sys.executable, "-m", "ocr_watch", "once", "--config", str(workspace.config_path)],
                          capture_output=True, timeout=60)
    assert once.returncode == EXIT_BUSY
    assert f"(pid {after_kill.proc.pid})".encode() in once.stderr
    assert after_kill.terminate() == 0
    assert_paid_once(emulator, dropped)


def test_sibling_inboxes_without_state_dir_run_side_by_side(
    workspace: Workspace, emulator: Emulator, second_daemons: Callable[[Path, str], Daemon]
) -> None:
    workspace.write_config()
    one = derived_config(workspace, "one.yaml", inbox="in1", outbox="out1", quarantine="q1")
    two = derived_config(workspace, "two.yaml", inbox="in2", outbox="out2", quarantine="q2")
    root = workspace.root
    daemon_one = second_daemons(one, "one").start()
    daemon_two = second_daemons(two, "two").start()
    daemon_one.wait_event("watching", 30)
    daemon_two.wait_event("watching", 30)
    dropped: dict[str, bytes] = {}
    for n in range(6):
        for inbox, base in (("in1", 100), ("in2", 200)):
            data = png_bytes(base + n)
            (root / inbox / f"s{n}.png").write_bytes(data)
            dropped[f"{inbox}/s{n}.png"] = data
    wait_for(lambda: len(workspace.files(root / "out1")) == 6 and len(workspace.files(root / "out2")) == 6,
             60, what="6 outputs in each outbox")
    assert daemon_one.proc is not None and daemon_two.proc is not None
    assert daemon_one.proc.poll() is None and daemon_two.proc.poll() is None
    assert workspace.files(root / "q1") == [] and workspace.files(root / "q2") == []
    for name in ("in1", "in2"):
        state_dir = root / ".ocr-watch" / name
        assert (state_dir / "journal.sqlite3").is_file()
        assert json.loads((state_dir / "owner.json").read_text()) == {"inbox": str((root / name).resolve())}
    assert not (root / ".ocr-watch" / "journal.sqlite3").exists()
    assert_paid_once(emulator, dropped)
    assert daemon_one.terminate() == 0 and daemon_two.terminate() == 0


def test_a_state_dir_serving_another_inbox_stops_start_up_with_exit_2(
    workspace: Workspace, emulator: Emulator, second_daemons: Callable[[Path, str], Daemon]
) -> None:
    workspace.write_config(state_dir="state")
    first = second_daemons(workspace.config_path, "first").start()
    first.wait_event("watching", 30)
    assert first.terminate() == 0
    other = derived_config(workspace, "other.yaml", inbox="inbox2", outbox="out2", quarantine="q2")
    (workspace.root / "inbox2").mkdir()
    (workspace.root / "inbox2" / "x.png").write_bytes(png_bytes(1))
    run = subprocess.run([sys.executable, "-m", "ocr_watch", "once", "--config", str(other)],
                         capture_output=True, timeout=60)
    assert run.returncode == 2
    message = run.stderr.decode(errors="replace")
    assert str(workspace.inbox.resolve()) in message and str((workspace.root / "inbox2").resolve()) in message
    assert "state_dir:" in message
    assert emulator.stats()["create_requests"] == 0
    assert (workspace.root / "inbox2" / "x.png").exists()


def test_a_journal_at_the_old_shared_default_keeps_being_used(
    workspace: Workspace, emulator: Emulator
) -> None:
    """An install from before (journal in <inbox>/../.ocr-watch, no owner record) keeps its journal:
    a file kept in place is recognised, not paid for again; a sibling inbox gets its own state_dir."""
    def once(config: Path) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "ocr_watch", "once", "--config", str(config)],
                              capture_output=True, timeout=60)

    old = workspace.write_config(on_success="keep", state_dir=".ocr-watch")
    data = png_bytes(7)
    workspace.drop("kept.png", data)
    assert once(old).returncode == 0
    assert emulator.stats()["create_requests"] == 1
    (workspace.root / ".ocr-watch" / "owner.json").unlink()  # as an old version left it

    upgraded = derived_config(workspace, "upgraded.yaml", state_dir=None)
    result = once(upgraded)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.decode().splitlines() if line.startswith("{")]
    [note] = [e for e in events if e.get("event") == "state_dir_old_default"]
    assert note["state_dir"] == str((workspace.root / ".ocr-watch").resolve())
    assert emulator.stats()["create_requests"] == 1  # the journal knew kept.png
    assert workspace.files(workspace.inbox) == ["kept.png"]

    sibling = derived_config(workspace, "sibling.yaml", state_dir=None, inbox="in2", outbox="out2",
                             quarantine="q2")
    (workspace.root / "in2").mkdir()
    (workspace.root / "in2" / "s.png").write_bytes(png_bytes(8))
    result = once(sibling)
    assert result.returncode == 0, result.stderr
    assert (workspace.root / ".ocr-watch" / "in2" / "journal.sqlite3").is_file()
    assert emulator.stats()["create_requests"] == 2
    assert workspace.files(workspace.root / "out2") == ["s.txt"]

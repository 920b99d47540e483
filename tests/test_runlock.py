"""The run lock and the state_dir's owner record, in process (the e2e file runs real daemons)."""

from __future__ import annotations

import configparser
import errno
import fcntl
import json
import os
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ocr_watch import runlock
from ocr_watch.config import ConfigError, default_state_dir, read_owner

pytestmark = pytest.mark.timeout(10)


def folders(tmp_path: Path) -> tuple[Path, Path]:
    state_dir, inbox = tmp_path / "state", tmp_path / "inbox"
    state_dir.mkdir()
    inbox.mkdir()
    return state_dir, inbox


def test_a_second_lock_on_the_state_dir_is_refused_naming_the_holder(tmp_path: Path) -> None:
    state_dir, inbox = folders(tmp_path)
    with runlock.acquire(state_dir, inbox):
        assert (state_dir / "lock").read_text() == f"{os.getpid()}\n"
        assert (state_dir / "lock").stat().st_mode & 0o777 == 0o600
        with pytest.raises(runlock.Busy) as info:
            runlock.acquire(state_dir, inbox)  # flock locks per open file: this process conflicts too
    assert info.value.what == "state_dir" and info.value.pid == os.getpid()
    assert str(info.value) == f"another ocr-watch (pid {os.getpid()}) is already using state_dir {state_dir}"
    runlock.acquire(state_dir, inbox).release()  # released: free again


def test_a_second_state_dir_on_the_same_inbox_is_refused_and_holds_nothing(tmp_path: Path) -> None:
    state_dir, inbox = folders(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    with runlock.acquire(state_dir, inbox):
        with pytest.raises(runlock.Busy) as info:
            runlock.acquire(other, inbox)
        assert info.value.what == "inbox" and info.value.pid == os.getpid()  # found in /proc/locks
        assert "is already watching inbox" in str(info.value)
        # The refused attempt let go of other's lock: another inbox can use it now.
        inbox2 = tmp_path / "inbox2"
        inbox2.mkdir()
        runlock.acquire(other, inbox2).release()
    assert list(inbox.iterdir()) == []  # nothing written into the user's inbox


def test_a_filesystem_without_flock_is_logged_and_not_locked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state_dir, inbox = folders(tmp_path)

    def no_locks(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with capture_logs() as logged:
        runlock.acquire(state_dir, inbox).release()
    assert [(e["event"], e["what"]) for e in logged] == [("lock_unsupported", "state_dir"),
                                                         ("lock_unsupported", "inbox")]


def test_an_inbox_that_cannot_be_opened_is_a_config_problem(tmp_path: Path) -> None:
    state_dir, _ = folders(tmp_path)
    with pytest.raises(ConfigError) as info:
        runlock.acquire(state_dir, tmp_path / "missing")
    assert info.value.problems[0].startswith("folders.inbox: cannot open")


def test_the_state_dir_records_its_inbox_and_refuses_another(tmp_path: Path) -> None:
    state_dir, inbox = folders(tmp_path)
    runlock.claim_state_dir(state_dir, inbox)
    runlock.claim_state_dir(state_dir, inbox)  # the same inbox again: fine
    assert read_owner(state_dir) == inbox
    with pytest.raises(ConfigError) as info:
        runlock.claim_state_dir(state_dir, tmp_path / "elsewhere")
    [problem] = info.value.problems
    assert problem.startswith("state_dir:") and str(inbox) in problem and str(tmp_path / "elsewhere") in problem


def test_an_inbox_name_in_any_bytes_round_trips(tmp_path: Path) -> None:
    state_dir, _ = folders(tmp_path)
    inbox = Path(os.fsdecode(bytes(tmp_path) + b"/in\xff\xfebox"))
    runlock.claim_state_dir(state_dir, inbox)
    assert read_owner(state_dir) == inbox


def test_an_unreadable_owner_record_stops_start_up(tmp_path: Path) -> None:
    state_dir, inbox = folders(tmp_path)
    (state_dir / "owner.json").write_text("{not json")
    with pytest.raises(ConfigError) as info:
        runlock.claim_state_dir(state_dir, inbox)
    assert "owner.json" in info.value.problems[0]


class TestDefaultStateDir:
    def test_one_per_inbox_under_the_shared_folder(self, tmp_path: Path) -> None:
        assert default_state_dir(tmp_path / "a") == (tmp_path / ".ocr-watch" / "a", False)
        assert default_state_dir(tmp_path / "b") == (tmp_path / ".ocr-watch" / "b", False)

    def old_journal(self, tmp_path: Path, **owner: Any) -> Path:
        shared = tmp_path / ".ocr-watch"
        shared.mkdir()
        (shared / "journal.sqlite3").write_bytes(b"")
        if owner:
            (shared / "owner.json").write_text(json.dumps(owner))
        return shared

    def test_a_journal_at_the_old_default_is_kept(self, tmp_path: Path) -> None:
        shared = self.old_journal(tmp_path)
        assert default_state_dir(tmp_path / "a") == (shared, True)

    def test_the_old_default_claimed_by_another_inbox_is_left_to_it(self, tmp_path: Path) -> None:
        shared = self.old_journal(tmp_path, inbox=str(tmp_path / "a"))
        assert default_state_dir(tmp_path / "a") == (shared, True)
        assert default_state_dir(tmp_path / "b") == (shared / "b", False)


def test_the_systemd_unit_retries_exit_75() -> None:
    """A second daemon's 75 is temporary: the unit restarts on it and does not prevent it."""
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(Path(__file__).resolve().parents[1] / "systemd" / "ocr-watch.service")
    assert unit["Service"]["Restart"] in ("on-failure", "always")
    assert "75" not in unit["Service"].get("RestartPreventExitStatus", "").split()


def test_every_jobs_inbox_is_locked_and_recorded(tmp_path: Path) -> None:
    """With jobs, each job's inbox is locked (a second daemon on any of them is refused) and the
    owner record names them all; the same configuration with a job added or removed still owns
    its state_dir, another configuration does not."""
    from ocr_watch.config import read_owners

    state_dir, inbox = folders(tmp_path)
    more = [tmp_path / "jobs-b", tmp_path / "jobs-c"]
    for folder in more:
        folder.mkdir()
    other = tmp_path / "other-state"
    other.mkdir()
    with runlock.acquire(state_dir, inbox, others={"jobs.b.folders.inbox": more[0],
                                                   "jobs.c.folders.inbox": more[1]}):
        with pytest.raises(runlock.Busy) as info:
            runlock.acquire(other, more[1])
        assert info.value.what == "inbox"
    runlock.claim_state_dir(state_dir, inbox, others=tuple(more))
    assert read_owners(state_dir) == [inbox, *more]
    runlock.claim_state_dir(state_dir, more[0])  # jobs removed: a recorded inbox is still ours
    assert read_owners(state_dir) == [more[0]]
    with pytest.raises(ConfigError):
        runlock.claim_state_dir(state_dir, tmp_path / "elsewhere")

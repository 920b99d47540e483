"""The read-only doors status uses: the journal reader and the lock's holder (issue 17)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from ocr_watch import runlock
from ocr_watch.journal import Journal
from ocr_watch.journal.reader import read_counts, read_snapshot


def test_a_journal_not_there_or_still_empty_reads_as_zero_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    assert read_snapshot(path).exists is False
    assert not path.exists()
    path.touch()  # what the daemon has made the instant before its schema
    assert set(read_counts(path).values()) == {0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.sqlite3"]


def test_a_journal_closed_cleanly_is_read_without_leaving_a_wal_or_shm(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite3")
    journal.note("credits_left", "12")
    journal.close()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert read_snapshot(tmp_path / "journal.sqlite3").credits_left == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_file_that_is_not_a_journal_is_an_error_for_status_to_report(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    path.write_bytes(b"not a database, just bytes" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        read_snapshot(path)


def test_the_holder_is_found_without_taking_the_lock_or_making_its_file(tmp_path: Path) -> None:
    state, inbox = tmp_path / "state", tmp_path / "inbox"
    state.mkdir()
    inbox.mkdir()
    assert runlock.holder(state) is None
    assert not (state / runlock.LOCK_FILE).exists()
    with runlock.acquire(state, inbox):
        assert runlock.holder(state) == os.getpid()
    assert runlock.holder(state) is None
    with runlock.acquire(state, inbox):  # holder() took nothing that could refuse this
        pass

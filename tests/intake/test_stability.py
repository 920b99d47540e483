"""Tests for ocr_watch.intake.stability: the settle tracker on a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocr_watch.intake.identity import FileStamp
from ocr_watch.intake.stability import SettleTracker

A, B = Path("/in/a.pdf"), Path("/in/b.pdf")


def st(size: int, mtime: int = 0) -> FileStamp:
    return FileStamp(size=size, mtime_ns=mtime, inode=1, dev=1)


class FakeDisk:
    """What restat sees: a dict of stamps; missing paths raise FileNotFoundError."""

    def __init__(self) -> None:
        self.stamps: dict[Path, FileStamp] = {}
        self.errors: dict[Path, OSError] = {}

    def __call__(self, path: Path) -> FileStamp:
        if path in self.errors:
            raise self.errors[path]
        if path not in self.stamps:
            raise FileNotFoundError(path)
        return self.stamps[path]


class TestEventsOnly:
    """restat=None: decisions from the reports alone."""

    def test_closed_is_ready_at_once(self) -> None:
        """A file reported closed is due immediately."""
        t = SettleTracker(2.0, restat=None)
        t.seen(A, st(10), now=100.0, closed=True)
        assert t.next_deadline() == 100.0
        assert t.due(100.0) == [A]
        assert len(t) == 0 and t.next_deadline() is None

    def test_unclosed_waits_settle_seconds(self) -> None:
        """An unclosed file is due only once its stamp stayed the same for settle_seconds."""
        t = SettleTracker(2.0, restat=None)
        t.seen(A, st(10), now=100.0)
        assert t.next_deadline() == 102.0
        assert t.due(101.9) == []
        t.seen(A, st(10), now=101.0)  # same stamp: the deadline does not move
        assert t.next_deadline() == 102.0
        assert t.due(102.0) == [A]

    def test_change_restarts_the_clock(self) -> None:
        """A new size or mtime pushes the deadline to now + settle_seconds."""
        t = SettleTracker(2.0, restat=None)
        t.seen(A, st(10), now=100.0)
        t.seen(A, st(20), now=101.5)
        assert t.next_deadline() == 103.5
        assert t.due(102.0) == []
        t.seen(A, st(20, mtime=5), now=103.0)
        assert t.due(103.5) == []
        assert t.due(105.0) == [A]

    def test_closed_after_writes_is_ready(self) -> None:
        """A close-after-write report makes a settling file ready at once."""
        t = SettleTracker(60.0, restat=None)
        t.seen(A, st(10), now=100.0)
        t.seen(A, st(12), now=100.5, closed=True)
        assert t.due(100.5) == [A]

    def test_rewrite_after_close_waits_again(self) -> None:
        """A closed file that changes again before it was taken waits like any other."""
        t = SettleTracker(2.0, restat=None)
        t.seen(A, st(10), now=100.0, closed=True)
        t.seen(A, st(11), now=100.1)
        assert t.due(100.1) == []
        assert t.due(102.1) == [A]

    def test_several_files_earliest_first(self) -> None:
        """due returns every ready path, earliest deadline first, and keeps the rest."""
        t = SettleTracker(2.0, restat=None)
        c = Path("/in/c.pdf")
        t.seen(B, st(1), now=100.5)
        t.seen(A, st(1), now=100.0)
        t.seen(c, st(1), now=105.0)
        assert t.next_deadline() == 102.0
        assert t.due(103.0) == [A, B]
        assert c in t and t.next_deadline() == 107.0

    def test_forget(self) -> None:
        """A forgotten path is never due."""
        t = SettleTracker(2.0, restat=None)
        t.seen(A, st(1), now=100.0)
        t.forget(A)
        t.forget(B)  # unknown paths are fine
        assert t.due(200.0) == [] and t.next_deadline() is None

    def test_zero_settle(self) -> None:
        """settle_seconds 0 makes a file due on the next check."""
        t = SettleTracker(0, restat=None)
        t.seen(A, st(1), now=100.0)
        assert t.due(100.0) == [A]

    def test_negative_settle_refused(self) -> None:
        """A negative settle time is a programming error."""
        with pytest.raises(ValueError):
            SettleTracker(-1)


class TestRestat:
    """With restat, the deadline is confirmed against the disk before a file is handed on."""

    def test_unchanged_on_disk_is_ready(self) -> None:
        """The stamp on disk still matches: ready."""
        disk = FakeDisk()
        disk.stamps[A] = st(10)
        t = SettleTracker(2.0, restat=disk)
        t.seen(A, st(10), now=100.0)
        assert t.due(102.0) == [A]

    def test_silent_growth_restarts(self) -> None:
        """A file that grew without an event (network share) gets a new deadline, not handed on."""
        disk = FakeDisk()
        disk.stamps[A] = st(10)
        t = SettleTracker(2.0, restat=disk)
        t.seen(A, st(10), now=100.0)
        disk.stamps[A] = st(50)
        assert t.due(102.0) == []
        assert t.next_deadline() == 104.0
        assert t.due(104.0) == [A]

    def test_vanished_is_dropped(self) -> None:
        """A file deleted while settling is dropped; nothing is left to process."""
        disk = FakeDisk()
        t = SettleTracker(2.0, restat=disk)
        t.seen(A, st(10), now=100.0)
        assert t.due(102.0) == [] and len(t) == 0

    def test_unreadable_is_handed_on(self) -> None:
        """A stat error other than 'gone' hands the path on, so the worker reports it."""
        disk = FakeDisk()
        disk.errors[A] = PermissionError(13, "Permission denied")
        t = SettleTracker(2.0, restat=disk)
        t.seen(A, st(10), now=100.0)
        assert t.due(102.0) == [A]

    def test_closed_files_are_not_restatted(self) -> None:
        """A closed file is trusted as reported."""
        disk = FakeDisk()
        t = SettleTracker(2.0, restat=disk)
        t.seen(A, st(10), now=100.0, closed=True)
        assert t.due(100.0) == [A]

    def test_expiring_names_exactly_what_due_will_restat(self) -> None:
        """A caller reads these stamps beforehand; due() must ask restat for no other path."""
        disk = FakeDisk()
        asked: list[Path] = []

        def restat(path: Path) -> FileStamp:
            asked.append(path)
            return disk(path)

        c = Path("/in/c.pdf")
        disk.stamps.update({A: st(10), B: st(20), c: st(30)})
        t = SettleTracker(2.0, restat=restat)
        t.seen(A, st(10), now=100.0)
        t.seen(B, st(20), now=101.0)
        t.seen(c, st(30), now=100.0, closed=True)
        assert t.expiring(102.0) == [A]
        assert t.due(102.0) == [c, A] and asked == [A]
        assert t.expiring(103.0) == [B]

    def test_default_restat_reads_the_real_disk(self, tmp_path: Path) -> None:
        """Without a restat argument, os.stat is used."""
        from ocr_watch.intake.identity import stamp

        path = tmp_path / "a.pdf"
        path.write_bytes(b"x")
        t = SettleTracker(1.0)
        t.seen(path, stamp(path), now=0.0)
        assert t.due(1.0) == [path]
        t.seen(path, stamp(path), now=2.0)
        path.unlink()
        assert t.due(3.0) == []


class TestWriting:
    """A file written to (native events) waits for its close; the writer check is a second opinion."""

    def test_a_writing_file_waits_past_the_settle_time_until_closed(self) -> None:
        t = SettleTracker(2.0, restat=None)
        t.seen(A, st(10), now=100.0, writing=True)
        assert t.due(103.0) == [] and t.due(110.0) == []
        t.seen(A, st(10), now=111.0)  # a scan's report does not end "writing"
        assert t.due(120.0) == []
        t.seen(A, st(20), now=121.0, closed=True)
        assert t.due(121.0) == [A]

    def test_a_writer_still_open_keeps_even_a_closed_file_waiting(self) -> None:
        writers = {A: True}
        t = SettleTracker(2.0, restat=None, writers=writers.get)
        t.seen(A, st(10), now=100.0, closed=True)
        assert t.due(100.0) == []
        writers[A] = False
        assert t.due(101.0) == [] and t.due(102.0) == [A]

    def test_a_writing_file_whose_close_was_missed_goes_when_no_writer_is_left(self) -> None:
        writers: dict[Path, bool | None] = {A: None}
        t = SettleTracker(2.0, restat=None, writers=writers.get)
        t.seen(A, st(10), now=100.0, writing=True)
        assert t.due(102.0) == []  # cannot tell: the close event decides
        writers[A] = False
        assert t.due(104.0) == [A]

    def test_a_quiet_file_with_a_writer_waits_and_settle_zero_does_not_spin(self) -> None:
        writers = {A: True}
        t = SettleTracker(0.0, restat=None, writers=writers.get)
        t.seen(A, st(10), now=100.0)
        assert t.due(100.0) == []
        assert t.next_deadline() == 101.0  # WRITER_RECHECK_S, not "now" again

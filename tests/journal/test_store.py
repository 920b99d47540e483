"""The journal: legal moves only, one live row per path, and what survives a reopen."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocr_watch.journal import FileState, IllegalTransition, Journal, JournalError, Stage

pytestmark = pytest.mark.timeout(30)

STAMP = (10, 1_000, 42)


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "j.sqlite3")


class TestJournal:
    def test_a_row_walks_the_happy_path_and_keeps_what_each_step_wrote(self, journal: Journal) -> None:
        row = journal.add("a/b.png", STAMP, "txt|English")
        journal.uploading(row.id, sha256="ab" * 32)
        journal.polling(row.id, task_id="t-1", task_created_at=5.0, sha256="ab" * 32)
        journal.downloading(row.id, result_url="http://r/1", result_url_at=6.0)
        journal.output_reserved(row.id, "a/b.txt")
        journal.finishing(row.id)
        done = journal.done(row.id, final_path="/archive/a/b.png", note=None)
        assert (done.task_id, done.output_rel, done.sha256) == ("t-1", "a/b.txt", "ab" * 32)
        assert done.finished_at is not None and journal.live_rows() == []

    def test_what_the_writer_remembers_is_what_is_on_disk(self, journal: Journal) -> None:
        # The journal keeps the live rows it wrote instead of reading them back; another
        # connection reading the file must see exactly what each call returned.
        disk = Journal(journal.path)

        def on_disk(row_id: int) -> object:
            return disk._select("id = ?", (row_id,))[0]

        row = journal.add("a.png", STAMP, "k")
        steps = [
            lambda: journal.uploading(row.id, sha256="cd" * 32),
            lambda: journal.record_error(row.id, stage=Stage.CREATE, message="boom", http_status=503),
            lambda: journal.queued_again(row.id),
            lambda: journal.uploading(row.id, sha256="cd" * 32),
            lambda: journal.polling(row.id, task_id="t-9", task_created_at=1.0, sha256="cd" * 32),
            lambda: journal.record_error(row.id, stage=Stage.POLL, message="late", count_attempt=False),
            lambda: journal.get(row.id),
            lambda: journal.downloading(row.id, result_url="http://r/9", result_url_at=2.0, last_task_state=1),
            lambda: journal.output_reserved(row.id, "a.txt"),
        ]
        for step in steps:
            assert step() == on_disk(row.id)
        assert journal.get(row.id).attempts == 1 and journal.get(row.id).last_error == "late"
        with pytest.raises(IllegalTransition):
            journal.queued_again(row.id)
        assert journal.get(row.id) == on_disk(row.id)
        quarantining = journal.quarantining(row.id, stage=Stage.OUTPUT, reason="full", http_status=None,
                                            task_state=None)
        assert quarantining == on_disk(row.id)
        assert journal.quarantined(row.id, final_path="/quarantine/a.png") == on_disk(row.id)

    def test_skipping_a_step_is_refused_and_changes_nothing(self, journal: Journal) -> None:
        row = journal.add("x.png", STAMP, "k")
        with pytest.raises(IllegalTransition):
            journal.done(row.id, final_path=None, note=None)
        journal.uploading(row.id, sha256=None)
        with pytest.raises(IllegalTransition):
            journal.finishing(row.id)  # only a row whose output exists already goes there from queued
        assert journal.get(row.id).state is FileState.UPLOADING

    def test_a_path_has_one_live_row_but_may_come_back_after_it_finished(self, journal: Journal) -> None:
        row = journal.add("x.png", STAMP, "k")
        with pytest.raises(Exception, match="UNIQUE"):
            journal.add("x.png", STAMP, "k")
        journal.quarantining(row.id, stage=Stage.INTAKE, reason="bad", http_status=None, task_state=None)
        journal.quarantined(row.id, final_path=None)
        again = journal.add("x.png", (11, 2_000, 43), "k")
        assert journal.live_for("x.png") == again
        assert journal.finished_with_stamp("x.png", STAMP) is not None
        assert journal.finished_with_stamp("x.png", (11, 2_000, 43)) is None

    def test_everything_committed_is_there_after_reopening(self, tmp_path: Path) -> None:
        first = Journal(tmp_path / "j.sqlite3")
        row = first.add("x.png", STAMP, "k")
        first.uploading(row.id, sha256=None)
        first.polling(row.id, task_id="t-9", task_created_at=None, sha256=None)
        first.close()  # as after kill -9, nothing else is flushed: WAL commits are already durable
        second = Journal(tmp_path / "j.sqlite3")
        (live,) = second.live_rows()
        assert (live.state, live.task_id) == (FileState.POLLING, "t-9")

    def test_errors_count_attempts_only_when_asked(self, journal: Journal) -> None:
        row = journal.add("x.png", STAMP, "k")
        journal.record_error(row.id, stage=Stage.CREATE, message="500", http_status=500)
        journal.record_error(row.id, stage=Stage.CREATE, message="down", count_attempt=False)
        row = journal.get(row.id)
        assert (row.attempts, row.last_error, row.last_http_status) == (1, "down", 500)

    def test_the_backlog_is_read_in_admission_order(self, journal: Journal) -> None:
        ids = [journal.add(f"f{n}.png", STAMP, "k").id for n in range(5)]
        journal.uploading(ids[2], sha256=None)
        assert journal.queued_after(ids[0], 10) == [ids[1], ids[3], ids[4]]
        assert journal.queued_after(ids[0], 1) == [ids[1]]


class TestSchema:
    def test_the_lookups_made_for_every_file_use_an_index(self, journal: Journal) -> None:
        """Admission asks these for every file seen; a scan would grow with the history."""
        plans = {
            name: " ".join(row[3] for row in journal._db.execute(f"EXPLAIN QUERY PLAN {sql}", args))
            for name, sql, args in [
                ("finished_with_stamp", "SELECT id FROM files WHERE rel = ? AND size = ? AND mtime_ns = ?"
                 " AND inode = ? AND state IN ('done', 'quarantined') ORDER BY id DESC LIMIT 1", ("a", 1, 2, 3)),
                ("live_for", "SELECT id FROM files WHERE rel = ? AND state NOT IN ('done', 'quarantined')", ("a",)),
            ]
        }
        for name, plan in plans.items():
            assert any(f"USING INDEX {index}" in plan for index in ("files_rel", "files_live_rel", "files_inode")), (
                name, plan)

    def test_a_version_1_journal_is_upgraded_in_place_and_keeps_its_rows(self, tmp_path: Path) -> None:
        import sqlite3

        from ocr_watch.journal.store import _SCHEMA_V1

        path = tmp_path / "old.sqlite3"
        db = sqlite3.connect(path, isolation_level=None)
        db.executescript(f"BEGIN;{_SCHEMA_V1}PRAGMA user_version=1;COMMIT;")
        db.execute("INSERT INTO files (rel, size, mtime_ns, inode, options_key, state, first_seen, updated_at)"
                   " VALUES ('a.png', 1, 2, 3, 'k', 'polling', 0, 0)")
        db.close()
        journal = Journal(path)
        from ocr_watch.journal.store import _SCHEMA_VERSION

        assert journal._db.execute("PRAGMA user_version").fetchone()[0] == _SCHEMA_VERSION
        (row,) = journal.live_rows()
        assert (row.rel, row.state, row.mode) == ("a.png", FileState.POLLING, None)


class TestNamesAndPermissions:
    def test_a_name_that_is_not_utf8_is_stored_and_found_as_the_same_string(self, tmp_path: Path) -> None:
        """`os.fsdecode(b"bad\\xffname.png")` has a lone surrogate, which SQLite text cannot hold."""
        import os

        rel = "sub/" + os.fsdecode(b"bad\xffname.png")
        journal = Journal(tmp_path / "j.sqlite3")
        row = journal.add(rel, STAMP, "k")
        assert row.rel == rel
        journal.uploading(row.id, sha256="ab" * 32)
        journal.record_error(row.id, stage=Stage.CREATE, message=f"failed for {rel}")
        assert journal.live_for(rel) is not None
        journal.close()
        again = Journal(tmp_path / "j.sqlite3")
        (live,) = again.live_rows()
        assert (live.rel, live.last_error) == (rel, f"failed for {rel}")
        assert again.live_for("sub/badname.png") is None

    def test_the_journal_and_its_wal_are_readable_by_the_owner_only(self, tmp_path: Path) -> None:
        import os
        import stat

        path = tmp_path / "j.sqlite3"
        old_umask = os.umask(0o022)
        try:
            Journal(path).close()
            os.chmod(path, 0o644)  # as an older version left it
            journal = Journal(path)
            journal.add("a.png", STAMP, "k", mode=0o640)
        finally:
            os.umask(old_umask)
        for side in ("", "-wal", "-shm"):
            assert stat.S_IMODE(os.stat(f"{path}{side}").st_mode) == 0o600, side
        assert journal.live_rows()[0].mode == 0o640


class TestIntegrity:
    """A journal that vanished, was emptied, replaced or lost its WAL is refused, never taken as new."""

    def _used(self, path: Path) -> None:
        journal = Journal(path)
        journal.add("kept.png", STAMP, "k")
        journal.close()

    def test_a_clean_close_and_reopen_is_fine_and_keeps_the_rows(self, tmp_path: Path) -> None:
        path = tmp_path / "journal.sqlite3"
        self._used(path)
        assert (tmp_path / "journal.sqlite3.id").read_text().strip()
        assert [r.rel for r in Journal(path).live_rows()] == ["kept.png"]

    @pytest.mark.parametrize("how", ["emptied", "deleted"])
    def test_an_emptied_or_deleted_journal_is_refused_naming_the_file_and_the_remedy(
        self, tmp_path: Path, how: str
    ) -> None:
        path = tmp_path / "journal.sqlite3"
        self._used(path)
        if how == "emptied":
            path.write_bytes(b"")
        else:
            path.unlink()
        with pytest.raises(JournalError) as caught:
            Journal(path)
        assert str(path) in str(caught.value) and "journal.sqlite3.id" in str(caught.value)
        assert ("is empty" if how == "emptied" else "is missing") in str(caught.value)
        (tmp_path / "journal.sqlite3.id").unlink()  # the documented way to accept it knowingly
        assert Journal(path).live_rows() == []

    def test_a_wal_lost_after_a_crash_is_refused(self, tmp_path: Path) -> None:
        import shutil

        path = tmp_path / "journal.sqlite3"
        self._used(path)
        crashed = Journal(path)  # left open, as kill -9 leaves it
        crashed.add("paid.png", STAMP, "k")
        shutil.copy(path, tmp_path / "copy.sqlite3")  # the main file without its WAL
        crashed._db.close()
        path.unlink()
        Path(f"{path}-wal").unlink(missing_ok=True)
        Path(f"{path}-shm").unlink(missing_ok=True)
        (tmp_path / "copy.sqlite3").rename(path)
        with pytest.raises(JournalError, match="write-ahead log"):
            Journal(path)

    def test_a_crash_with_its_wal_in_place_is_an_ordinary_restart(self, tmp_path: Path) -> None:
        path = tmp_path / "journal.sqlite3"
        self._used(path)
        crashed = Journal(path)
        crashed.add("paid.png", STAMP, "k")
        import os
        import shutil

        for side in ("", "-wal", "-shm"):  # what kill -9 leaves on disk
            shutil.copy(f"{path}{side}", tmp_path / f"after-kill.sqlite3{side}")
        shutil.copy(tmp_path / "journal.sqlite3.id", tmp_path / "after-kill.sqlite3.id")
        crashed.close()
        os.chmod(tmp_path / "after-kill.sqlite3", 0o600)
        assert sorted(r.rel for r in Journal(tmp_path / "after-kill.sqlite3").live_rows()) == ["kept.png", "paid.png"]

    def test_a_corrupt_journal_is_one_clear_error(self, tmp_path: Path) -> None:
        path = tmp_path / "journal.sqlite3"
        path.write_bytes(b"this is not a database, " * 100)
        with pytest.raises(JournalError, match=r"cannot be used: file is not a database.*backup"):
            Journal(path)

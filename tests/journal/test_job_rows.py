"""Rows of jobs (journal v7, issue 18): each row knows its job and its fixed options; a path is
live once per job and format; a file in several formats is one row per format, one batch."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ocr_watch.journal import FileState, Journal, RowOptions, Stage

STAMP = (10, 1_000, 42)


def test_the_same_path_is_live_once_per_job_and_format(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    a = journal.add_file("x.png", STAMP, [RowOptions("pdf", "English", "pw", 1)], job="a")[0]
    b = journal.add_file("x.png", STAMP, [RowOptions("pdf", "English")], job="b")[0]
    assert (a.job, a.format, a.language, a.password, a.rule, a.options_key) == ("a", "pdf", "English", "pw", 1,
                                                                              "pdf|English")
    assert "pw" not in repr(a), "the password is never shown by a repr"
    assert journal.live_for("x.png", "a") == a and journal.live_for("x.png", "b") == b
    assert journal.live_for("x.png", "c") is None
    with pytest.raises(sqlite3.IntegrityError):
        journal.add_file("x.png", STAMP, [RowOptions("pdf", "English")], job="a")
    assert journal.queued_after(0, 10, job="b") == [b.id]


def test_several_formats_are_one_row_each_in_one_batch(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    pdf, txt = journal.add_file("c.png", STAMP, [RowOptions("pdf", "English"), RowOptions("txt", "English")],
                                job="contracts")
    assert pdf.batch == txt.batch == pdf.id
    assert journal.siblings(pdf) == [txt] and journal.siblings(txt) == [pdf]
    assert (pdf.options_key, txt.options_key) == ("pdf|English", "txt|English")
    single = journal.add_file("d.png", STAMP, [RowOptions("txt", "English")])[0]
    assert single.batch is None and journal.siblings(single) == []


def test_a_version_6_row_has_no_options_until_they_are_fixed(tmp_path: Path) -> None:
    """A row of an older journal reads as the 'default' job with no options; the daemon fixes
    them at start (served.fix_legacy) from what that version would have sent."""
    journal = Journal(tmp_path / "j.sqlite3")
    old = journal.add("o.png", STAMP, "txt|English")
    assert (old.job, old.format, old.language, old.password) == ("default", None, None, None)
    fixed = journal.fix_options(old.id, RowOptions("txt", "English", "secret", None))
    assert (fixed.format, fixed.language, fixed.password, fixed.state) == ("txt", "English", "secret",
                                                                           FileState.QUEUED)


def test_an_output_name_is_reserved_once_per_job(tmp_path: Path) -> None:
    """Two jobs' outboxes are two folders: each may write a.txt while the other does."""
    journal = Journal(tmp_path / "j.sqlite3")
    a = journal.add_file("a.png", STAMP, [RowOptions("txt", "English")], job="one")[0]
    b = journal.add_file("a.png", STAMP, [RowOptions("txt", "English")], job="two")[0]
    journal.output_reserved(a.id, "a.txt")
    assert not journal.output_taken("a.txt", exclude_id=b.id, job="two")
    assert journal.output_reserved(b.id, "a.txt").output_rel == "a.txt"
    c = journal.add_file("c.png", STAMP, [RowOptions("txt", "English")], job="one")[0]
    assert journal.output_taken("a.txt", exclude_id=c.id, job="one")
    with pytest.raises(sqlite3.IntegrityError):
        journal.output_reserved(c.id, "a.txt")


def test_a_task_is_shared_only_among_the_jobs_of_its_key(tmp_path: Path) -> None:
    """A task belongs to the account that made it: a job with another key never joins it."""
    journal = Journal(tmp_path / "j.sqlite3")
    first = journal.add_file("a.png", STAMP, [RowOptions("txt", "English")], job="one")[0]
    journal.polling(first.id, task_id="t1", task_created_at=1.0, sha256="ab")
    journal.downloading(first.id, result_url="https://r/1", result_url_at=10.0)
    other = journal.add_file("a.png", STAMP, [RowOptions("txt", "English")], job="two")[0]
    assert journal.shareable_task("ab", "txt|English", exclude_id=other.id, jobs=("two",)) is None
    assert journal.shareable_task("ab", "txt|English", exclude_id=other.id, jobs=("one", "two")) is not None
    assert journal.reusable_result("ab", "txt|English", not_before=0.0, jobs=("two",)) is None
    assert journal.reusable_result("ab", "txt|English", not_before=0.0, jobs=("one",)) is not None


def test_the_last_row_of_a_batch_to_end_tells_the_others_where_the_source_went(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    pdf, txt = journal.add_file("c.png", STAMP, [RowOptions("pdf", "English"), RowOptions("txt", "English")])
    other = journal.add_file("d.png", STAMP, [RowOptions("pdf", "English"), RowOptions("txt", "English")])[0]
    for row in (pdf, txt, other):
        journal.quarantining(row.id, stage=Stage.CREATE, reason="refused", http_status=400, task_state=None)
    journal.quarantined(pdf.id, final_path=None)  # its source waits for txt
    journal.quarantined(other.id, final_path=None)
    journal.quarantined(txt.id, final_path="/q/c.png")
    assert journal.get(pdf.id).final_path == "/q/c.png"
    assert journal.get(other.id).final_path is None, "another file's batch is not touched"

"""Tests for ocr_watch.results.quarantine: report first, then the move, and nothing overwritten."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path, PurePosixPath

import pytest

from ocr_watch.results import quarantine as quarantine_module
from ocr_watch.results.quarantine import FailureReport, quarantine_file, report_path_for


def make_report(**changes: object) -> FailureReport:
    report = FailureReport(
        source="scans/a.pdf", reason="the service could not read the file", stage="poll",
        attempts=3, task_id="task-123", last_http_status=200, last_task_state=-7,
        first_seen=1_700_000_000.25, failed_at=1_700_000_100.5, sha256="ab" * 32, size=1234,
        detail={"message": "corrupt file"},
    )
    return dataclasses.replace(report, **changes)  # type: ignore[arg-type]


@pytest.fixture
def inbox_file(tmp_path: Path) -> Path:
    src = tmp_path / "in" / "scans" / "a.pdf"
    src.parent.mkdir(parents=True)
    src.write_bytes(b"%PDF-broken")
    return src


class TestQuarantineFile:
    def test_moves_source_and_writes_every_field(self, tmp_path: Path, inbox_file: Path) -> None:
        """The source lands at quarantine/<rel>, with a JSON report holding every field."""
        qroot = tmp_path / "q"
        final = quarantine_file(inbox_file, PurePosixPath("scans/a.pdf"), qroot, make_report())
        assert final == qroot / "scans" / "a.pdf"
        assert final.read_bytes() == b"%PDF-broken" and not inbox_file.exists()
        data = json.loads((qroot / "scans" / "a.pdf.error.json").read_text())
        for f in dataclasses.fields(FailureReport):
            assert f.name in data
        assert data["reason"] == "the service could not read the file"
        assert data["task_id"] == "task-123" and data["last_task_state"] == -7
        assert data["first_seen"] == "2023-11-14T22:13:20.250Z"
        assert data["first_seen_unix"] == 1_700_000_000.25
        assert data["failed_at"] == "2023-11-14T22:15:00.500Z"
        assert data["detail"] == {"message": "corrupt file"}
        assert data["source_missing"] is False
        assert data["quarantined_as"] == "a.pdf"

    def test_report_written_before_the_move(self, tmp_path: Path, inbox_file: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
        """A crash during the move leaves the report and the source in the inbox."""
        def crash(src: Path, dst: Path) -> Path:
            raise KeyboardInterrupt  # stands in for kill -9

        monkeypatch.setattr(quarantine_module, "move_no_clobber", crash)
        with pytest.raises(KeyboardInterrupt):
            quarantine_file(inbox_file, PurePosixPath("scans/a.pdf"), tmp_path / "q", make_report())
        assert inbox_file.exists()
        assert (tmp_path / "q" / "scans" / "a.pdf.error.json").exists()

    def test_retry_after_crash_reuses_its_own_report(self, tmp_path: Path, inbox_file: Path) -> None:
        """A second call for the same failure takes the name its own report reserved."""
        qroot = tmp_path / "q"
        report_path = qroot / "scans" / "a.pdf.error.json"
        report_path.parent.mkdir(parents=True)
        report_path.write_bytes(make_report().to_json(source_missing=False, quarantined_as="a.pdf"))
        final = quarantine_file(inbox_file, PurePosixPath("scans/a.pdf"), qroot, make_report())
        assert final == qroot / "scans" / "a.pdf"
        assert sorted(p.name for p in final.parent.iterdir()) == ["a.pdf", "a.pdf.error.json"]

    def test_retry_after_crash_between_link_and_unlink(self, tmp_path: Path,
                                                       inbox_file: Path) -> None:
        """If the file is already linked into quarantine, the retry finishes the move."""
        qroot = tmp_path / "q"
        dest = qroot / "scans" / "a.pdf"
        dest.parent.mkdir(parents=True)
        report_path_for(dest).write_bytes(make_report().to_json(source_missing=False,
                                                                quarantined_as="a.pdf"))
        os.link(inbox_file, dest)
        assert quarantine_file(inbox_file, PurePosixPath("scans/a.pdf"), qroot, make_report()) == dest
        assert not inbox_file.exists()
        assert sorted(p.name for p in dest.parent.iterdir()) == ["a.pdf", "a.pdf.error.json"]

    def test_retry_after_completed_move_changes_nothing(self, tmp_path: Path,
                                                        inbox_file: Path) -> None:
        """Calling again once the move is done returns the same path and writes nothing new."""
        qroot = tmp_path / "q"
        first = quarantine_file(inbox_file, PurePosixPath("scans/a.pdf"), qroot, make_report())
        again = quarantine_file(inbox_file, PurePosixPath("scans/a.pdf"), qroot, make_report())
        assert again == first
        assert sorted(p.name for p in first.parent.iterdir()) == ["a.pdf", "a.pdf.error.json"]

    def test_collision_gets_a_sibling_and_keeps_the_old_files(self, tmp_path: Path,
                                                              inbox_file: Path) -> None:
        """An earlier quarantined a.pdf and its report stay; the new one becomes a-2.pdf."""
        qroot = tmp_path / "q"
        (qroot / "scans").mkdir(parents=True)
        (qroot / "scans" / "a.pdf").write_bytes(b"earlier")
        (qroot / "scans" / "a.pdf.error.json").write_text('{"source": "other"}')
        # A report without its file (the user removed it) also reserves the name.
        (qroot / "scans" / "a-2.pdf.error.json").write_text('{"source": "other"}')
        final = quarantine_file(inbox_file, PurePosixPath("scans/a.pdf"), qroot, make_report())
        assert final == qroot / "scans" / "a-3.pdf"
        assert (qroot / "scans" / "a.pdf").read_bytes() == b"earlier"
        assert (qroot / "scans" / "a.pdf.error.json").read_text() == '{"source": "other"}'
        assert (qroot / "scans" / "a-2.pdf.error.json").read_text() == '{"source": "other"}'
        assert json.loads(report_path_for(final).read_text())["quarantined_as"] == "a-3.pdf"

    def test_source_missing(self, tmp_path: Path) -> None:
        """If the source is gone, the report is still written and says so."""
        qroot = tmp_path / "q"
        final = quarantine_file(tmp_path / "in" / "gone.pdf", PurePosixPath("gone.pdf"), qroot,
                                make_report(source="gone.pdf"))
        assert final == qroot / "gone.pdf" and not final.exists()
        assert json.loads(report_path_for(final).read_text())["source_missing"] is True

    def test_unserialisable_detail_is_stringified(self, tmp_path: Path, inbox_file: Path) -> None:
        """A detail value JSON cannot encode does not lose the report."""
        final = quarantine_file(inbox_file, PurePosixPath("a.pdf"), tmp_path / "q",
                                make_report(detail={"path": Path("/x")}))
        assert json.loads(report_path_for(final).read_text())["detail"] == {"path": "/x"}


class TestOddNames:
    def test_a_non_utf8_name_gets_a_valid_utf8_report_that_shows_its_bytes(self, tmp_path: Path) -> None:
        rel = os.fsdecode(b"scans/bad\xffname.png")
        src = tmp_path / "in" / rel
        src.parent.mkdir(parents=True)
        src.write_bytes(b"x")
        report = make_report(source=rel, reason=f"{rel} could not be read")
        final = quarantine_file(src, PurePosixPath(rel), tmp_path / "q", report)
        assert os.fsencode(final.name) == b"bad\xffname.png" and final.read_bytes() == b"x"
        data = json.loads(report_path_for(final).read_bytes().decode("utf-8"))
        assert data["source"] == "scans/bad\\xffname.png"
        assert data["reason"] == "scans/bad\\xffname.png could not be read"
        # A second call for the same failure recognises its own report.
        assert quarantine_file(src, PurePosixPath(rel), tmp_path / "q", report) == final

    def test_a_250_byte_name_is_quarantined_with_a_report_that_fits(self, tmp_path: Path) -> None:
        names = ["n" * 246 + "a.xyz", "n" * 246 + "b.xyz"]  # 251 bytes, alike for 246
        finals = []
        for name in names:
            src = tmp_path / "in" / name
            src.parent.mkdir(parents=True, exist_ok=True)
            src.write_bytes(name.encode())
            finals.append(quarantine_file(src, PurePosixPath(name), tmp_path / "q",
                                          make_report(source=name)))
        reports = [report_path_for(f) for f in finals]
        assert [f.name for f in finals] == names
        assert all(len(os.fsencode(r.name)) <= 255 and r.name.endswith(".error.json") for r in reports)
        assert reports[0] != reports[1]
        assert [json.loads(r.read_text())["source"] for r in reports] == names

    def test_the_report_is_no_more_open_than_its_source(self, tmp_path: Path, inbox_file: Path) -> None:
        from ocr_watch.fsops import copy_mode

        final = quarantine_file(inbox_file, PurePosixPath("scans/a.pdf"), tmp_path / "q", make_report(),
                                copy_mode(0o600))
        assert os.stat(report_path_for(final)).st_mode & 0o777 == 0o600

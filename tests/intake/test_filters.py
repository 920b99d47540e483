"""Tests for ocr_watch.intake.filters: what is ignored, what is rejected, what may go."""

from __future__ import annotations

from pathlib import PurePosixPath as P

import pytest

from ocr_watch.intake.filters import (
    MAX_SOURCE_BYTES,
    SUPPORTED_EXTENSIONS,
    ignore_reason,
    reject_reason,
)


class TestIgnoreReason:
    @pytest.mark.parametrize("rel", [
        ".hidden.pdf", "sub/.x.pdf.part", ".git/a.pdf", "a/.cache/b/c.pdf", "~$report.docx",
        ".~lock.report.docx#", "scan.tmp", "scan.TMP", "x.temp", "x.pdf.part", "x.partial",
        "x.pdf.crdownload", ".x.swp", "x.swp", "x.swx", "report.docx~", "Thumbs.db",
        "sub/thumbs.db", "desktop.ini", "Desktop.ini", ".DS_Store",
    ])
    def test_ignored(self, rel: str) -> None:
        """Hidden, temp, lock and system files are ignored with a reason."""
        assert ignore_reason(P(rel))

    @pytest.mark.parametrize("rel", ["a.pdf", "sub/dir/scan 1.JPG", "a.tmp.pdf", "notes.txt",
                                     "x~y.pdf", "a$b.docx"])
    def test_not_ignored(self, rel: str) -> None:
        """Ordinary names, supported or not, are not ignored (unsupported ones get rejected)."""
        assert ignore_reason(P(rel)) is None


class TestRejectReason:
    @pytest.mark.parametrize("ext", SUPPORTED_EXTENSIONS)
    def test_supported_any_case(self, ext: str) -> None:
        """Every supported extension passes, in any case."""
        assert reject_reason(P(f"a.{ext}"), 10) is None
        assert reject_reason(P(f"a.{ext.upper()}"), 10) is None

    def test_unsupported_extension(self) -> None:
        """The reason names the extension and lists what is accepted."""
        reason = reject_reason(P("notes.xyz"), 10)
        assert reason == ("'.xyz' is not a kind the OCR service accepts "
                          "(pdf, ppt, pptx, xls, xlsx, doc, docx, jpeg, jpg, png, gif, bmp)")

    def test_no_extension(self) -> None:
        """A file without extension is rejected in plain words."""
        assert "no extension" in (reject_reason(P("README"), 10) or "")

    def test_empty(self) -> None:
        """An empty file is rejected."""
        assert reject_reason(P("a.pdf"), 0) == "the file is empty (0 bytes)"

    def test_size_limit_inclusive(self) -> None:
        """Exactly 200 MB passes; one byte more is rejected with the size."""
        assert reject_reason(P("a.pdf"), MAX_SOURCE_BYTES) is None
        reason = reject_reason(P("a.pdf"), MAX_SOURCE_BYTES + 1)
        assert reason is not None and "at most 200 MB" in reason and "200.0 MB" in reason

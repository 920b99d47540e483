"""Tests for ocr_watch.results.archive: the three on_success modes."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from ocr_watch.results.archive import finish_source


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "in" / "sub" / "a.pdf"
    src.parent.mkdir(parents=True)
    src.write_bytes(b"A")
    return src


class TestFinishSource:
    def test_archive(self, tmp_path: Path, source: Path) -> None:
        """archive mirrors the subfolder and returns the new path."""
        final = finish_source(source, PurePosixPath("sub/a.pdf"), "archive", tmp_path / "arch")
        assert final == tmp_path / "arch" / "sub" / "a.pdf"
        assert final.read_bytes() == b"A" and not source.exists()

    def test_archive_collision(self, tmp_path: Path, source: Path) -> None:
        """An earlier archived file of the same name is kept; the new one is a-2.pdf."""
        (tmp_path / "arch" / "sub").mkdir(parents=True)
        (tmp_path / "arch" / "sub" / "a.pdf").write_bytes(b"earlier")
        final = finish_source(source, PurePosixPath("sub/a.pdf"), "archive", tmp_path / "arch")
        assert final == tmp_path / "arch" / "sub" / "a-2.pdf"
        assert (tmp_path / "arch" / "sub" / "a.pdf").read_bytes() == b"earlier"

    def test_archive_missing_source(self, tmp_path: Path) -> None:
        """archive of a vanished source raises FileNotFoundError for the journal to judge."""
        with pytest.raises(FileNotFoundError):
            finish_source(tmp_path / "gone.pdf", PurePosixPath("gone.pdf"), "archive", tmp_path / "a")

    def test_delete_is_idempotent(self, tmp_path: Path, source: Path) -> None:
        """delete removes the source; a repeat after a crash is a no-op."""
        assert finish_source(source, PurePosixPath("sub/a.pdf"), "delete", tmp_path / "a") is None
        assert not source.exists()
        assert finish_source(source, PurePosixPath("sub/a.pdf"), "delete", tmp_path / "a") is None
        assert not (tmp_path / "a").exists()

    def test_keep(self, tmp_path: Path, source: Path) -> None:
        """keep leaves the source where it is."""
        assert finish_source(source, PurePosixPath("sub/a.pdf"), "keep", tmp_path / "a") is None
        assert source.read_bytes() == b"A"

    def test_unknown_mode(self, tmp_path: Path, source: Path) -> None:
        """A mode outside archive|delete|keep is a programming error."""
        with pytest.raises(ValueError, match="archive, delete, keep"):
            finish_source(source, PurePosixPath("sub/a.pdf"), "move", tmp_path / "a")
        assert source.exists()

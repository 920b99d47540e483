"""Tests for ocr_watch.results.naming: the collision rules the README quotes."""

from __future__ import annotations

import itertools
from pathlib import Path, PurePosixPath

import pytest

from ocr_watch.results.naming import free_sibling, output_candidates, sibling_candidates

SHA = "0123abcd" + "f" * 56


class TestOutputCandidates:
    def test_order_of_preference(self) -> None:
        """Plain name, then hash-qualified, then numbered hash-qualified names."""
        got = list(itertools.islice(output_candidates(PurePosixPath("scans/2024/a.pdf"), "txt", SHA), 5))
        assert got == [PurePosixPath(p) for p in (
            "scans/2024/a.txt", "scans/2024/a.0123abcd.txt", "scans/2024/a.0123abcd-2.txt",
            "scans/2024/a.0123abcd-3.txt", "scans/2024/a.0123abcd-4.txt")]

    def test_top_level_and_dotted_stems(self) -> None:
        """A file at the inbox root has no folder; only the last extension is replaced."""
        got = list(itertools.islice(output_candidates(PurePosixPath("r.v2.png"), "docx", SHA), 2))
        assert got == [PurePosixPath("r.v2.docx"), PurePosixPath("r.v2.0123abcd.docx")]

    def test_deterministic(self) -> None:
        """The same inputs always give the same list, so a restart picks the same name."""
        a = list(itertools.islice(output_candidates(PurePosixPath("x.pdf"), "pdf", SHA), 4))
        b = list(itertools.islice(output_candidates(PurePosixPath("x.pdf"), "pdf", SHA), 4))
        assert a == b

    def test_bad_inputs(self) -> None:
        """A short hash or empty format is a programming error."""
        with pytest.raises(ValueError):
            next(output_candidates(PurePosixPath("x.pdf"), "txt", "abc"))
        with pytest.raises(ValueError):
            next(output_candidates(PurePosixPath("x.pdf"), "", SHA))


class TestFreeSibling:
    def test_free_name_is_kept(self, tmp_path: Path) -> None:
        """An unused name is returned as is."""
        assert free_sibling(tmp_path / "a.pdf") == tmp_path / "a.pdf"

    def test_numbers_go_before_the_extension(self, tmp_path: Path) -> None:
        """name.ext -> name-2.ext -> name-3.ext."""
        (tmp_path / "a.pdf").write_bytes(b"1")
        assert free_sibling(tmp_path / "a.pdf") == tmp_path / "a-2.pdf"
        (tmp_path / "a-2.pdf").write_bytes(b"2")
        assert free_sibling(tmp_path / "a.pdf") == tmp_path / "a-3.pdf"

    def test_no_extension_and_broken_symlink(self, tmp_path: Path) -> None:
        """A name without extension gets -2; a dangling symlink still counts as taken."""
        (tmp_path / "README").symlink_to(tmp_path / "nowhere")
        assert free_sibling(tmp_path / "README") == tmp_path / "README-2"

    def test_candidates(self, tmp_path: Path) -> None:
        """sibling_candidates starts with the path itself."""
        got = list(itertools.islice(sibling_candidates(tmp_path / "a.tar.gz"), 3))
        assert got == [tmp_path / "a.tar.gz", tmp_path / "a.tar-2.gz", tmp_path / "a.tar-3.gz"]

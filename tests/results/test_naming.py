"""Tests for ocr_watch.results.naming: the collision rules the README quotes."""

from __future__ import annotations

import itertools
import os
from pathlib import Path, PurePosixPath

import pytest

from ocr_watch.fsops import AtomicFile, remove_stale_temps, temp_path_for
from ocr_watch.names import NAME_MAX, fit_name, sibling_candidates
from ocr_watch.results.naming import free_sibling, output_candidates

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


class TestNamesTooLong:
    """A name near the 255-byte limit: every derived name is cut to fit, predictably."""

    def test_output_names_of_a_250_byte_source_fit_and_keep_their_endings(self) -> None:
        stem = "文" * 80  # 240 bytes of UTF-8
        source = PurePosixPath("sub") / f"{stem}abcdef.png"  # 250 bytes
        got = list(itertools.islice(output_candidates(source, "docx", SHA), 3))
        assert [len(os.fsencode(p.name)) <= NAME_MAX for p in got] == [True] * 3
        assert got[0].name == f"{stem}abcdef.docx"  # it fits: unchanged
        assert got[1].name.endswith(".0123abcd.docx") and got[2].name.endswith(".0123abcd-2.docx")
        assert got[1].name.startswith(stem) and len(set(got)) == 3
        for name in (p.name for p in got):
            name.encode("utf-8")  # cut at a character boundary, never inside one

    def test_a_cut_name_is_the_same_every_time(self) -> None:
        long = "a" * 252
        assert fit_name(long, ".pdf") == "a" * 251 + ".pdf" == fit_name(long, ".pdf")

    def test_siblings_of_a_long_name_fit_and_differ(self, tmp_path: Path) -> None:
        path = tmp_path / ("x" * 251 + ".png")
        got = list(itertools.islice(sibling_candidates(path), 3))
        assert got[0] == path
        assert [p.name[-6:] for p in got[1:]] == ["-2.png", "-3.png"]
        assert all(len(os.fsencode(p.name)) <= NAME_MAX for p in got)

    def test_a_non_utf8_name_is_measured_in_bytes(self) -> None:
        stem = os.fsdecode(b"\xff" * 252)  # one byte each on disk
        assert len(os.fsencode(fit_name(stem, ".txt"))) == NAME_MAX

    def test_temp_names_of_a_long_name_fit_and_are_recognised_as_stale(self, tmp_path: Path) -> None:
        dest = tmp_path / ("y" * 250 + ".txt")
        temp = temp_path_for(dest)
        assert len(os.fsencode(temp.name)) <= NAME_MAX
        with AtomicFile(dest) as target:
            target.file.write(b"done")
        target.commit()
        assert dest.read_bytes() == b"done"
        temp.write_bytes(b"left by a crash")
        assert remove_stale_temps(tmp_path) == [temp]

"""Tests for ocr_watch.fsops: atomic writes and moves that never overwrite."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from ocr_watch import fsops
from ocr_watch.fsops import (
    atomic_write_bytes,
    fsync_dir,
    move_no_clobber,
    remove_stale_temps,
    temp_path_for,
)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


class TestAtomicWrite:
    def test_writes_and_replaces(self, tmp_path: Path) -> None:
        """The file holds exactly the new bytes; parents are created; no temp remains."""
        target = tmp_path / "sub" / "out.txt"
        atomic_write_bytes(target, b"one")
        atomic_write_bytes(target, b"two")
        assert target.read_bytes() == b"two"
        assert leftovers(tmp_path) == []

    def test_failure_leaves_no_temp_and_old_file(self, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
        """If the rename fails, the old content stays and the temp file is removed."""
        target = tmp_path / "out.txt"
        target.write_bytes(b"old")

        def broken_replace(a: object, b: object) -> None:
            raise OSError(errno.EIO, "I/O error")

        monkeypatch.setattr(os, "replace", broken_replace)
        with pytest.raises(OSError):
            atomic_write_bytes(target, b"new")
        assert target.read_bytes() == b"old"
        assert leftovers(tmp_path) == []

    def test_mode_follows_umask(self, tmp_path: Path) -> None:
        """Results are readable by others like any program's output, not 0600."""
        old = os.umask(0o022)
        try:
            atomic_write_bytes(tmp_path / "out.txt", b"x")
        finally:
            os.umask(old)
        assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644

    def test_fsync_dir(self, tmp_path: Path) -> None:
        """fsync_dir works on a folder."""
        fsync_dir(tmp_path)


class TestMoveNoClobber:
    def test_plain_move(self, tmp_path: Path) -> None:
        """The source moves to the destination, creating parents."""
        src = tmp_path / "in" / "a.pdf"
        src.parent.mkdir()
        src.write_bytes(b"A")
        final = move_no_clobber(src, tmp_path / "arch" / "x" / "a.pdf")
        assert final == tmp_path / "arch" / "x" / "a.pdf"
        assert final.read_bytes() == b"A" and not src.exists()

    def test_never_overwrites(self, tmp_path: Path) -> None:
        """An existing destination survives with its bytes; the source goes to name-2."""
        src, dst = tmp_path / "a.pdf", tmp_path / "out" / "a.pdf"
        dst.parent.mkdir()
        src.write_bytes(b"new")
        dst.write_bytes(b"old")
        (tmp_path / "out" / "a-2.pdf").write_bytes(b"older")
        final = move_no_clobber(src, dst)
        assert final == tmp_path / "out" / "a-3.pdf"
        assert dst.read_bytes() == b"old"
        assert (tmp_path / "out" / "a-2.pdf").read_bytes() == b"older"
        assert final.read_bytes() == b"new"
        assert not src.exists()

    def test_missing_source(self, tmp_path: Path) -> None:
        """A second call after a completed move raises FileNotFoundError naming the source."""
        src = tmp_path / "a.pdf"
        src.write_bytes(b"A")
        move_no_clobber(src, tmp_path / "o" / "a.pdf")
        with pytest.raises(FileNotFoundError) as info:
            move_no_clobber(src, tmp_path / "o" / "a.pdf")
        assert info.value.filename == str(src)
        assert not (tmp_path / "o" / "a-2.pdf").exists()

    def test_resumes_after_crash_between_link_and_unlink(self, tmp_path: Path) -> None:
        """If both names are the same inode (crash after link), a retry only unlinks the source."""
        src, dst = tmp_path / "a.pdf", tmp_path / "o" / "a.pdf"
        dst.parent.mkdir()
        src.write_bytes(b"A")
        os.link(src, dst)
        assert move_no_clobber(src, dst) == dst
        assert not src.exists() and dst.read_bytes() == b"A"
        assert list(dst.parent.iterdir()) == [dst]

    def test_cross_filesystem(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """On EXDEV the bytes are copied, placed without clobbering, and the source removed."""
        src, dst = tmp_path / "a.pdf", tmp_path / "o" / "a.pdf"
        dst.parent.mkdir()
        src.write_bytes(b"content")
        os.utime(src, ns=(1_000_000_000, 1_000_000_000))
        dst.write_bytes(b"taken")
        real_link = os.link

        def link(a: object, b: object, *, follow_symlinks: bool = True) -> None:
            if Path(str(a)) == src:
                raise OSError(errno.EXDEV, "Invalid cross-device link")
            real_link(a, b)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "link", link)
        final = move_no_clobber(src, dst)
        assert final == tmp_path / "o" / "a-2.pdf"
        assert final.read_bytes() == b"content"
        assert final.stat().st_mtime_ns == 1_000_000_000
        assert dst.read_bytes() == b"taken"
        assert not src.exists()
        assert leftovers(tmp_path) == []

    def test_cross_filesystem_copy_failure_keeps_source(self, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
        """If the copy fails, the source is untouched and no temp file is left."""
        src, dst = tmp_path / "a.pdf", tmp_path / "o" / "a.pdf"
        src.write_bytes(b"content")

        def link(a: object, b: object, *, follow_symlinks: bool = True) -> None:
            raise OSError(errno.EXDEV, "Invalid cross-device link")

        def copy(*args: object, **kwargs: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "link", link)
        monkeypatch.setattr(fsops.shutil, "copyfileobj", copy)
        with pytest.raises(OSError, match="No space"):
            move_no_clobber(src, dst)
        assert src.read_bytes() == b"content"
        assert leftovers(tmp_path) == [] and list(dst.parent.iterdir()) == []

    def test_cross_filesystem_without_hard_links(self, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
        """EXDEV to a filesystem that has no hard links either: rename the copy into a free name."""
        src, dst = tmp_path / "a.pdf", tmp_path / "o" / "a.pdf"
        dst.parent.mkdir()
        src.write_bytes(b"content")
        dst.write_bytes(b"taken")

        def link(a: object, b: object, *, follow_symlinks: bool = True) -> None:
            if Path(str(a)) == src:
                raise OSError(errno.EXDEV, "Invalid cross-device link")
            raise OSError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(os, "link", link)
        final = move_no_clobber(src, dst)
        assert final == tmp_path / "o" / "a-2.pdf" and final.read_bytes() == b"content"
        assert dst.read_bytes() == b"taken" and not src.exists()
        assert leftovers(tmp_path) == []

    def test_rename_fallback_when_links_unsupported(self, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
        """Where link is refused (FAT, protected_hardlinks), rename still never overwrites."""
        src, dst = tmp_path / "a.pdf", tmp_path / "o" / "a.pdf"
        dst.parent.mkdir()
        src.write_bytes(b"new")
        dst.write_bytes(b"old")

        def link(a: object, b: object, *, follow_symlinks: bool = True) -> None:
            raise OSError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(os, "link", link)
        final = move_no_clobber(src, dst)
        assert final == tmp_path / "o" / "a-2.pdf" and final.read_bytes() == b"new"
        assert dst.read_bytes() == b"old" and not src.exists()

    def test_other_link_errors_propagate(self, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
        """An unexpected error (e.g. disk full) is raised and the source stays."""
        src = tmp_path / "a.pdf"
        src.write_bytes(b"A")

        def link(a: object, b: object, *, follow_symlinks: bool = True) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "link", link)
        with pytest.raises(OSError, match="No space"):
            move_no_clobber(src, tmp_path / "o" / "a.pdf")
        assert src.read_bytes() == b"A"


class TestStaleTemps:
    def test_removes_only_our_temps(self, tmp_path: Path) -> None:
        """Crash leftovers are removed; other hidden files are not."""
        (tmp_path / "sub").mkdir()
        ours = temp_path_for(tmp_path / "sub" / "a.txt")
        ours.write_bytes(b"half")
        download = tmp_path / ".b.docx.0123456789ab.part"  # a download temp of older versions
        download.write_bytes(b"half")
        (tmp_path / ".keep").write_bytes(b"")
        (tmp_path / ".a.txt.part").write_bytes(b"")
        assert sorted(remove_stale_temps(tmp_path)) == sorted([ours, download])
        assert sorted(p.name for p in tmp_path.rglob("*")) == [".a.txt.part", ".keep", "sub"]

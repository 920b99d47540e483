"""Tests for ocr_watch.intake.identity: content hash and file stamps."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from ocr_watch.intake.identity import FileStamp, sha256_file, stamp


class TestSha256:
    def test_matches_hashlib_across_chunks(self, tmp_path: Path) -> None:
        """Streaming in small chunks gives the same digest as hashing at once."""
        data = os.urandom(10_000)
        (tmp_path / "a.pdf").write_bytes(data)
        assert sha256_file(tmp_path / "a.pdf", chunk_size=333) == hashlib.sha256(data).hexdigest()

    def test_empty_and_missing(self, tmp_path: Path) -> None:
        """An empty file has the well-known digest; a missing one raises."""
        (tmp_path / "e").write_bytes(b"")
        assert sha256_file(tmp_path / "e") == hashlib.sha256(b"").hexdigest()
        with pytest.raises(FileNotFoundError):
            sha256_file(tmp_path / "nope")


class TestStamp:
    def test_stamp_changes_with_content_and_replacement(self, tmp_path: Path) -> None:
        """Rewriting changes the stamp; replacing the file changes the inode."""
        path = tmp_path / "a.pdf"
        path.write_bytes(b"one")
        first = stamp(path)
        assert first == stamp(path)
        assert first.size == 3
        os.utime(path, ns=(first.mtime_ns + 10**9, first.mtime_ns + 10**9))
        assert stamp(path) != first and stamp(path).same_file(first)
        other = tmp_path / "b.pdf"
        other.write_bytes(b"two")
        os.replace(other, path)
        assert not stamp(path).same_file(first)

    def test_frozen(self) -> None:
        """Stamps are hashable values."""
        s = FileStamp(size=1, mtime_ns=2, inode=3, dev=4)
        assert {s: 1}[FileStamp(1, 2, 3, 4)] == 1

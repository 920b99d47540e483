"""Tests for ocr_watch.intake.source: only regular files are read, and what is sent is hashed."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from ocr_watch.intake.identity import sha256_file
from ocr_watch.intake.source import (
    NotRegularFile,
    SentReader,
    SourceChanged,
    open_source,
    stamp_and_hash,
    writer_open,
)

pytestmark = pytest.mark.timeout(10)  # a FIFO opened the blocking way would hang here


def test_a_regular_file_is_read_in_blocking_mode(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(b"abc" * 1000)
    with open_source(path) as f:
        assert os.get_blocking(f.fileno())  # O_NONBLOCK cleared after the check
        assert f.read() == b"abc" * 1000
    assert sha256_file(path) == hashlib.sha256(b"abc" * 1000).hexdigest()
    current, digest = stamp_and_hash(path)
    assert digest == hashlib.sha256(b"abc" * 1000).hexdigest() and current.size == 3000


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFile, match="FIFO"):
        open_source(fifo)
    with pytest.raises(NotRegularFile):
        sha256_file(fifo)
    with pytest.raises(NotRegularFile):
        SentReader(fifo)


def test_a_symlink_is_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "secret.png"
    target.write_bytes(b"secret")
    link = tmp_path / "link.png"
    link.symlink_to(target)
    with pytest.raises(NotRegularFile, match="symbolic link"):
        open_source(link)
    with pytest.raises(NotRegularFile):
        stamp_and_hash(link)
    assert writer_open(link) is None


def test_the_reader_serves_the_size_at_open_and_hashes_exactly_what_it_served(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(b"x" * 100)
    reader = SentReader(path)
    assert reader.seek(0, io.SEEK_END) == 100 and reader.tell() == 0  # what httpx asks for the length
    with open(path, "ab") as f:
        f.write(b"grown")  # growth after open is not sent
    first = reader.read(60)
    assert reader.seek(0) == 0  # a retry starts again, with a fresh hash
    sent = reader.read(60) + reader.read(60) + reader.read(60)
    assert first == b"x" * 60 and sent == b"x" * 100 and reader.complete
    assert reader.sha256 == hashlib.sha256(sent).hexdigest()
    reader.close()


def test_a_file_that_shrinks_under_the_reader_raises(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(b"x" * 100)
    reader = SentReader(path)
    reader.read(10)
    with open(path, "r+b") as f:
        f.truncate(20)
    reader.read(10)
    with pytest.raises(SourceChanged):
        reader.read(50)
    assert not reader.complete
    reader.close()


def test_writer_open_sees_a_file_open_for_writing(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    with open(path, "wb") as f:
        f.write(b"page 1")
        f.flush()
        assert writer_open(path) is True
    assert writer_open(path) is False
    assert writer_open(tmp_path / "missing.png") is None

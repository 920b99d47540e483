"""PicWishClient.upload: what the service receives is what the returned digest says."""

from __future__ import annotations

import errno
import hashlib
import os
import pathlib
from typing import Any

import pytest

from ocr_watch.api import CreateOptions, PicWishClient
from ocr_watch.emulator import Emulator
from ocr_watch.intake import source as source_mod
from ocr_watch.intake.source import NotRegularFile, SourceChanged

pytestmark = pytest.mark.timeout(30)


def test_upload_reports_the_digest_and_stamp_of_the_bytes_sent(
        emulator: Emulator, with_client: Any, make_file: Any) -> None:
    path = make_file("scan.png")
    sent = with_client(lambda c: c.upload(path, CreateOptions()))
    assert sent.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert sent.stamp.inode == os.lstat(path).st_ino and sent.stamp.size == path.stat().st_size
    assert [t["sha256"] for t in emulator.tasks()] == [sent.sha256]


def test_a_name_that_is_not_utf8_still_uploads(emulator: Emulator, with_client: Any, make_file: Any,
                                                tmp_path: pathlib.Path) -> None:
    good = make_file("scan.png")
    odd = tmp_path / os.fsdecode(b"scan\xff.png")
    os.rename(good, odd)
    sent = with_client(lambda c: c.upload(odd, CreateOptions()))
    assert sent.task_id and emulator.tasks()[0]["source_name"].endswith(".png")


def test_a_fifo_is_never_opened_and_nothing_is_sent(emulator: Emulator, with_client: Any,
                                                    tmp_path: pathlib.Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)

    async def work(client: PicWishClient) -> None:
        with pytest.raises(NotRegularFile):
            await client.upload(fifo, CreateOptions())

    with_client(work)
    assert emulator.stats()["create_requests"] == 0


def test_a_file_shrinking_mid_upload_raises_and_creates_no_task(
        emulator: Emulator, with_client: Any, make_file: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_file("scan.png", size=300_000)
    real_read = source_mod.SentReader.read

    def shrinking(self: source_mod.SentReader, size: int = -1) -> bytes:
        if self.tell() > 0:
            raise SourceChanged(errno.EIO, "the file shrank while it was uploaded")
        return real_read(self, size)

    monkeypatch.setattr(source_mod.SentReader, "read", shrinking)

    async def work(client: PicWishClient) -> None:
        with pytest.raises(SourceChanged):
            await client.upload(path, CreateOptions())

    with_client(work)
    assert emulator.stats()["creates"] == 0

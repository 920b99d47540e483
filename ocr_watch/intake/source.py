"""Open an inbox file for reading, in exactly one place, so only regular files are ever read.

Everything that reads a source (the hash, the upload) opens it here: ``O_NOFOLLOW`` so a
symlink dropped or swapped into the inbox is never followed out of it, ``O_NONBLOCK`` so a
FIFO put in a file's place cannot block a worker thread in ``open()``, then ``fstat`` on the
descriptor itself must say "regular file" before one byte is read.

:class:`SentReader` is what the upload hands to httpx: it serves at most the size seen at
open and hashes exactly the bytes it serves, so the digest the journal records is the digest
of what the service received, even if the file is rewritten in place meanwhile.

:func:`writer_open` asks the kernel whether any process has a file open for writing (a read
lease cannot be had then). It needs the daemon to own the file or hold CAP_LEASE, and works on
local file systems only; when it cannot tell, it says None and the caller relies on events.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import os
import signal
import stat
from pathlib import Path
from typing import BinaryIO

from ocr_watch.intake.identity import FileStamp

__all__ = ["NotRegularFile", "SentReader", "SourceChanged", "describe_mode", "ignore_lease_breaks", "open_source",
           "stamp_and_hash", "writer_open"]

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class NotRegularFile(OSError):
    """The path is not a regular file (a symlink, FIFO, socket, device or folder)."""


class SourceChanged(OSError):
    """The file shrank while it was being read: it is being rewritten."""


def describe_mode(mode: int) -> str:
    """What a non-regular ``st_mode`` is, in plain words."""
    for test, what in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return what
    return "not a regular file"


def open_source(path: Path, *, buffered: bool = True) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file, never following a symlink.

    Raises :class:`NotRegularFile` saying what the path is instead, or the ``OSError`` of
    ``open`` (``FileNotFoundError`` when it is gone).
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
            raise NotRegularFile(errno.ELOOP, "a symbolic link", os.fsdecode(path)) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(errno.EINVAL, describe_mode(mode), os.fsdecode(path))
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb", buffering=-1 if buffered else 0)
    except BaseException:
        os.close(fd)
        raise


def stamp_and_hash(path: Path, chunk_size: int = 1 << 20) -> tuple[FileStamp, str]:
    """The stamp and SHA-256 of one open of ``path``: the stamp first, so a rewrite shows."""
    with open_source(path) as f:
        current = FileStamp.from_stat(os.fstat(f.fileno()))
        digest = hashlib.sha256()
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return current, digest.hexdigest()


class SentReader(io.RawIOBase):
    """A source as httpx uploads it: at most the size seen at open, hashed as it is served.

    No ``fileno``: httpx then takes the length from ``seek(0, SEEK_END)``, which is the size
    at open, so Content-Length and the bytes sent always agree. ``seek(0)`` (a retry) starts
    the hash again. A file that shrank under us raises :class:`SourceChanged`: the body would
    be short of its Content-Length, so the service cannot have made a task of it.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._file = open_source(path, buffered=False)  # each byte served is read then
        self.stamp = FileStamp.from_stat(os.fstat(self._file.fileno()))
        self.size = self.stamp.size
        self._digest = hashlib.sha256()
        self._served = 0

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the bytes served since the last ``seek(0)``."""
        return self._digest.hexdigest()

    @property
    def complete(self) -> bool:
        """Whether every byte of the size at open has been served."""
        return self._served == self.size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._served

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END and offset == 0:
            return self.size  # only ever asked for the length (peek_filelike_length)
        if whence == io.SEEK_SET and offset == self._served:
            return offset  # peek_filelike_length puts the position back
        if whence != io.SEEK_SET or offset != 0:
            raise io.UnsupportedOperation("only a rewind to 0 is supported")
        self._file.seek(0)
        self._digest = hashlib.sha256()
        self._served = 0
        return 0

    def read(self, size: int = -1) -> bytes:
        left = self.size - self._served
        want = left if size is None or size < 0 else min(size, left)
        if want <= 0:
            return b""
        data = self._file.read(want)
        if not data:
            raise SourceChanged(errno.EIO, f"the file shrank while it was uploaded (read {self._served} "
                                           f"of {self.size} bytes)")
        self._digest.update(data)
        self._served += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


def ignore_lease_breaks() -> None:
    """A writer opening a file during :func:`writer_open`'s instant of lease breaks it, and
    the kernel tells the lease holder with SIGIO, whose default action ends the process.
    Call once from the main thread; elsewhere it does nothing (the signal stays default)."""
    try:
        signal.signal(signal.SIGIO, signal.SIG_IGN)
    except (ValueError, AttributeError):  # not the main thread; no SIGIO on this platform
        pass


def writer_open(path: Path) -> bool | None:
    """True if some process has ``path`` open for writing, False if none has, None if the
    kernel will not say (not Linux, not our file without CAP_LEASE, a network share)."""
    setlease = getattr(fcntl, "F_SETLEASE", None)
    if setlease is None:
        return None
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        try:
            fcntl.fcntl(fd, setlease, fcntl.F_RDLCK)
        except OSError as exc:
            return True if exc.errno in (errno.EAGAIN, errno.EBUSY) else None
        fcntl.fcntl(fd, setlease, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)

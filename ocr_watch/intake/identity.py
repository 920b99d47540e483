"""Tell files apart: by content (SHA-256, the dedupe key) and by stamp (is it the same file?).

A stamp lets the daemon tell "the same file as before" (same inode, size and mtime) from "a new
file at the same path", e.g. a scanner overwriting ``scan.pdf``. The content hash keeps one
credit per content: the same bytes dropped twice are recognised.
"""

from __future__ import annotations

import hashlib
import os
import stat as statmod
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FileStamp", "sha256_file", "stamp"]


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of the file's content, read in chunks (sources run to 200 MB); only a
    regular file is read (see ``source.open_source``)."""
    from ocr_watch.intake.source import open_source  # it builds on FileStamp, defined here

    digest = hashlib.sha256()
    with open_source(path) as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileStamp:
    """What ``stat`` says about a file, enough to notice it changed or was replaced."""

    size: int
    mtime_ns: int
    inode: int
    dev: int
    # Permission bits, so results are no more open than their source; a chmod alone does not
    # make a file another file, so they take no part in comparisons.
    mode: int | None = field(default=None, compare=False)

    @classmethod
    def from_stat(cls, st: os.stat_result) -> FileStamp:
        """Build from an ``os.stat`` result."""
        return cls(size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino, dev=st.st_dev,
                   mode=statmod.S_IMODE(st.st_mode))

    @property
    def key(self) -> tuple[int, int, int]:
        """(size, mtime_ns, inode): what the journal keeps to recognise this very file."""
        return (self.size, self.mtime_ns, self.inode)

    def same_file(self, other: FileStamp) -> bool:
        """The same file on disk (inode and device), whether or not it changed."""
        return (self.inode, self.dev) == (other.inode, other.dev)


def stamp(path: Path) -> FileStamp:
    """The stamp of ``path`` itself now (a symlink's own, never its target's); raises
    OSError (FileNotFoundError) like ``os.lstat``."""
    return FileStamp.from_stat(os.lstat(path))

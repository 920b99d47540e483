"""Durable file operations: write atomically, move without ever overwriting.

A shared leaf (it imports only `ocr_watch.names`): the API client writes its downloads with
it, the pool its planner memory, results their reports and moves, runlock its owner record.

Everything here assumes ``kill -9`` may strike between any two lines. A write is either absent or
complete (temp file, fsync, rename, fsync of the folder). A move never replaces an existing file:
on one filesystem it is ``link`` + ``unlink``, where ``link`` fails atomically if the name is
taken; across filesystems the bytes are copied to a hidden temp file first.

What a crash can leave behind, and what a repeated call does about it:

* a hidden temp ``.<name>.ocrw-<hex>.part`` in the destination folder (remove with
  :func:`remove_stale_temps` at start-up; the watcher ignores dot files);
* after ``link`` but before ``unlink``: the same file under both names. Calling
  :func:`move_no_clobber` again notices the destination is the same inode and just unlinks
  the source;
* a cross-filesystem move interrupted after the copy was linked into place: both copies stay,
  and a repeated call makes a second copy under a ``-2`` name. Duplicated, never lost.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import BinaryIO

from ocr_watch.names import fit_name, sibling_candidates

__all__ = ["AtomicFile", "atomic_write_bytes", "copy_mode", "fsync_dir", "move_no_clobber",
           "remove_stale_temps", "temp_path_for"]

# Ours (``.<name>.ocrw-<8 hex>.part``), and the download temps (``.<name>.<12 hex>.part``) the
# API client named itself until it used AtomicFile: an upgrade after a crash may find
# them. Both only ever live in folders we own.
_TEMP_RE = re.compile(r"^\..+\.(?:ocrw-[0-9a-f]{8}|[0-9a-f]{12})\.part$")
# link() errors meaning "this filesystem (or policy) does not do hard links here": fall back to
# rename. EPERM also covers fs.protected_hardlinks on files owned by someone else.
_NO_LINK = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK,
            errno.EINVAL}


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (creations, renames, removals) durable."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    except OSError as exc:  # some network filesystems refuse fsync on a folder
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def temp_path_for(path: Path) -> Path:
    """A fresh hidden temp name beside ``path``; :func:`remove_stale_temps` recognises it.
    A name near the file system's limit is cut to make room (``naming.fit_name``)."""
    return path.with_name(fit_name(f".{path.name}", f".ocrw-{secrets.token_hex(4)}.part"))


def copy_mode(source_mode: int | None) -> int:
    """Permission bits for a file made from a source (its result, its report): read and write
    bits the source has, never more, and the umask on top; owner-only if it is unknown."""
    return 0o600 if source_mode is None else source_mode & 0o666


def _create_temp(path: Path, mode: int = 0o666) -> tuple[int, Path]:
    while True:
        temp = temp_path_for(path)
        try:
            # `mode` and the umask, like any other program's output (mkstemp would give 0o600).
            return os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, mode), temp
        except FileExistsError:
            continue


class AtomicFile:
    """A new version of ``path`` being written under a hidden temp name; a reader or a crash
    sees the old file or the whole new one.

    Write to ``file`` inside ``with``: an exception there removes the temp file. After the
    block, :meth:`commit` (fsync, rename, fsync of the folder) makes it ``path``. The steps
    are apart so that an async caller can write on its event loop and commit in a thread: on
    a network share the commit can take far longer than the writes.
    """

    def __init__(self, path: Path, mode: int = 0o666) -> None:
        """``mode``: permission bits before the umask (see :func:`copy_mode`)."""
        self.path = path
        fd, self._temp = _create_temp(path, mode)
        self.file: BinaryIO = os.fdopen(fd, "wb")

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None:
            self.discard()

    def commit(self) -> None:
        """Make the written bytes ``path``. On failure the temp file is removed and ``path``
        is as it was."""
        try:
            with self.file:
                self.file.flush()
                os.fsync(self.file.fileno())
            os.replace(self._temp, self.path)
        except BaseException:
            self._temp.unlink(missing_ok=True)
            raise
        fsync_dir(self.path.parent)

    def discard(self) -> None:
        """Give up: close and remove the temp file; ``path`` is untouched."""
        try:
            self.file.close()
        finally:
            self._temp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o666) -> None:
    """Write ``data`` to ``path`` so that a reader or a crash sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with AtomicFile(path, mode) as target:
        target.file.write(data)
    target.commit()


def move_no_clobber(src: Path, dst: Path) -> Path:
    """Move ``src`` to ``dst``, or to the first free ``dst-N`` sibling; return where it went.

    Never replaces an existing file. Raises :class:`FileNotFoundError` if ``src`` is gone (the
    caller's journal knows whether that means the move already happened).
    """
    try:
        src_stat = os.lstat(src)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "cannot move: the source is gone", str(src)) from None
    dst.parent.mkdir(parents=True, exist_ok=True)
    for candidate in sibling_candidates(dst):
        try:
            os.link(src, candidate, follow_symlinks=False)
        except FileExistsError:
            if _same_inode(src_stat, candidate):  # a crash between link and unlink: finish it
                break
            continue
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                return _move_across_filesystems(src, dst)
            if exc.errno in _NO_LINK:
                return _rename_no_clobber(src, dst)
            raise
        break
    os.unlink(src)
    _fsync_both(src.parent, candidate.parent)
    return candidate


def _same_inode(src_stat: os.stat_result, other: Path) -> bool:
    try:
        st = os.lstat(other)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (src_stat.st_dev, src_stat.st_ino)


def _rename_no_clobber(src: Path, dst: Path) -> Path:
    # Only for filesystems without hard links: check-then-rename is racy against another
    # writer creating the same name in between, but nothing of ours does that.
    for candidate in sibling_candidates(dst):
        if candidate.exists() or candidate.is_symlink():
            continue
        os.rename(src, candidate)
        _fsync_both(src.parent, candidate.parent)
        return candidate
    raise AssertionError("unreachable")  # pragma: no cover


def _move_across_filesystems(src: Path, dst: Path) -> Path:
    fd, temp = _create_temp(dst)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        shutil.copystat(src, temp)  # keep the mtime: an archive should look like the original
        final = _place_temp(temp, dst)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(final.parent)
    os.unlink(src)
    fsync_dir(src.parent)
    return final


def _place_temp(temp: Path, dst: Path) -> Path:
    """Give the finished temp file the first free name; the temp name is removed."""
    for candidate in sibling_candidates(dst):
        try:
            os.link(temp, candidate)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno in _NO_LINK:
                return _rename_no_clobber(temp, dst)
            raise
        os.unlink(temp)
        return candidate
    raise AssertionError("unreachable")  # pragma: no cover


def _fsync_both(a: Path, b: Path) -> None:
    fsync_dir(b)
    if a != b:
        fsync_dir(a)


def remove_stale_temps(root: Path) -> list[Path]:
    """Delete temp files a crash left anywhere under ``root``; return what was removed."""
    removed = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            if _TEMP_RE.match(name):
                path = Path(dirpath) / name
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed

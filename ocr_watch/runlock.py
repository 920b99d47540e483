"""One daemon per state_dir and per inbox: exclusive locks held for the life of the process.

Why: two daemons on one journal make transitions behind each other's back (files paid twice,
paid files quarantined); two daemons with two journals on one inbox each upload every file.
So `run` and `once` take two ``flock(LOCK_EX | LOCK_NB)`` locks before the journal is opened:

* ``state_dir/lock`` (0600), which then holds the holder's pid as text, for the message;
* each job's inbox folder itself, through an ``O_RDONLY | O_DIRECTORY`` descriptor: nothing
  is written into the user's inbox.

A second daemon gets :class:`Busy` (the CLI exits 75, EX_TEMPFAIL, which systemd's
``Restart=on-failure`` retries). The descriptors stay open, close-on-exec, until the process
ends; the kernel drops flock locks at any exit, ``kill -9`` included, so there is nothing
stale to clean up. The holder's pid comes from ``/proc/locks`` (or the lock file's text).
A filesystem that cannot flock (some network shares) is logged and not locked, as before.

A state_dir also records which inboxes it serves (``state_dir/owner.json``, written
atomically, under the lock): a state_dir claimed by other inboxes stops start-up as a
configuration error (:func:`claim_state_dir`), so two configurations can never share a journal.
With jobs, a configuration that still serves one of the recorded inboxes is the same one with
jobs added or removed: it is let in, and the record updated.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from types import TracebackType

import structlog

from ocr_watch.config import OWNER_FILE, ConfigError, read_owners
from ocr_watch.fsops import atomic_write_bytes

__all__ = ["LOCK_FILE", "Busy", "RunLock", "acquire", "claim_state_dir", "holder"]

log = structlog.get_logger("ocr_watch.runlock")

LOCK_FILE = "lock"
# flock errors meaning "this filesystem does not do it" (NFS refuses an exclusive lock on a
# read-only descriptor, some SMB mounts have no locks): go on unlocked, as before locks existed.
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.EBADF, errno.ENOSYS}


class Busy(Exception):
    """Another process holds a lock we need: ``what`` names it, ``pid`` is its holder if known."""

    def __init__(self, what: str, path: Path, pid: int | None) -> None:
        self.what, self.path, self.pid = what, path, pid
        holder = f"pid {pid}" if pid else "unknown pid"
        verb = "using state_dir" if what == "state_dir" else "watching inbox"
        super().__init__(f"another ocr-watch ({holder}) is already {verb} {path}")


class RunLock:
    """The locks this process holds; :meth:`release` (or leaving ``with``) closes them."""

    def __init__(self) -> None:
        self._fds: list[int] = []

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def release(self) -> None:
        while self._fds:
            os.close(self._fds.pop())

    def _hold(self, what: str, path: Path, fd: int) -> bool:
        """Lock ``fd`` or raise :class:`Busy`; False if the filesystem cannot lock (fd closed)."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                pid = _holder_pid(fd) or (_pid_in(fd) if what == "state_dir" else None)
                os.close(fd)
                raise Busy(what, path, pid) from None
            os.close(fd)
            if exc.errno not in _UNSUPPORTED:
                raise
            log.warning("lock_unsupported", what=what, path=str(path), error=exc.strerror or str(exc))
            return False
        self._fds.append(fd)
        return True


def acquire(state_dir: Path, inbox: Path, *, others: Mapping[str, Path] | None = None) -> RunLock:
    """Lock ``state_dir``, then ``inbox``, then the ``others`` (more jobs' inboxes, by their
    dotted key); raise :class:`Busy` (nothing held) if any is taken.

    A lock file or an inbox that cannot be opened is a :class:`ConfigError` naming the key.
    """
    lock = RunLock()
    try:
        path = state_dir / LOCK_FILE
        fd = _open("state_dir", path, os.O_RDWR | os.O_CREAT)
        if lock._hold("state_dir", state_dir, fd):
            # Ours now: replace whatever pid a previous holder left.
            with suppress(OSError):  # the pid only names us to a second daemon
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        fd = _open("folders.inbox", inbox, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        lock._hold("inbox", inbox, fd)
        for key, other in (others or {}).items():
            fd = _open(key, other, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            lock._hold("inbox", other, fd)
    except BaseException:
        lock.release()
        raise
    return lock


def claim_state_dir(state_dir: Path, inbox: Path, *, others: tuple[Path, ...] = ()) -> None:
    """Record that ``state_dir`` serves ``inbox`` (and the ``others``: more jobs' inboxes), or
    raise :class:`ConfigError` if it serves none of them. Call with the state_dir's lock held."""
    try:
        owners = read_owners(state_dir)
    except (OSError, ValueError) as exc:
        raise ConfigError([f"state_dir: cannot read {state_dir / OWNER_FILE} ({exc}); remove it "
                           "if this state_dir belongs to this configuration"]) from None
    ours = [inbox, *others]
    if owners == ours:
        return
    if owners and not set(owners) & set(ours):
        raise ConfigError([
            f"state_dir: {state_dir} already serves the inbox {owners[0]}, not folders.inbox {inbox}; "
            "give each inbox its own state_dir (if the inbox was moved here, remove "
            f"{state_dir / OWNER_FILE})"])
    record: dict[str, object] = {"inbox": str(inbox)}
    if others:
        record["inboxes"] = [str(p) for p in others]
    data = json.dumps(record) + "\n"  # a name in any bytes: surrogates, escaped
    try:
        atomic_write_bytes(state_dir / OWNER_FILE, data.encode(), 0o600)  # state_dir: ours alone
    except OSError as exc:
        raise ConfigError([f"state_dir: cannot write {state_dir / OWNER_FILE}: {exc.strerror or exc}"]) from None
    log.info("state_dir_claimed", state_dir=str(state_dir), inbox=str(inbox))


def holder(state_dir: Path) -> int | None:
    """The pid of the ocr-watch holding ``state_dir``'s lock, or None: for `status`, which must
    see a running daemon without ever taking (or waiting for) its lock.

    Read-only: the lock file is opened for reading, never created, and no lock is asked for
    (a probe with ``LOCK_SH | LOCK_NB`` would, for its instant, make the daemon's own
    ``LOCK_EX | LOCK_NB`` fail as "busy"). The holder comes from ``/proc/locks``; where that
    cannot be read, the pid the holder wrote into the file counts if that process is alive
    and is an ocr-watch.
    """
    try:
        fd = os.open(state_dir / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None  # no lock file: never run here (or unreadable: cannot tell)
    try:
        if os.path.exists("/proc/locks"):
            return _holder_pid(fd)
        pid = _pid_in(fd)
    finally:
        os.close(fd)
    return pid if pid is not None and _is_ocr_watch(pid) else None


def _is_ocr_watch(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return True  # alive, and no way to tell what it is
    return b"ocr_watch" in cmdline or b"ocr-watch" in cmdline


def _open(key: str, path: Path, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ConfigError([f"{key}: cannot open {path} to lock it: {exc.strerror or exc}"]) from None


def _holder_pid(fd: int) -> int | None:
    """The pid holding a flock on ``fd``'s file, from ``/proc/locks``; None if not found.

    Lines look like ``1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF``: device numbers in
    hex, the inode in decimal. A waiter's line has ``->`` after the number.
    """
    st = os.fstat(fd)
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->" or fields[1] != "FLOCK":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            where = (int(major, 16), int(minor, 16), int(inode))
            pid = int(fields[4])
        except ValueError:
            continue
        if where == want and pid > 0:
            return pid
    return None


def _pid_in(fd: int) -> int | None:
    """The pid the holder wrote into the lock file, if it did."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
        pid = int(text)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return pid if pid > 0 else None

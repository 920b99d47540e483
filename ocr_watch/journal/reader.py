"""A read-only look at the journal, for `status` and the metrics, beside a running daemon.

Why a second door: the daemon is the journal's single writer and `Journal()` writes as it
opens (migrations, the "open" note, a checkpoint). A reader here never writes, never takes
a lock the daemon waits for, and never blocks it:

- It opens the file through SQLite's `file:...?mode=ro` URI. With a `-wal` file beside the
  journal (the daemon runs, or was killed), it reads the journal plus the log through the
  shared `-shm` index as any WAL reader does; a read-only connection cannot checkpoint, so
  it never deletes or shrinks the `-wal` the integrity check relies on (see integrity.py).
- With no `-wal` (nothing runs, closed cleanly), it adds `immutable=1`, so it creates no
  `-wal` or `-shm` in the state_dir either. Should the daemon start in that very moment,
  the read is simply tried again the ordinary way.
- A journal that does not exist yet reads as empty: every count zero, not an error.

A read lasts milliseconds and holds only a WAL read mark: the daemon's commits never wait for
it, its automatic checkpoints pass it by, and the one full checkpoint it makes as it opens
waits at most for that read to end.

The numbers are totals over the journal's life: `status` shows them as they are, and the
`ocr_watch_files_in_state` gauge is read from here at each scrape.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .states import FileState

__all__ = ["META_CREDITS_ASKED_AT", "META_CREDITS_LEFT", "Done", "Snapshot", "Waiting", "read_counts",
           "read_job_counts", "read_snapshot"]

# Meta keys the daemon writes (Journal.note) and status reads: the last figure the service
# gave for the credits left ("" when unreadable), and when it was asked (unix seconds).
META_CREDITS_LEFT = "credits_left"
META_CREDITS_ASKED_AT = "credits_asked_at"


@dataclass(frozen=True, slots=True)
class Waiting:
    """The oldest file not yet finished."""

    rel: str
    state: FileState
    first_seen: float


@dataclass(frozen=True, slots=True)
class Done:
    """The newest file finished well."""

    rel: str
    output_rel: str | None
    finished_at: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the journal says, at one instant."""

    exists: bool
    counts: dict[str, int] = field(default_factory=lambda: {s.value: 0 for s in FileState})
    oldest_waiting: Waiting | None = None
    last_success: Done | None = None
    credits_spent: int = 0  # tasks that ended done: the service bills one credit each
    possible_double_charges: int = 0
    credits_left: int | None = None
    credits_asked_at: float | None = None
    # Files per state, by job (issue 18); a journal of an older version: all 'default'.
    job_counts: dict[str, dict[str, int]] = field(default_factory=dict)


def _as_text(value: object) -> str:
    """A path column: TEXT, or the BLOB of a name that is not UTF-8 (see store.py)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


@contextmanager
def _reading(path: Path) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection, or None if there is no journal yet."""
    if not path.exists():
        yield None
        return
    quiet = not Path(f"{path}-wal").exists()
    uri = path.resolve().as_uri() + ("?mode=ro&immutable=1" if quiet else "?mode=ro")
    with closing(sqlite3.connect(uri, uri=True, timeout=1.0)) as db:
        yield db


def _counts(db: sqlite3.Connection) -> dict[str, int]:
    counts = {s.value: 0 for s in FileState}
    for state, number in db.execute("SELECT state, COUNT(*) FROM files GROUP BY state"):
        counts[str(state)] = int(number)
    return counts


def _job_counts(db: sqlite3.Connection) -> dict[str, dict[str, int]]:
    try:
        found = db.execute("SELECT job, state, COUNT(*) FROM files GROUP BY job, state").fetchall()
    except sqlite3.OperationalError as exc:
        if "no such column" not in str(exc):
            raise
        found = [("default", state, number) for state, number in
                 db.execute("SELECT state, COUNT(*) FROM files GROUP BY state")]
    counts: dict[str, dict[str, int]] = {}
    for job, state, number in found:
        counts.setdefault(_as_text(job), {s.value: 0 for s in FileState})[str(state)] = int(number)
    return counts


def _snapshot(db: sqlite3.Connection) -> Snapshot:
    counts = _counts(db)
    row = db.execute("SELECT rel, state, first_seen FROM files WHERE state NOT IN ('done', 'quarantined')"
                     " ORDER BY first_seen, id LIMIT 1").fetchone()
    waiting = Waiting(_as_text(row[0]), FileState(row[1]), float(row[2])) if row else None
    row = db.execute("SELECT rel, output_rel, finished_at FROM files WHERE state = 'done'"
                     " ORDER BY finished_at DESC, id DESC LIMIT 1").fetchone()
    done = Done(_as_text(row[0]), None if row[1] is None else _as_text(row[1]), float(row[2])) if row else None
    spent = db.execute("SELECT COUNT(DISTINCT task_id) FROM files WHERE result_url IS NOT NULL").fetchone()[0]
    doubles = db.execute("SELECT COALESCE(SUM(possible_double_charges), 0) FROM files").fetchone()[0]
    meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN (?, ?)",
                           (META_CREDITS_LEFT, META_CREDITS_ASKED_AT)))
    left = meta.get(META_CREDITS_LEFT, "")
    asked = meta.get(META_CREDITS_ASKED_AT, "")
    return Snapshot(exists=True, counts=counts, oldest_waiting=waiting, last_success=done,
                    credits_spent=int(spent), possible_double_charges=int(doubles),
                    credits_left=int(left) if left.isdigit() else None,
                    credits_asked_at=float(asked) if asked else None, job_counts=_job_counts(db))


def _read(path: Path, what: str) -> object:
    """The snapshot or the counts; None for no journal (or one being created, with no table yet)."""
    for attempt in (1, 2):
        try:
            with _reading(path) as db:
                if db is None:
                    return None
                return {"snapshot": _snapshot, "counts": _counts, "job_counts": _job_counts}[what](db)
        except sqlite3.DatabaseError as exc:
            if "no such table" in str(exc):
                return None
            # An immutable read of a journal the daemon opened that instant, or a busy moment:
            # once more, the ordinary way (it has a -wal by now).
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def read_snapshot(path: Path) -> Snapshot:
    """Everything `status` shows from the journal at `path`; an empty one if it does not exist.
    Raises ``sqlite3.DatabaseError`` for a file that is not a journal."""
    found = _read(path, "snapshot")
    return found if isinstance(found, Snapshot) else Snapshot(exists=False)


def read_job_counts(path: Path) -> dict[str, dict[str, int]]:
    """Files per journal state, by job (the jobs with a row; every state named)."""
    found = _read(path, "job_counts")
    return found if isinstance(found, dict) else {}


def read_counts(path: Path) -> dict[str, int]:
    """Files per journal state (every state named, zero included)."""
    found = _read(path, "counts")
    return found if isinstance(found, dict) else {s.value: 0 for s in FileState}

"""The journal: one SQLite row per source file, written before each step that depends on it.

Why SQLite: a transaction per transition is atomic and survives `kill -9` at any line; the
standard library has it; a person can open the file with `sqlite3` to see what happened.
WAL with `synchronous=NORMAL` makes a commit durable against a process crash without an
fsync per step (a power cut may lose the last few commits, never corrupt the file).

The journal knows nothing of HTTP or of the folder layout: paths are strings relative to
the inbox, task ids are opaque strings.

A file name is any bytes the file system allows, and Python hands a name that is not UTF-8 to
us as a string with lone surrogates (`os.fsdecode`), which SQLite cannot store as text. Such a
string is stored as a BLOB of its original bytes and read back as the same string; every other
string stays TEXT, so the file reads as before in `sqlite3`. It holds pre-signed result links,
so it is created readable by its owner only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Any

from .integrity import JournalError, check_after_opening, look_before_opening, new_journal_id, write_marker
from .rows import COLUMNS, SETTABLE, Row, RowOptions, options_key, to_params, to_row
from .states import TERMINAL, FileState, Stage, check_transition
from .transitions import Transitions

__all__ = ["Journal", "Row", "RowOptions", "options_key"]

_SCHEMA_VERSION = 7

_SCHEMA_V1 = """
CREATE TABLE files (
    id               INTEGER PRIMARY KEY,
    rel              TEXT    NOT NULL,  -- source path relative to the inbox, POSIX separators
    size             INTEGER NOT NULL,
    mtime_ns         INTEGER NOT NULL,
    inode            INTEGER NOT NULL,
    sha256           TEXT,
    options_key      TEXT    NOT NULL,  -- format + language: the same content with other options is other work
    state            TEXT    NOT NULL,
    task_id          TEXT,
    task_created_at  REAL,
    result_url       TEXT,              -- pre-signed; not a secret of ours, but expires
    result_url_at    REAL,              -- when we learnt it: it is valid for about an hour after
    output_rel       TEXT,              -- reserved output path relative to the outbox
    final_path       TEXT,              -- where the source went (archive or quarantine), if it moved
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_stage       TEXT,
    last_error       TEXT,
    last_http_status INTEGER,
    last_task_state  INTEGER,
    first_seen       REAL    NOT NULL,
    updated_at       REAL    NOT NULL,
    finished_at      REAL
);
-- While a file is being worked on, its path belongs to one row only.
CREATE UNIQUE INDEX files_live_rel ON files(rel) WHERE state NOT IN ('done', 'quarantined');
-- Two live rows never write the same output.
CREATE UNIQUE INDEX files_live_output ON files(output_rel)
    WHERE output_rel IS NOT NULL AND state NOT IN ('done', 'quarantined');
CREATE INDEX files_sha ON files(sha256, options_key);
CREATE INDEX files_task ON files(task_id);
CREATE INDEX files_state ON files(state);
"""

_MIGRATIONS = {
    1: _SCHEMA_V1,
    # Admission asks "was this very file finished already?" for every file it sees; without
    # an index on the path that scanned every finished row (25 ms a file at 100k rows).
    2: "CREATE INDEX files_rel ON files(rel);",
    # The source's permission bits, so no output or report is more open than its source.
    # NULL (rows of an older version) reads as "unknown": the strictest, owner-only.
    3: "ALTER TABLE files ADD COLUMN mode INTEGER;",
    # Who the journal is (its id, also in the marker beside it) and whether it is open now:
    # see integrity.py.
    4: "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    # Uploads sent whole whose answer was lost (a task may exist, billed), and how many of
    # those were sent again: each of these may have been paid twice. `status` and metrics
    # read them.
    5: "ALTER TABLE files ADD COLUMN lost_create_answers INTEGER NOT NULL DEFAULT 0;"
       "ALTER TABLE files ADD COLUMN possible_double_charges INTEGER NOT NULL DEFAULT 0;",
    # A file moved back from quarantine is found by its inode (see quarantined_as).
    6: "CREATE INDEX files_inode ON files(inode);",
    # Jobs (issue 18): each row knows its job, and the options it was admitted with (format,
    # language, password, the rule that matched), fixed then so a reload or a restart never
    # changes what a file in flight pays for. A file asked for in several formats is one row
    # per format, all with the `batch` of its first row. A path is live once per job and
    # format. Rows of an older version have no options yet (NULL): the first start that
    # knows them fixes them from the configuration, as that version would have (`fix_options`).
    7: "ALTER TABLE files ADD COLUMN job TEXT NOT NULL DEFAULT 'default';"
       "ALTER TABLE files ADD COLUMN format TEXT;"
       "ALTER TABLE files ADD COLUMN language TEXT;"
       "ALTER TABLE files ADD COLUMN password TEXT;"
       "ALTER TABLE files ADD COLUMN rule INTEGER;"
       "ALTER TABLE files ADD COLUMN batch INTEGER;"
       "DROP INDEX files_live_rel;"
       "CREATE UNIQUE INDEX files_live_rel ON files(job, rel, COALESCE(format, ''))"
       " WHERE state NOT IN ('done', 'quarantined');"
       "DROP INDEX files_rel;"
       "CREATE INDEX files_rel ON files(job, rel);"
       # an output name is a job's outbox's: two jobs may each write a.txt at once
       "DROP INDEX files_live_output;"
       "CREATE UNIQUE INDEX files_live_output ON files(job, output_rel)"
       " WHERE output_rel IS NOT NULL AND state NOT IN ('done', 'quarantined');"
       "CREATE INDEX files_batch ON files(batch) WHERE batch IS NOT NULL;",
}

# Owner-only: the journal holds pre-signed links to every result.
_FILE_MODE = 0o600


def _private_file(path: Path) -> None:
    """Create `path` owner-only if new, and take group and other bits off if not."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, _FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, _FILE_MODE)
    finally:
        os.close(fd)


def _among(jobs: Collection[str] | None) -> str:
    """A condition on the job column for `jobs` (their values follow the others'); none: any."""
    return "" if jobs is None else f" AND job IN ({', '.join('?' * len(jobs))})"


class Journal(Transitions):
    """The single writer of the journal; used from the event loop's thread only. Its moves are
    the typed methods of :class:`Transitions`, each one call of :meth:`_update`."""

    def __init__(self, path: Path, *, clock: Any = time.time) -> None:
        """Open (or create) the journal; :class:`JournalError` if it is lost, foreign, corrupt
        or not writable, with a message that names the file and the remedy."""
        self.path = path
        self._clock = clock
        path.parent.mkdir(parents=True, exist_ok=True)
        before = look_before_opening(path)
        try:
            # SQLite gives its -wal and -shm files the main file's permission bits.
            _private_file(path)
            for side in ("-wal", "-shm"):
                if Path(f"{path}{side}").exists():
                    _private_file(Path(f"{path}{side}"))
            # isolation_level=None: we open our own transactions, one per transition.
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._migrate()
            journal_id, was_open = self._identity()
        except (OSError, sqlite3.DatabaseError) as exc:
            if isinstance(exc, OSError) or "readonly" in str(exc) or "unable to open" in str(exc):
                remedy = f"give the daemon's user write access to it and to {path.parent}"
            else:
                remedy = "move it aside and restore it from a backup (or delete it and its .id marker to start afresh)"
            raise JournalError(f"journal {path} cannot be used: {exc}; {remedy}") from None
        check_after_opening(path, before, journal_id, was_open)
        if before.marker_id is None:
            write_marker(path, journal_id)
        self._set_meta("open", "1")
        # Into the main file now, with the id: a WAL lost later cannot take the note with it.
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        # The single writer knows every row it has written: live rows it has touched are
        # kept here, so a transition costs one statement, not a read and a write
        # (measured: 16 of 27 statements per file were reads by id). Finished rows leave.
        self._live: dict[int, Row] = {}

    def _migrate(self) -> None:
        """Bring the file to the newest schema, one step per version, each step atomic."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > _SCHEMA_VERSION:
            raise RuntimeError(
                f"journal {self.path} has schema version {version}; this ocr-watch knows {_SCHEMA_VERSION}"
            )
        for step in range(version + 1, _SCHEMA_VERSION + 1):
            # executescript commits on its own; the script carries its transaction, so a
            # crash leaves the previous version or this one, never half of a step.
            self._db.executescript(f"BEGIN IMMEDIATE;{_MIGRATIONS[step]}PRAGMA user_version={step};COMMIT;")

    def _identity(self) -> tuple[str, bool]:
        """The journal's id (made on first use) and whether the last run left it open."""
        meta = dict(self._db.execute("SELECT key, value FROM meta"))
        journal_id = meta.get("journal_id")
        if journal_id is None:
            journal_id = new_journal_id()
            self._set_meta("journal_id", journal_id)
        return journal_id, meta.get("open") == "1"

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?)"
                         " ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def note(self, key: str, value: str) -> None:
        """Keep a figure others read without the daemon (`status`: the credits left, see reader.py)."""
        self._set_meta(key, value)

    def close(self) -> None:
        """Note a clean close (see integrity.py), then close."""
        try:
            self._set_meta("open", "0")
        finally:
            self._db.close()

    # -- reading -------------------------------------------------------------------------

    def _select(self, where: str, params: tuple[Any, ...] = ()) -> list[Row]:
        sql = f"SELECT {', '.join(COLUMNS)} FROM files WHERE {where}"
        return [to_row(r) for r in self._db.execute(sql, to_params(params))]

    def get(self, row_id: int) -> Row:
        cached = self._live.get(row_id)
        if cached is not None:
            return cached
        rows = self._select("id = ?", (row_id,))
        if not rows:
            raise KeyError(row_id)
        return self._remember(rows[0])

    def _remember(self, row: Row) -> Row:
        if row.state in TERMINAL:
            self._live.pop(row.id, None)
        else:
            self._live[row.id] = row
        return row

    def live_rows(self) -> list[Row]:
        """Every row not yet done or quarantined: the work a restart must resume."""
        return self._select("state NOT IN ('done', 'quarantined') ORDER BY id")

    def live_for(self, rel: str, job: str = "default") -> Row | None:
        """A live row of `job`'s file at `rel` (of any of its formats), if any."""
        rows = self._select("job = ? AND rel = ? AND state NOT IN ('done', 'quarantined') LIMIT 1", (job, rel))
        return rows[0] if rows else None

    def siblings(self, row: Row) -> list[Row]:
        """The other rows of a file asked for in several formats (one row per format)."""
        if row.batch is None:
            return []
        return self._select("batch = ? AND id != ? ORDER BY id", (row.batch, row.id))

    def delivered(self, job: str, sha256: str, options_key: str, *, exclude_id: int) -> Row | None:
        """The latest row of `job` that wrote an output of the same content and options, in a
        file whose other format failed: that file run again (moved back from quarantine) need
        not pay for this output twice."""
        rows = self._select(
            "job = ? AND sha256 = ? AND options_key = ? AND state = 'done' AND output_rel IS NOT NULL"
            " AND id != ? AND batch IS NOT NULL AND EXISTS (SELECT 1 FROM files f WHERE f.batch = files.batch"
            " AND f.state = 'quarantined') ORDER BY id DESC LIMIT 1", (job, sha256, options_key, exclude_id))
        return rows[0] if rows else None

    def finished_with_stamp(self, rel: str, stamp: tuple[int, int, int], job: str = "default") -> Row | None:
        """A finished row for this very file (same path, size, mtime, inode) that left it in
        the inbox, if any.

        It stops a source left in the inbox (`on_success: keep`, an archive move that failed,
        a file that could not be put in quarantine) from being processed and paid for again
        at every rescan. A file moved to quarantine and moved back by a person (`mv` keeps
        its stamp) is not such a file: that is the documented way to run it again.
        """
        size, mtime_ns, inode = stamp
        rows = self._select(
            "job = ? AND rel = ? AND size = ? AND mtime_ns = ? AND inode = ?"
            " AND (state = 'done' OR (state = 'quarantined' AND final_path IS NULL))"
            # a format done of a file whose other format failed, moved to quarantine with it
            " AND NOT (batch IS NOT NULL AND final_path IS NOT NULL AND EXISTS (SELECT 1 FROM files f"
            " WHERE f.batch = files.batch AND f.state = 'quarantined'))"
            " ORDER BY id DESC LIMIT 1",
            (job, rel, size, mtime_ns, inode),
        )
        return rows[0] if rows else None

    def quarantined_as(self, stamp: tuple[int, int, int], sha256: str | None, *, exclude_id: int) -> Row | None:
        """The latest row that put this very file (same size and mtime, and same inode or
        content) in quarantine: it is back in the inbox to be run again."""
        size, mtime_ns, inode = stamp
        rows = self._select(
            "(inode = ? OR sha256 = ?) AND size = ? AND mtime_ns = ? AND state = 'quarantined'"
            " AND final_path IS NOT NULL AND id != ? ORDER BY id DESC LIMIT 1",
            (inode, sha256, size, mtime_ns, exclude_id),
        )
        return rows[0] if rows else None

    def rows_for_task(self, task_id: str) -> list[Row]:
        return self._select("task_id = ? AND state NOT IN ('done', 'quarantined') ORDER BY id", (task_id,))

    def shareable_task(self, sha256: str, options_key: str, *, exclude_id: int,
                       jobs: Collection[str] | None = None) -> Row | None:
        """Another live row of the same content and options that has a task: share it, pay once.
        `jobs`: only theirs (the jobs of one API key: a task is its account's)."""
        rows = self._select(
            "sha256 = ? AND options_key = ? AND id != ? AND task_id IS NOT NULL"
            f" AND state IN ('polling', 'downloading'){_among(jobs)} ORDER BY id LIMIT 1",
            (sha256, options_key, exclude_id, *(jobs or ())),
        )
        return rows[0] if rows else None

    def reusable_result(self, sha256: str, options_key: str, *, not_before: float,
                        jobs: Collection[str] | None = None) -> Row | None:
        """A row of the same content whose result URL was learnt after `not_before` (still valid);
        `jobs`: only theirs (a fresh link is asked for with the task's own key)."""
        rows = self._select(
            f"sha256 = ? AND options_key = ? AND result_url IS NOT NULL AND result_url_at >= ?{_among(jobs)}"
            " ORDER BY result_url_at DESC LIMIT 1",
            (sha256, options_key, not_before, *(jobs or ())),
        )
        return rows[0] if rows else None

    def queued_after(self, row_id: int, limit: int, job: str | None = None) -> list[int]:
        """Ids of queued rows admitted after `row_id`, oldest first: the backlog beyond the
        queue (of one job, or of all)."""
        if job is None:
            cur = self._db.execute(
                "SELECT id FROM files WHERE state = 'queued' AND id > ? ORDER BY id LIMIT ?", (row_id, limit))
        else:
            cur = self._db.execute(
                "SELECT id FROM files WHERE state = 'queued' AND job = ? AND id > ? ORDER BY id LIMIT ?",
                (job, row_id, limit))
        return [r[0] for r in cur]

    def output_taken(self, output_rel: str, *, exclude_id: int, job: str = "default") -> bool:
        """Whether another live row of `job` has reserved this output name (in its outbox)."""
        cur = self._db.execute(
            "SELECT 1 FROM files WHERE job = ? AND output_rel = ? AND id != ?"
            " AND state NOT IN ('done', 'quarantined')",
            to_params((job, output_rel, exclude_id)),
        )
        return cur.fetchone() is not None

    # -- writing -------------------------------------------------------------------------

    def add(self, rel: str, stamp: tuple[int, int, int], options_key: str, *, mode: int | None = None,
            job: str = "default") -> Row:
        """Record a file that is ready to be worked on, one row whose options are fixed later
        (`fix_options`); it starts queued. `mode`: the source's permission bits."""
        return self.add_file(rel, stamp, (), mode=mode, job=job, options_key=options_key)[0]

    def add_file(self, rel: str, stamp: tuple[int, int, int], options: Iterable[RowOptions], *,
                 mode: int | None = None, job: str = "default", options_key: str = "") -> list[Row]:
        """Record a file that is ready to be worked on: one queued row per format in `options`
        (none: one row, its options fixed later, with `options_key`), all in one transaction;
        several share the first's id as their `batch`."""
        now = self._clock()
        size, mtime_ns, inode = stamp
        wanted: list[RowOptions | None] = list(options) or [None]
        ids: list[int] = []
        with self._savepoint("add_file"):
            for opts in wanted:
                key = options_key if opts is None else opts.options_key
                batch = (ids[0] if ids else None) if len(wanted) > 1 else None
                cur = self._db.execute(
                    "INSERT INTO files (rel, size, mtime_ns, inode, options_key, state, first_seen, updated_at,"
                    " mode, job, format, language, password, rule, batch)"
                    " VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    to_params((rel, size, mtime_ns, inode, key, now, now, mode, job,
                             *((opts.format, opts.language, opts.password, opts.rule) if opts else (None,) * 4),
                             batch)),
                )
                assert cur.lastrowid is not None
                ids.append(cur.lastrowid)
            if len(ids) > 1:
                self._db.execute("UPDATE files SET batch = ? WHERE id = ?", (ids[0], ids[0]))
        # Not remembered: a backlog of thousands of queued rows stays on disk until worked on.
        return self._select(f"id IN ({', '.join('?' * len(ids))}) ORDER BY id", tuple(ids))

    def fix_options(self, row_id: int, options: RowOptions) -> Row:
        """A row of an older version gets the options it would have been sent with."""
        self._db.execute("UPDATE files SET format = ?, language = ?, password = ?, rule = ?, updated_at = ?"
                         " WHERE id = ?", to_params((options.format, options.language, options.password,
                                                   options.rule, self._clock(), row_id)))
        self._live.pop(row_id, None)
        return self.get(row_id)

    def _update(self, row_id: int, state: FileState | None = None, **values: Any) -> Row:
        """Move a row to `state` (checked) and set columns, in one transaction: the machinery
        under the typed transitions (transitions.py), which are what callers use."""
        unknown = set(values) - SETTABLE
        if unknown:
            raise TypeError(f"not journal columns: {sorted(unknown)}")
        now = self._clock()
        current = self.get(row_id)
        sets = dict(values)
        if state is not None:
            check_transition(current.state, state)
            sets["state"] = state.value
            if state in TERMINAL:
                sets.setdefault("finished_at", now)
        sets["updated_at"] = now
        assignments = ", ".join(f"{k} = ?" for k in sets)
        # The last row of a file in several formats moved its source: the rows that ended
        # before it (their source waiting) learn where it went, in the same transaction.
        batch_moved = state in TERMINAL and current.batch is not None and bool(sets.get("final_path"))
        # The journal has a single writer, so nothing can move the row between the check
        # above and this write.
        with self._savepoint("ended") if batch_moved else contextlib.nullcontext():
            self._db.execute(f"UPDATE files SET {assignments} WHERE id = ?", to_params((*sets.values(), row_id)))
            if batch_moved:
                self._db.execute("UPDATE files SET final_path = ? WHERE batch = ? AND final_path IS NULL"
                                 " AND state IN ('done', 'quarantined')",
                                 to_params((sets["final_path"], current.batch)))
        # The single writer knows what it wrote: no second read.
        if state is not None:
            sets["state"] = state
        return self._remember(dataclasses.replace(current, **sets))

    @contextlib.contextmanager
    def _savepoint(self, name: str) -> Iterator[None]:
        """Statements that stand or fall together: their own transaction, or a part of an
        open one (admission's `transaction`)."""
        self._db.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self._db.execute(f"ROLLBACK TO {name}")
            self._db.execute(f"RELEASE {name}")
            raise
        self._db.execute(f"RELEASE {name}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Many writes, one commit (admission's new rows: one WAL commit, not hundreds). Each
        statement is whole on its own, so what was written is committed even on an error."""
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    def note_lost_create(self, row_id: int, *, sent_again: bool) -> Row:
        """An upload of this row was sent whole and its answer lost; `sent_again`: it will be
        uploaded once more (a possible double charge)."""
        self._db.execute(
            "UPDATE files SET lost_create_answers = lost_create_answers + 1,"
            " possible_double_charges = possible_double_charges + ?, updated_at = ? WHERE id = ?",
            (1 if sent_again else 0, self._clock(), row_id))
        self._live.pop(row_id, None)
        return self.get(row_id)

    def record_error(
        self,
        row_id: int,
        *,
        stage: Stage,
        message: str,
        http_status: int | None = None,
        task_state: int | None = None,
        count_attempt: bool = True,
    ) -> Row:
        """Note a failure without changing state: the last error is what a quarantine report shows."""
        now = self._clock()
        self._db.execute(
            "UPDATE files SET last_stage = ?, last_error = ?,"
            " last_http_status = COALESCE(?, last_http_status),"
            " last_task_state = COALESCE(?, last_task_state),"
            " attempts = attempts + ?, updated_at = ? WHERE id = ?",
            to_params((stage, message, http_status, task_state, 1 if count_attempt else 0, now, row_id)),
        )
        self._live.pop(row_id, None)  # the COALESCE and the count are SQLite's to compute
        return self.get(row_id)

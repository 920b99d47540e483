"""The journal knows itself: a lost, emptied or foreign journal is refused, never taken as new.

SQLite takes a missing or zero-length file for a new, empty database, and a `-wal` file
deleted after a crash simply loses the last commits. Either way the daemon would forget
which files it already finished and which tasks it already paid for, and pay again: with
`on_success: keep`, every kept file. So the state_dir remembers that it has a journal:

- `journal.sqlite3.id` beside the journal holds the id stored inside it. A journal that is
  missing, empty, or holds another id while the marker exists is refused.
- The journal notes in itself that it is open, and clears the note when closed cleanly. Found
  still open (the last run crashed) with no `-wal` file beside it, its last commits are gone:
  refused too. SQLite deletes the `-wal` only when the last connection closes cleanly.

Each refusal names the file, what happened, and the remedy; deleting the marker accepts the
journal as it is (or a new one), knowingly.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from ocr_watch.fsops import atomic_write_bytes

__all__ = [
    "Before",
    "JournalError",
    "check_after_opening",
    "look_before_opening",
    "marker_path",
    "new_journal_id",
    "write_marker",
]

MARKER_SUFFIX = ".id"


class JournalError(Exception):
    """The journal cannot be used as it is; the message names the file and the remedy."""


@dataclass(frozen=True)
class Before:
    """What the state_dir looked like before SQLite touched it."""

    marker_id: str | None
    had_content: bool
    wal_present: bool


def marker_path(journal: Path) -> Path:
    return journal.with_name(journal.name + MARKER_SUFFIX)


def new_journal_id() -> str:
    return secrets.token_hex(8)


def look_before_opening(journal: Path) -> Before:
    marker = marker_path(journal)
    try:
        marker_id: str | None = marker.read_text(encoding="ascii").strip() or None
    except FileNotFoundError:
        marker_id = None
    except (OSError, UnicodeDecodeError) as exc:
        raise JournalError(f"cannot read {marker}: {exc}; fix its permissions, or delete it to accept "
                           f"the journal {journal} as it is") from None
    try:
        had_content = journal.stat().st_size > 0
    except FileNotFoundError:
        had_content = False
    wal_present = Path(f"{journal}-wal").exists()
    if marker_id is not None and not had_content:
        what = "is empty" if journal.exists() else "is missing"
        raise JournalError(
            f"journal {journal} {what}, but this state_dir had one (id {marker_id}, in {marker}): the "
            f"record of files already done and tasks already paid for is gone, and starting afresh would "
            f"pay again for files still in the inbox. Restore the journal from a backup; or, to start "
            f"afresh knowingly, delete {marker}")
    return Before(marker_id, had_content, wal_present)


def check_after_opening(journal: Path, before: Before, journal_id: str, was_open: bool) -> None:
    """Raise :class:`JournalError` if the opened journal is not the one the state_dir had."""
    marker = marker_path(journal)
    if before.marker_id is None:
        return  # a new state_dir, an older ocr-watch's, or a journal accepted knowingly
    if journal_id != before.marker_id:
        raise JournalError(
            f"journal {journal} is not the one this state_dir had (id {journal_id}, expected "
            f"{before.marker_id} from {marker}): it was replaced. Put the right journal back; or, to use "
            f"this one knowingly, delete {marker}")
    if was_open and not before.wal_present:
        raise JournalError(
            f"journal {journal} was not closed cleanly and its write-ahead log {journal}-wal is gone: "
            f"its last steps are lost, among them perhaps tasks already paid for. Restore "
            f"{journal}-wal if you have it; or, to go on knowingly from what the journal still holds, "
            f"delete {marker}")


def write_marker(journal: Path, journal_id: str) -> None:
    """Write the marker atomically (temp, fsync, rename), owner-only."""
    atomic_write_bytes(marker_path(journal), f"{journal_id}\n".encode("ascii"), 0o600)

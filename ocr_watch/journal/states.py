"""The states a source file passes through, and which moves between them are legal.

The journal refuses an illegal move, so that a bug in the pool shows up as a loud error
instead of a file that silently skips a step (an output never written, a source archived
before its result exists).

    queued ──► uploading ──► polling ──► downloading ──► finishing ──► done
      │  ▲          │           │              │
      │  └──────────┘           │              │           (any non-terminal state)
      ├──► polling  (joined a task already in flight for the same content)
      ├──► downloading (reused a result of the same content that has not expired)
      ├──► finishing (its output is in the outbox already: a retry of a file in several
      │               formats pays only for the formats that failed)
      └──────────────────────────────────────────────────► quarantining ──► quarantined

`uploading` is written *before* the create request: after a crash it says "a task may
exist that we never heard of"; `polling` carries the task id, committed as soon as create
answers, so a restart polls that task instead of paying for a second one.
"""

from __future__ import annotations

import enum

__all__ = ["ALLOWED", "TERMINAL", "FileState", "IllegalTransition", "Stage", "check_transition"]


class FileState(enum.StrEnum):
    QUEUED = "queued"
    UPLOADING = "uploading"
    POLLING = "polling"
    DOWNLOADING = "downloading"
    FINISHING = "finishing"
    DONE = "done"
    QUARANTINING = "quarantining"
    QUARANTINED = "quarantined"


class Stage(enum.StrEnum):
    """The step of a file's journey that failed: the journal's `last_stage` and the `stage` of
    its `.error.json` (the values are what those have always said)."""

    INTAKE = "intake"  # before the upload: the file vanished, was replaced, or is refused
    CREATE = "create"  # the upload and the service's answer to it
    POLL = "poll"  # querying the task, or the task itself failed or ran too long
    DOWNLOAD = "download"  # fetching the result (or a fresh link to it)
    OUTPUT = "output"  # writing the result into the outbox
    INTERNAL = "internal"  # a bug of ocr-watch, caught so one file cannot stop the daemon


TERMINAL = frozenset({FileState.DONE, FileState.QUARANTINED})

_ANY_LIVE_TO_QUARANTINE = {FileState.QUARANTINING}

ALLOWED: dict[FileState, frozenset[FileState]] = {
    FileState.QUEUED: frozenset(
        {FileState.UPLOADING, FileState.POLLING, FileState.DOWNLOADING, FileState.FINISHING,
         *_ANY_LIVE_TO_QUARANTINE}
    ),
    FileState.UPLOADING: frozenset({FileState.QUEUED, FileState.POLLING, *_ANY_LIVE_TO_QUARANTINE}),
    FileState.POLLING: frozenset({FileState.DOWNLOADING, *_ANY_LIVE_TO_QUARANTINE}),
    FileState.DOWNLOADING: frozenset({FileState.FINISHING, *_ANY_LIVE_TO_QUARANTINE}),
    # Finishing only moves the source; the output already exists, so it never quarantines.
    FileState.FINISHING: frozenset({FileState.DONE}),
    FileState.QUARANTINING: frozenset({FileState.QUARANTINED}),
    FileState.DONE: frozenset(),
    FileState.QUARANTINED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """The pool asked for a move the state machine forbids: a bug, never a user error."""


def check_transition(current: FileState, new: FileState) -> None:
    if new == current and new not in TERMINAL:
        return  # re-entering a live state (a retry) is allowed
    if new not in ALLOWED[current]:
        raise IllegalTransition(f"{current.value} -> {new.value} is not allowed")

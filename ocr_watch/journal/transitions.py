"""The journal's transitions, one typed method for each move the pool makes.

Why: a generic `update(row_id, state, **columns)` checks column names only at run time and
value types never; a method per move lets mypy check each caller, and names what the move
means (`output_reserved`, `new_link`) where a bare state could not. Each is one call of the
store's `_update`, so each stays one checked, atomic transition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .states import FileState, Stage

if TYPE_CHECKING:
    from .store import Row

__all__ = ["Transitions"]


class Transitions:
    """The moves of a row, each a typed front to :meth:`_update` (see the store)."""

    def _update(self, row_id: int, state: FileState | None = None, **values: Any) -> Row:
        raise NotImplementedError

    # -- before a task -------------------------------------------------------------------

    def restamped(self, row_id: int, stamp: tuple[int, int, int]) -> Row:
        """The file was rewritten since it was admitted: keep what it is now (size, mtime, inode)."""
        size, mtime_ns, inode = stamp
        return self._update(row_id, size=size, mtime_ns=mtime_ns, inode=inode)

    def uploading(self, row_id: int, *, sha256: str | None) -> Row:
        """Written *before* the create request: a task may exist once this is on disk."""
        return self._update(row_id, FileState.UPLOADING, sha256=sha256)

    def queued_again(self, row_id: int) -> Row:
        """The upload made no task we know of (failed, or caught by a restart): queue it again."""
        return self._update(row_id, FileState.QUEUED)

    def polling(self, row_id: int, *, task_id: str | None, task_created_at: float | None, sha256: str | None,
                stamp: tuple[int, int, int] | None = None) -> Row:
        """The row has a task: created for it (then with the `stamp` the upload was read under),
        or shared with another row of the same content."""
        values: dict[str, Any] = {}
        if stamp is not None:
            values["size"], values["mtime_ns"], values["inode"] = stamp
        return self._update(row_id, FileState.POLLING, task_id=task_id, task_created_at=task_created_at,
                            sha256=sha256, **values)

    # -- the result ----------------------------------------------------------------------

    def downloading(self, row_id: int, *, result_url: str, result_url_at: float,
                    last_task_state: int | None = None) -> Row:
        """The result is at `result_url`, learnt at wall time `result_url_at`; a task state
        given is noted, none given keeps the last one."""
        values: dict[str, Any] = {}
        if last_task_state is not None:
            values["last_task_state"] = last_task_state
        return self._update(row_id, FileState.DOWNLOADING, result_url=result_url, result_url_at=result_url_at,
                            **values)

    def new_link(self, row_id: int, *, result_url: str, result_url_at: float) -> Row:
        """A fresh link to the same result (the old one was refused); the state stays."""
        return self._update(row_id, result_url=result_url, result_url_at=result_url_at)

    def output_reserved(self, row_id: int, output_rel: str) -> Row:
        """The output name, chosen once, so a restart writes the same one."""
        return self._update(row_id, output_rel=output_rel)

    def delivered_before(self, row_id: int, *, output_rel: str, sha256: str | None) -> Row:
        """Its output (same content, job and options) is in the outbox from an earlier run of
        this file: it is not paid for again, only finished."""
        return self._update(row_id, FileState.FINISHING, output_rel=output_rel, sha256=sha256)

    def finishing(self, row_id: int) -> Row:
        """The output is complete: the source may now leave the inbox."""
        return self._update(row_id, FileState.FINISHING)

    def done(self, row_id: int, *, final_path: str | None, note: str | None) -> Row:
        """Finished: the source went to `final_path` (None: it stayed); `note` says why it could
        not be moved, if it could not (it replaces `last_error`)."""
        return self._update(row_id, FileState.DONE, final_path=final_path, last_error=note)

    # -- quarantine ----------------------------------------------------------------------

    def quarantining(self, row_id: int, *, stage: Stage, reason: str, http_status: int | None,
                     task_state: int | None) -> Row:
        """Why the file goes to quarantine, noted before its report is written and it moves.
        The HTTP status and task state are written as given (None included)."""
        return self._update(row_id, FileState.QUARANTINING, last_stage=stage, last_error=reason,
                            last_http_status=http_status, last_task_state=task_state)

    def quarantined(self, row_id: int, *, final_path: str | None) -> Row:
        """Reported and moved to `final_path` (None: there was no source left to move)."""
        return self._update(row_id, FileState.QUARANTINED, final_path=final_path)

    def quarantine_failed(self, row_id: int, *, reason: str) -> Row:
        """The file could not be put in quarantine at all: the row ends all the same, the
        source left in the inbox, and `reason` (replacing `last_error`) says why."""
        return self._update(row_id, FileState.QUARANTINED, final_path=None, last_error=reason)

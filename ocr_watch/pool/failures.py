"""Where a failure ends: the one place a verdict of the error policy is carried out, and the
quarantine steps.

What an error means is decided in `policy.py`; this module acts on it, for every stage alike:
a quarantine verdict sends the file's rows to quarantine (report, then move), the others
return how long the caller waits before trying again (the account gate holds the next call
itself; an outage is logged rarely; a retry is logged each time).

A quarantine folder that refuses is waited for like any folder of ours (the row stays
`quarantining`). What it can never take (a name it refuses, or a bug) still ends the row, with
a loud log line and the source left in the inbox: one file never holds a slot for good.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from ocr_watch.api import ApiError
from ocr_watch.journal import TERMINAL, Journal, Row, Stage

from .endings import Endings
from .flight import Flight
from .folders import FolderWaits
from .policy import Action, ErrorPolicy, Verdict, folder_may_recover

__all__ = ["Failures"]

log = structlog.get_logger("ocr_watch.pool")


class Failures:
    """Carries out verdicts and quarantines files; see the module docstring."""

    def __init__(self, journal: Journal, policy: ErrorPolicy, endings: Endings, flight: Flight,
                 folders: FolderWaits, *, wall: Callable[[], float]) -> None:
        self._journal = journal
        self._policy = policy
        self._endings = endings
        self._flight = flight
        self._folders = folders
        self._wall = wall

    # -- verdicts ------------------------------------------------------------------------

    async def api_error(self, row: Row, exc: ApiError, stage: Stage) -> float | None:
        """An API call for one file failed: seconds to wait before retrying, or None if the file
        was quarantined. Counted against the file's attempts when the verdict says so."""
        verdict = self._policy.judge(exc, stage=stage, attempts=row.attempts + 1, task_id=row.task_id,
                                     task_age_s=None if row.task_created_at is None
                                     else self._wall() - row.task_created_at)
        row = self._journal.record_error(row.id, stage=stage, message=exc.message, http_status=exc.status_code,
                                         task_state=exc.task_state, count_attempt=verdict.counts)
        return await self.carry_out(verdict, exc, stage, [row])

    async def query_failed(self, task_id: str, exc: ApiError, *, errors: int, age_s: float) -> float | None:
        """A query of a task failed (`errors` in a row): seconds until the next, or None if its
        files were quarantined. Never counted against the files: the task is paid for."""
        verdict = self._policy.judge(exc, stage=Stage.POLL, attempts=errors, task_id=task_id, task_age_s=age_s)
        rows = self._journal.rows_for_task(task_id)
        if verdict.action is not Action.QUARANTINE:
            for row in rows:
                self._journal.record_error(row.id, stage=Stage.POLL, message=exc.message,
                                           http_status=exc.status_code, count_attempt=False)
        return await self.carry_out(verdict, exc, Stage.POLL, rows)

    async def carry_out(self, verdict: Verdict, exc: ApiError, stage: Stage, rows: Sequence[Row]) -> float | None:
        """Do what `verdict` says for `rows`: None once they are quarantined, else the wait."""
        if verdict.action is Action.QUARANTINE:
            for row in rows:
                await self.quarantine(row, stage, verdict.reason, http_status=exc.status_code,
                                      task_state=exc.task_state)
            return None
        if verdict.action is Action.PAUSE_ACCOUNT:
            return 0.0  # the account gate noted it and holds the next call until a probe passes
        if verdict.action is Action.WAIT_OUT:
            if self._policy.outage_failures in (1, 10) or self._policy.outage_failures % 50 == 0:
                log.warning("service_unreachable", stage=stage, error=exc.message,
                            retry_in_s=round(verdict.delay_s, 2))
            return float(verdict.delay_s)
        log.warning("retrying", file=rows[0].rel if rows else None, stage=stage, error=exc.message,
                    http_status=exc.status_code, retry_in_s=round(verdict.delay_s, 2))
        return float(verdict.delay_s)

    def service_answered(self) -> None:
        """The service answered: an outage, if there was one, is over."""
        failures = self._policy.outage_over()
        if failures:
            log.info("service_reachable_again", after_failures=failures)

    # -- quarantine ----------------------------------------------------------------------

    async def quarantine(self, row: Row, stage: Stage, reason: str, *, http_status: int | None = None,
                         task_state: int | None = None) -> None:
        """Note why, then report and move: the file's journey ends in quarantine."""
        self._flight.add(row.id)
        try:
            row = self._journal.quarantining(
                row.id, stage=stage, reason=reason,
                http_status=http_status if http_status is not None else row.last_http_status,
                task_state=task_state if task_state is not None else row.last_task_state,
            )
        except Exception:  # a bug: say so, and hold no slot for it (the row resumes at the next start)
            log.exception("quarantine_crashed", file=row.rel, stage=stage, reason=reason)
            self._flight.release(row.id, None)
            return
        await self.move_to_quarantine(row)

    async def move_to_quarantine(self, row: Row, *, resumed: bool = False) -> None:
        """Report, then move; a quarantine folder that refuses is waited for, the row staying
        `quarantining` (its `last_error` is the report's reason, so the wait is not noted there).

        A file in several formats (one row each) whose other formats are still being made
        leaves its source in the inbox for them: the row ends now, and the file's last row to
        end moves the source, to quarantine, with a report naming every format that failed."""
        others = self._journal.siblings(row)
        waiting = [o for o in others if o.state not in TERMINAL]
        if waiting:
            row = self._journal.quarantined(row.id, final_path=None)
            self._flight.release(row.id, "quarantined")
            log.warning("format_failed", job=row.job, file=row.rel, format=row.format, stage=row.last_stage,
                        reason=row.last_error, task_id=row.task_id,
                        action=f"the source waits for {', '.join(str(o.format) for o in waiting)}, then goes to "
                               "quarantine")
            return
        dest, failure = await self.source_to_quarantine(row, others, resumed=resumed)
        if failure is not None:
            self._quarantine_failed(row, failure)
            return
        row = self._journal.quarantined(row.id, final_path=str(dest) if dest else None)
        self._flight.release(row.id, "quarantined")
        log.warning("file_quarantined", job=row.job, file=row.rel, stage=row.last_stage, reason=row.last_error,
                    task_id=row.task_id, attempts=row.attempts, to=row.final_path,
                    **({"format": row.format} if others else {}))

    async def source_to_quarantine(self, row: Row, others: Sequence[Row], *, resumed: bool
                                   ) -> tuple[Path | None, Exception | None]:
        """Report and move `row`'s source (with `others`, the file's other formats, all ended):
        where it went, or what no retry can cure. A folder that refuses is waited for."""
        while True:
            try:
                dest = await self._endings.quarantine(row, resumed=resumed, others=others)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(exc, OSError) and folder_may_recover(exc):
                    await self._folders.failed(row, "quarantine", exc)
                    continue
                return None, exc
            self._folders.works(row, "quarantine")
            return dest, None

    def _quarantine_failed(self, row: Row, exc: Exception) -> None:
        """This file cannot be put in quarantine at all (a name the folder refuses, or a bug).

        Its row ends all the same, so it holds no slot and `once` ends: the source stays in the
        inbox (a rescan does not take it again: its row is finished), and the journal and this
        loud line say why.
        """
        row = self._journal.quarantine_failed(
            row.id, reason=f"{row.last_error}; it could not be put in quarantine: {exc}")
        self._flight.release(row.id, "quarantined")
        log.error("quarantine_failed", job=row.job, file=row.rel, stage=row.last_stage, reason=row.last_error,
                  task_id=row.task_id, error=repr(exc), exc_info=not isinstance(exc, OSError),
                  action="the source stays in the inbox; move it out by hand")

"""`ocr-watch status`: what the daemon is doing, without asking it and without disturbing it.

Why it reads files and not the process: it must work whether or not the daemon runs, and a
person runs it when something is wrong, when the daemon may be wedged. It never takes the
daemon's lock and never blocks it:

- running or not: who holds `state_dir/lock` (`runlock.holder`: `/proc/locks`, no lock taken);
- the files per state, the oldest unfinished, the last success, the credits: the journal,
  opened read-only (`journal.reader`);
- the failures: the quarantine folder's `.error.json` reports (`results.listing`), since a
  file moved back out of quarantine is no longer a failure, though its journal row stays.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ocr_watch import runlock
from ocr_watch.config import Config
from ocr_watch.config.folders import JOURNAL_FILE
from ocr_watch.journal import FileState
from ocr_watch.journal.reader import Snapshot, read_snapshot
from ocr_watch.names import readable
from ocr_watch.results.listing import Quarantined, quarantined_files

__all__ = ["Status", "as_json", "gather", "human"]

SHOWN_QUARANTINED = 5  # the newest failures the human output lists


@dataclass(frozen=True)
class Status:
    pid: int | None
    journal: Snapshot
    quarantined: list[Quarantined]  # every job's, in the order of `jobs`
    now: float
    # The configured jobs' names, and which job each entry of `quarantined` belongs to.
    jobs: tuple[str, ...] = ("default",)
    quarantined_job: tuple[str, ...] = ()

    @property
    def running(self) -> bool:
        return self.pid is not None


def gather(config: Config, *, now: float | None = None) -> Status:
    """Read everything `status` shows; changes nothing on disk."""
    pid = runlock.holder(config.state_dir)
    snapshot = read_snapshot(config.state_dir / JOURNAL_FILE)
    found = [(job.name, q) for job in config.jobs for q in quarantined_files(job.folders.quarantine)]
    return Status(pid=pid, journal=snapshot, quarantined=[q for _, q in found],
                  now=time.time() if now is None else now, jobs=tuple(job.name for job in config.jobs),
                  quarantined_job=tuple(name for name, _ in found))


def _by_job(status: Status) -> dict[str, dict[str, Any]]:
    """Each job's files per state and files in quarantine now (the jobs configured, then any
    other the journal still holds rows of)."""
    counts = status.journal.job_counts
    return {job: {"counts": counts.get(job, {s.value: 0 for s in FileState}),
                  "in_quarantine": status.quarantined_job.count(job)}
            for job in dict.fromkeys([*status.jobs, *counts])}


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def as_json(status: Status) -> str:
    """One JSON object; the keys are the public contract (issue 17)."""
    j = status.journal
    waiting = j.oldest_waiting
    done = j.last_success
    data: dict[str, Any] = {
        "running": status.running,
        "pid": status.pid,
        "counts": j.counts,
        "quarantined": [{"path": readable(q.rel), "reason": q.reason, "stage": q.stage, "failed_at": q.failed_at,
                         "source": q.source, "file_present": q.present, "job": job}
                        for q, job in zip(status.quarantined, _jobs_of(status), strict=True)],
        "jobs": _by_job(status),
        "credits_spent": j.credits_spent,
        "possible_double_charges": j.possible_double_charges,
        "credits_left": j.credits_left,
        "credits_asked_at": _iso(j.credits_asked_at),
        "oldest_waiting": None if waiting is None else {
            "path": readable(waiting.rel), "state": waiting.state.value, "since": _iso(waiting.first_seen),
            "waited_seconds": round(max(0.0, status.now - waiting.first_seen), 3)},
        "last_success": None if done is None else {
            "path": readable(done.rel), "output": None if done.output_rel is None else readable(done.output_rel),
            "finished_at": _iso(done.finished_at)},
        "journal_exists": j.exists,
    }
    return json.dumps(data, indent=2, ensure_ascii=False)


def _jobs_of(status: Status) -> tuple[str, ...]:
    return status.quarantined_job or (status.jobs[0],) * len(status.quarantined)


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


def human(status: Status) -> str:
    """A few lines for a person at a terminal."""
    j = status.journal
    lines = [f"daemon: running (pid {status.pid})" if status.running else "daemon: not running"]
    if not j.exists:
        lines.append("journal: none yet (no file seen)")
    counts = ", ".join(f"{j.counts.get(s.value, 0)} {s.value}" for s in FileState)
    lines.append(f"files: {counts}")
    if len(status.jobs) > 1:
        for job, facts in _by_job(status).items():
            shown = ", ".join(f"{facts['counts'].get(s.value, 0)} {s.value}" for s in FileState
                              if facts["counts"].get(s.value, 0))
            lines.append(f"  job {job}: {shown or 'no files'}; {facts['in_quarantine']} in quarantine")
    if j.oldest_waiting is not None:
        w = j.oldest_waiting
        lines.append(f"oldest unfinished: {readable(w.rel)} ({w.state.value}), "
                     f"waiting {_ago(status.now - w.first_seen)}")
    else:
        lines.append("oldest unfinished: none")
    left = "unknown" if j.credits_left is None else str(j.credits_left)
    if j.credits_left is not None and j.credits_asked_at is not None:
        left += f" (asked {_ago(status.now - j.credits_asked_at)} ago)"
    lines.append(f"credits: {j.credits_spent} spent, {left} left; possible double charges: "
                 f"{j.possible_double_charges}")
    if j.last_success is not None:
        d = j.last_success
        out = f" -> {readable(d.output_rel)}" if d.output_rel else ""
        lines.append(f"last success: {readable(d.rel)}{out}, {_ago(status.now - d.finished_at)} ago")
    else:
        lines.append("last success: none")
    lines.append(f"in quarantine: {len(status.quarantined)} (journal: {j.counts.get('quarantined', 0)} ever)")
    several = len(status.jobs) > 1
    for q, job in list(zip(status.quarantined, _jobs_of(status), strict=True))[:SHOWN_QUARANTINED]:
        when = f", {_ago(status.now - q.failed_at_unix)} ago" if q.failed_at_unix is not None else ""
        gone = ", file missing" if not q.present else ""
        where = f"{job}: " if several else ""
        lines.append(f"  {where}{readable(q.rel)} [{q.stage or 'unknown stage'}{when}{gone}]: "
                     f"{q.reason or 'no report'}")
    if len(status.quarantined) > SHOWN_QUARANTINED:
        lines.append(f"  ... and {len(status.quarantined) - SHOWN_QUARANTINED} more (--json lists all)")
    return "\n".join(lines) + "\n"

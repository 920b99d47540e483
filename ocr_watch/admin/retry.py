"""`ocr-watch retry`: move quarantined files back into the inbox, to be processed again.

It does what the README tells a person to do by hand (`mv quarantine/a/x.pdf inbox/a/`), with
the care a person may not take: the file goes back to its original subfolder under its
original name, or a free `name-2.ext` beside a file that took that name meanwhile (a file is
never overwritten), and its report leaves the quarantine folder for
`state_dir/retired-reports/`, so the quarantine folder shows only current failures.

It never writes the journal (the daemon, running or not, is its single writer). The daemon
takes a file moved back as new: the journal's "already finished" check skips only files left
in the inbox, not ones that went to quarantine and came back, and the same-content gate pays
again only if no result of that content is still live.

Crash-safe in this order: the file moves first (link, then unlink: `fsops.move_no_clobber`),
then its report. A `kill -9` between the two leaves the file in the inbox and its report in
quarantine: nothing is lost, and the daemon retires that report itself when it takes the file
(it knows the file by its journal row: `Journal.quarantined_as`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ocr_watch.config import Config, Job
from ocr_watch.fsops import move_no_clobber
from ocr_watch.results.listing import Quarantined, quarantined_files
from ocr_watch.results.quarantine import retire_report
from ocr_watch.served import RETIRED_REPORTS

__all__ = ["Retried", "retry"]


@dataclass(frozen=True)
class Retried:
    """One file moved back: from (relative to quarantine) and to (relative to the inbox)."""

    rel: str
    to: str
    report_to: Path | None
    job: str = "default"


def _original_name(q: Quarantined) -> str:
    """The name the file had in the inbox: its report's `source`, when that names the same
    folder and is plain (a `-2` was added only because quarantine had the name already)."""
    source = q.source
    if source is None or "\\x" in source:
        return q.path.name
    wanted = PurePosixPath(source)
    if wanted.parent != PurePosixPath(q.rel).parent or wanted.name in ("", ".", ".."):
        return q.path.name
    return wanted.name


def _wanted(job: Job, paths: list[str]) -> tuple[list[Quarantined], list[str]]:
    """The quarantined files `paths` name (all when empty), and the paths that name none."""
    root = job.folders.quarantine
    found = [q for q in quarantined_files(root) if q.present]
    if not paths:
        return found, []
    chosen: dict[str, Quarantined] = {}
    missing = []
    for text in paths:
        path = Path(text)
        if path.is_absolute():
            try:
                path = path.relative_to(root)
            except ValueError:
                missing.append(text)
                continue
        rel = PurePosixPath(path.as_posix())
        if ".." in rel.parts or rel.name.startswith("."):
            missing.append(text)
            continue
        matched = [q for q in found if q.rel == str(rel) or str(rel) in ("", ".")
                   or PurePosixPath(q.rel).is_relative_to(rel)]
        if not matched:
            missing.append(text)
        for q in matched:
            chosen.setdefault(q.rel, q)
    return sorted(chosen.values(), key=lambda q: q.rel), missing


def retry(config: Config, paths: list[str], job: Job | None = None) -> tuple[list[Retried], list[str]]:
    """Move the files `paths` name (relative to `job`'s quarantine folder; a folder names all
    in it; none: every one) back to its inbox. What was moved, and the paths not in quarantine.
    No `job`: the only job's (paths), or every job's (no paths)."""
    if job is None:
        if paths and len(config.jobs) > 1:
            raise ValueError("paths are relative to one job's quarantine: name the job with --job")
        every: list[Retried] = []
        absent: list[str] = []
        for each in config.jobs:
            more, lost = retry(config, paths, each)
            every += more
            absent += lost
        return every, absent
    chosen, missing = _wanted(job, paths)
    retired = config.state_dir / RETIRED_REPORTS
    done = []
    for q in chosen:
        target = job.folders.inbox / PurePosixPath(q.rel).parent / _original_name(q)
        try:
            moved = move_no_clobber(q.path, target)
        except FileNotFoundError:
            missing.append(q.rel)  # taken back by someone else meanwhile
            continue
        report_to = retire_report(q.path, retired)
        done.append(Retried(rel=q.rel, to=moved.relative_to(job.folders.inbox).as_posix(), report_to=report_to,
                            job=job.name))
    return done, missing

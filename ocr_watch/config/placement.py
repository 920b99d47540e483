"""Where the jobs' folders and the one state_dir lie: the defaults that depend on other keys,
and the folder relations that would make the daemon eat its own output.

Defaults:

* ``archive``: the simple setup's is ``<inbox>/../archive`` (as before); a job's under
  ``jobs:`` is ``<inbox>/../archive/<inbox name>``, so jobs whose inboxes are side by side do
  not share one (a folder used by two jobs is an error, so a shared default would refuse the
  file for a key it does not even name);
* ``state_dir``: one journal for all jobs. The simple setup keeps its default
  ``<inbox>/../.ocr-watch/<inbox name>`` (or the old shared one: folders.py). With ``jobs:``
  it is ``<config folder>/.ocr-watch/<config file stem>.jobs``: derived from no job, so adding,
  removing or reordering jobs never moves the journal (a moved journal would pay again for
  files kept in place), and two configurations in one folder never share it. Where the
  config folder is not writable (``/etc``) `run` stops naming ``state_dir``: set it.

Relations (each problem on the key that would have to change):

* no two keys name the same folder, within a job or across jobs, state_dir included;
* within a job, as before: nothing inside the inbox (it would feed its files back in), and
  the inbox inside none of the job's other folders;
* across jobs: no folder of one job inside a folder of another (an inbox inside another's
  inbox would be watched twice: a rule does that job; an outbox inside another's would mix
  their outputs); state_dir inside no job's inbox.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ocr_watch.choices import OnSuccess

from .folders import SHARED_STATE_DIR, default_state_dir
from .job import Job
from .schema import Reader

__all__ = ["JOBS_STATE_SUFFIX", "place_folders"]

JOBS_STATE_SUFFIX = ".jobs"  # <config folder>/.ocr-watch/<config stem>.jobs


def place_folders(r: Reader, config_path: Path, jobs: tuple[Job, ...],
                  state_dir: Path | None) -> tuple[tuple[Job, ...], Path | None, bool]:
    """The jobs with their archive default filled in, the state_dir (given or default) and
    whether it is the old shared default; the relations' problems are recorded on ``r``."""
    simple = len(jobs) == 1 and jobs[0].prefix == ""
    used: list[dict[str, Path]] = []  # per job, by key, the folders it really uses
    placed = []
    for job in jobs:
        folders, inbox = job.folders, job.folders.inbox
        archive_given = folders.archive is not None
        if not archive_given and inbox is not None:
            archive = inbox.parent / "archive" if simple else inbox.parent / "archive" / inbox.name
            folders = dataclasses.replace(folders, archive=archive)
            job = dataclasses.replace(job, folders=folders)
        placed.append(job)
        named = {f"{job.prefix}folders.{f.name}": getattr(folders, f.name)
                 for f in dataclasses.fields(folders)}
        if not archive_given and job.on_success != OnSuccess.ARCHIVE:
            del named[f"{job.prefix}folders.archive"]  # the unused default needs no checking
        used.append({k: v for k, v in named.items() if v is not None})

    legacy = False
    if state_dir is None:
        if not simple:
            state_dir = config_path.parent / SHARED_STATE_DIR / (config_path.stem + JOBS_STATE_SUFFIX)
        elif jobs[0].folders.inbox is not None:
            state_dir, legacy = default_state_dir(jobs[0].folders.inbox)
    _check_same(r, used, state_dir)
    for job, named in zip(placed, used, strict=True):
        _check_within(r, job, named, state_dir)
    _check_across(r, placed, used)
    return tuple(placed), state_dir, legacy


def _check_same(r: Reader, used: list[dict[str, Path]], state_dir: Path | None) -> None:
    everything = [item for folders in used for item in folders.items()]
    if state_dir is not None:
        everything.append(("state_dir", state_dir))
    for i, (b, path) in enumerate(everything):
        first = next((a for a, other in everything[:i] if other == path), None)
        if first is not None:
            r.problem(b, f"is the same folder as {first} ({path}); each folder needs its own path")


def _check_within(r: Reader, job: Job, folders: dict[str, Path], state_dir: Path | None) -> None:
    inbox_key = f"{job.prefix}folders.inbox"
    inbox = folders.get(inbox_key)
    if inbox is None:
        return
    mine = dict(folders)
    if state_dir is not None:
        mine["state_dir"] = state_dir
    for key, path in mine.items():
        if key == inbox_key or path == inbox:
            continue
        if path.is_relative_to(inbox):
            r.problem(key, f"is inside {inbox_key} ({inbox}), which would feed "
                           f"{'results' if key.endswith('folders.outbox') else 'its files'} back in")
        elif key != "state_dir" and inbox.is_relative_to(path):
            r.problem(inbox_key, f"is inside {key} ({path}), which would feed its files back in")


def _check_across(r: Reader, jobs: list[Job], used: list[dict[str, Path]]) -> None:
    for i, folders in enumerate(used):
        for j, others in enumerate(used):
            if i == j:
                continue
            for key, path in folders.items():
                for other_key, other in others.items():
                    if path != other and path.is_relative_to(other):
                        r.problem(key, f"is inside {other_key} ({other}), another job's folder; "
                                       + _across_hint(key, other_key))


def _across_hint(key: str, other_key: str) -> str:
    if key.endswith(".inbox") and other_key.endswith(".inbox"):
        return ("its files would be seen by both jobs; to treat a subfolder differently, give "
                "the outer job a rule (match: 'sub/**')")
    return "each job's folders must lie apart from every other job's"

"""What is in the quarantine folder now: each failed file with the reasons its report gives.

Why from the folder and not the journal: the folder is what a person sees and acts on (a file
moved back by hand, or by `retry`, is no longer a failure there, while its journal row stays
`quarantined` for ever). `status` lists these, `retry` moves them back.

A report is read defensively: one that is missing, unreadable or not ours leaves its file
listed with an unknown reason, never an error. A report whose file is gone (the file vanished
before it could be moved, ``source_missing``) is listed too, with no file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .quarantine import REPORT_SUFFIX, report_path_for

__all__ = ["Quarantined", "quarantined_files", "read_report"]


@dataclass(frozen=True, slots=True)
class Quarantined:
    """One failure in the quarantine folder."""

    path: Path  # the quarantined file (it may be gone: see `present`)
    rel: str  # relative to the quarantine folder, POSIX separators
    present: bool
    report: Path | None
    reason: str | None
    stage: str | None
    failed_at: str | None  # ISO-8601 UTC, as in the report
    failed_at_unix: float | None
    source: str | None  # relative to the inbox, as the report says (non-UTF-8 bytes as \\xNN)


def read_report(report: Path) -> dict[str, Any] | None:
    """A report's JSON object, or None if it cannot be read as one."""
    try:
        data = json.loads(report.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _entry(root: Path, path: Path, present: bool, report: Path | None) -> Quarantined:
    data = read_report(report) if report is not None else None
    data = data or {}
    unix = data.get("failed_at_unix")
    return Quarantined(path=path, rel=path.relative_to(root).as_posix(), present=present,
                       report=report, reason=_text(data, "reason"), stage=_text(data, "stage"),
                       failed_at=_text(data, "failed_at"),
                       failed_at_unix=float(unix) if isinstance(unix, int | float) else None,
                       source=_text(data, "source"))


def _walk(root: Path) -> Iterator[tuple[Path, bool]]:
    """(path, is a report) for every visible regular file under `root`."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("."):  # our temp files; nothing hidden is ever quarantined
                continue
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                continue
            yield path, name.endswith(REPORT_SUFFIX)


def quarantined_files(root: Path) -> list[Quarantined]:
    """Every failure under the quarantine folder `root`, newest first (unknown times last)."""
    files, reports = [], set()
    for path, is_report in _walk(root):
        (reports.add(path) if is_report else files.append(path))
    found = []
    for path in files:
        report = report_path_for(path)
        has = report in reports
        reports.discard(report)
        found.append(_entry(root, path, True, report if has else None))
    for report in sorted(reports):  # a report whose file is gone, or one left behind
        data = read_report(report) or {}
        named = _text(data, "quarantined_as")
        if named is None or "/" in named or report_path_for(report.with_name(named)) != report:
            continue  # not a report of ours
        path = report.with_name(named)  # present too if its name looked like a report's
        found.append(_entry(root, path, path.is_file() and not path.is_symlink(), report))
    found.sort(key=lambda q: (q.failed_at_unix is not None, q.failed_at_unix or 0.0, q.rel), reverse=True)
    return found

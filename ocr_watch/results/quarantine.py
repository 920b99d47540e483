"""Put a failed source in quarantine next to a readable ``.error.json`` that says why.

The report is written first, then the source is moved, so a crash in between leaves a report
whose file is still in the inbox, never a quarantined file without its reason. Calling
:func:`quarantine_file` again for the same failure (same ``source`` and ``first_seen``) reuses
that report's name instead of leaving an orphan beside a ``-2`` copy.

A file name need not be UTF-8; in the report, bytes that are not are written as ``\\xNN``, so
the JSON stays valid UTF-8 and a person can still tell which file it was. A report's name is
``<file>.error.json``, or, where that would pass the file system's name limit,
``<file cut to fit>.<8 hex of the file name's SHA-256>.error.json`` (see ``naming.fit_name``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from ocr_watch.fsops import atomic_write_bytes, move_no_clobber
from ocr_watch.names import NAME_MAX, fit_name, readable, sibling_candidates

__all__ = ["REPORT_SUFFIX", "FailureReport", "quarantine_file", "report_path_for", "retire_report"]

REPORT_SUFFIX = ".error.json"
REPORT_SCHEMA = 1


@dataclass
class FailureReport:
    """Why one source was quarantined; every field ends up in the ``.error.json``."""

    source: str  # path relative to the inbox, POSIX separators
    reason: str  # plain words, for the person who finds the file
    stage: str  # a journal Stage: intake | create | poll | download | output | internal
    attempts: int
    task_id: str | None
    last_http_status: int | None
    last_task_state: int | None
    first_seen: float  # unix seconds
    failed_at: float  # unix seconds
    sha256: str | None
    size: int | None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self, *, source_missing: bool, quarantined_as: str) -> bytes:
        """The report as pretty JSON; timestamps both as ISO-8601 UTC and as unix seconds."""
        data: dict[str, Any] = {"schema": REPORT_SCHEMA}
        for key, value in asdict(self).items():
            if key in ("first_seen", "failed_at"):
                data[key] = _iso(value)
                data[f"{key}_unix"] = value
            else:
                data[key] = value
        data["source_missing"] = source_missing
        data["quarantined_as"] = quarantined_as
        return (json.dumps(_readable_values(data), indent=2, ensure_ascii=False, default=str) + "\n").encode()


def _readable_values(value: Any) -> Any:
    if isinstance(value, str):
        return readable(value)
    if isinstance(value, dict):
        return {k: _readable_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_readable_values(v) for v in value]
    return value


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def report_path_for(quarantined: Path) -> Path:
    """Where the report for a quarantined file lives: ``<file>.error.json``, or a cut name with
    a hash of the whole name where that is too long (two long names never share a report)."""
    name = quarantined.name
    if len(os.fsencode(name + REPORT_SUFFIX)) <= NAME_MAX:
        return quarantined.with_name(name + REPORT_SUFFIX)
    tag = hashlib.sha256(os.fsencode(name)).hexdigest()[:8]
    return quarantined.with_name(fit_name(name, f".{tag}{REPORT_SUFFIX}"))


def quarantine_file(source: Path, rel: PurePosixPath, quarantine_root: Path,
                    report: FailureReport, mode: int = 0o666, *, leave_source: bool = False) -> Path:
    """Write the report, then move ``source`` to ``quarantine/<rel>`` (or a free sibling).

    Returns the quarantined path. If ``source`` is already gone (or ``leave_source``), the
    report is still written, with ``"source_missing": true``, and the returned path is where
    the file would have gone. ``mode``: the report's permission bits before the umask
    (``fsops.copy_mode`` of the source).
    """
    # leave_source: the path is no longer the failed file (a FIFO, a symlink or another file
    # put in its place); only the report is written, and the path is not touched.
    source_present = not leave_source and (source.exists() or source.is_symlink())
    dest, done = _choose_destination(source if source_present else None,
                                     quarantine_root / rel, report)
    if done:
        return dest
    atomic_write_bytes(report_path_for(dest),
                       report.to_json(source_missing=not source_present, quarantined_as=dest.name), mode)
    if not source_present:
        return dest
    try:
        final = move_no_clobber(source, dest)
    except FileNotFoundError:
        # Vanished between our check and the move: say so in the report.
        atomic_write_bytes(report_path_for(dest),
                           report.to_json(source_missing=True, quarantined_as=dest.name), mode)
        return dest
    if final != dest:  # someone else took the name meanwhile: the report follows the file
        atomic_write_bytes(report_path_for(final),
                           report.to_json(source_missing=False, quarantined_as=final.name), mode)
        report_path_for(dest).unlink(missing_ok=True)
    return final


def _choose_destination(source: Path | None, wanted: Path,
                        report: FailureReport) -> tuple[Path, bool]:
    """The name to use, and whether an earlier call already finished the job there."""
    for candidate in sibling_candidates(wanted):
        exists = candidate.exists() or candidate.is_symlink()
        ours = _is_our_report(report_path_for(candidate), report)
        if exists:
            if source is not None and _same_file(source, candidate):
                return candidate, False  # interrupted move: finish it
            if source is None and ours:
                return candidate, True  # an earlier call completed the move
            continue
        if ours or not (report_path_for(candidate).exists()
                        or report_path_for(candidate).is_symlink()):
            return candidate, False
    raise AssertionError("unreachable")  # pragma: no cover


def _same_file(a: Path, b: Path) -> bool:
    try:
        sa, sb = a.lstat(), b.lstat()
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _is_our_report(path: Path, report: FailureReport) -> bool:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return (isinstance(data, dict) and data.get("source") == readable(report.source)
            and data.get("first_seen_unix") == report.first_seen)


def retire_report(quarantined: Path, into: Path) -> Path | None:
    """Move the report of a file that left quarantine (to be run again) out of the quarantine
    folder into `into`, so quarantine shows only current failures; where it went, or None if
    there was no report (already retired)."""
    report = report_path_for(quarantined)
    if not report.exists():
        return None
    try:
        return move_no_clobber(report, into / report.name)
    except FileNotFoundError:
        return None

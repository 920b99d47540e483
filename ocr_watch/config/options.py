"""A file's effective OCR options: its job's, or its job's first matching rule's overrides.

Pure (no I/O, no clock): the daemon calls it when it admits a file and keeps the result in
the journal, so a reload or a restart never changes what a file in flight is paying for. A
password file was read when the configuration was loaded (checks.read_password), so
resolving cannot fail for one file and the password is a :class:`Secret` here too: it is
revealed only where the request is built, and never shown by a repr or a log line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath

from .job import Job
from .schema import Secret

__all__ = ["FileOptions", "resolve_options"]


@dataclass(frozen=True)
class FileOptions:
    """What one file is converted with."""

    formats: tuple[str, ...]
    language: str
    password: Secret | None
    rule: int | None  # the index in the job's rules that matched (jobs.<name>.rules[i]); None: none


def resolve_options(job: Job, relative: str | PurePath) -> FileOptions:
    """The options for the file at ``relative`` (below ``job``'s inbox, ``/`` or the OS's
    separator): the first rule whose ``match`` matches decides, each key it leaves out is the
    job's; no later rule is looked at. Raises ValueError for a path that is not relative."""
    path = PurePosixPath(PurePath(relative).as_posix())
    if path.is_absolute() or ".." in path.parts or not path.parts or path.parts[0] == ".":
        raise ValueError(f"not a path below the inbox: {str(relative)!r}")
    text = path.as_posix()
    base = job.ocr
    for i, rule in enumerate(job.rules):
        if rule.match.matches(text):
            over = rule.ocr
            return FileOptions(
                formats=over.formats if over.formats is not None else base.formats,
                language=over.language if over.language is not None else base.language,
                password=over.password if over.password is not None else base.password,
                rule=i)
    return FileOptions(base.formats, base.language, base.password, None)

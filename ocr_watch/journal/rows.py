"""A journal row as the pool sees it, the options a row is admitted with, and how values
cross into SQLite (a file name that is not UTF-8 is stored as its bytes: see store.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from .states import FileState

__all__ = ["COLUMNS", "SETTABLE", "Row", "RowOptions", "options_key", "to_params", "to_row"]


@dataclass(frozen=True, slots=True)
class Row:
    """A snapshot of one file's journal row."""

    id: int
    rel: str
    size: int
    mtime_ns: int
    inode: int
    sha256: str | None
    options_key: str
    state: FileState
    task_id: str | None
    task_created_at: float | None
    result_url: str | None
    result_url_at: float | None
    output_rel: str | None
    final_path: str | None
    attempts: int
    last_stage: str | None
    last_error: str | None
    last_http_status: int | None
    last_task_state: int | None
    first_seen: float
    updated_at: float
    finished_at: float | None
    mode: int | None = None
    lost_create_answers: int = 0
    possible_double_charges: int = 0
    job: str = "default"
    format: str | None = None     # None: a row of an older version, options not yet fixed
    language: str | None = None
    # The OCR password the file was admitted with: kept here (the journal is owner-only, like
    # the result links it holds) so a reload that changes or drops the password file never
    # changes what a file in flight is sent with. Never shown by a repr.
    password: str | None = field(default=None, repr=False)
    rule: int | None = None       # the index of the job's rule that matched; None: the job's own
    batch: int | None = None      # several formats: the id of the file's first row

    @property
    def stamp(self) -> tuple[int, int, int]:
        return (self.size, self.mtime_ns, self.inode)


@dataclass(frozen=True, slots=True)
class RowOptions:
    """What one row is converted with, fixed at admission (one format each)."""

    format: str
    language: str
    password: str | None = field(default=None, repr=False)
    rule: int | None = None

    @property
    def options_key(self) -> str:
        """What makes two results of the same content interchangeable (the password is not:
        it only opens the file)."""
        return options_key(self.format, self.language)


def options_key(fmt: str, language: str) -> str:
    return f"{fmt}|{language}"


COLUMNS = [f.name for f in fields(Row)]
SETTABLE = frozenset(COLUMNS) - {"id", "state", "updated_at", "first_seen"}


def _to_db(value: Any) -> Any:
    """A string SQLite cannot take as text (a non-UTF-8 file name) goes in as its bytes."""
    if isinstance(value, str) and not value.isascii():  # ASCII (nearly all) needs no copy
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape")
    return value


def to_params(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(_to_db(v) for v in values)


def to_row(values: Iterable[Any]) -> Row:
    data: dict[str, Any] = {k: v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v
                            for k, v in zip(COLUMNS, values, strict=True)}
    data["state"] = FileState(data["state"])
    return Row(**data)

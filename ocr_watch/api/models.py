"""Values exchanged with the PicWish OCR API: task states, a polled task, create options.

Parsing is tolerant on purpose: the query envelope is only partly documented, so a
missing, extra or oddly typed field must never crash a poll loop.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

__all__ = ["CreateOptions", "Task", "TaskState", "describe_state"]


class TaskState(enum.IntEnum):
    """The documented values of ``data.state``; any other negative value is a failure."""

    DONE = 1
    QUEUED = 0
    PREPARING = 2
    WAITING = 3
    PROCESSING = 4
    FAILED = -1
    STORE_FAILED = -2
    URL_DOWNLOAD_FAILED = -3
    TOO_LARGE = -5
    CORRUPT = -7
    TIMED_OUT = -8


_DESCRIPTIONS: dict[int, str] = {
    TaskState.DONE: "done",
    TaskState.QUEUED: "queued",
    TaskState.PREPARING: "preparing",
    TaskState.WAITING: "waiting",
    TaskState.PROCESSING: "processing",
    TaskState.FAILED: "the service failed to process the file",
    TaskState.STORE_FAILED: "the service failed to store the result",
    TaskState.URL_DOWNLOAD_FAILED: "the service could not download the source URL",
    TaskState.TOO_LARGE: "the file is too large",
    TaskState.CORRUPT: "the file is corrupt or not a supported format",
    TaskState.TIMED_OUT: "processing timed out on the service",
}


def describe_state(state: int) -> str:
    """Plain words for a task state, for logs and quarantine files."""
    text = _DESCRIPTIONS.get(state)
    if text is not None:
        return text
    if state < 0:
        return f"the service failed to process the file (state {state})"
    return f"in progress (state {state})"


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                return None
            return int(number) if number.is_integer() else None
    return None


def _as_float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _as_str(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


@dataclasses.dataclass(frozen=True)
class Task:
    """One answer to a task query, whatever its state."""

    task_id: str
    state: int
    progress: int = 0
    file_url: str | None = None
    created_at: float | None = None
    processed_at: float | None = None
    completed_at: float | None = None
    file_pages: int | None = None
    ocr_pages: int | None = None
    input_size: int | None = None
    output_size: int | None = None
    message: str = ""
    # Wall time the query that produced this answer was sent (after any rate-limit wait).
    sent_at: float | None = dataclasses.field(default=None, compare=False)

    @classmethod
    def from_data(cls, data: object, *, task_id: str = "", message: str = "") -> Task:
        """Build from the envelope's ``data``; unknown or unreadable fields become defaults.

        A missing ``state`` reads as QUEUED so the caller keeps polling rather than
        mistaking a half-written answer for a verdict.
        """
        fields: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
        state = _as_int(fields.get("state"))
        progress = _as_int(fields.get("progress"))
        file_url = _as_str(fields.get("file"))
        data_message = _as_str(fields.get("message"))
        return cls(
            task_id=_as_str(fields.get("task_id")) or task_id,
            state=TaskState.QUEUED if state is None else state,
            progress=0 if progress is None else progress,
            file_url=file_url or None,
            created_at=_as_float(fields.get("created_at")),
            processed_at=_as_float(fields.get("processed_at")),
            completed_at=_as_float(fields.get("completed_at")),
            file_pages=_as_int(fields.get("file_pages")),
            ocr_pages=_as_int(fields.get("ocr_pages")),
            input_size=_as_int(fields.get("input_size")),
            output_size=_as_int(fields.get("output_size")),
            message=data_message or message,
        )

    @property
    def is_done(self) -> bool:
        """Finished and the result URL is known."""
        return self.state == TaskState.DONE and bool(self.file_url)

    @property
    def is_failed(self) -> bool:
        """Terminal failure; failed tasks are not billed."""
        return self.state < 0

    @property
    def is_pending(self) -> bool:
        """Keep polling (includes DONE without a URL yet)."""
        return not self.is_done and not self.is_failed

    @property
    def description(self) -> str:
        """Plain words for the state."""
        return describe_state(self.state)


@dataclasses.dataclass(frozen=True)
class CreateOptions:
    """Form fields sent with a new task; ``password``, and the query of ``callback_url`` (it
    carries the callback token), are masked in ``repr``."""

    format: str = "txt"
    language: str = "ChinesePRC,English,Digits"
    password: str | None = None
    callback_url: str | None = None

    def __repr__(self) -> str:
        password = None if self.password is None else "***"
        callback = self.callback_url
        if callback is not None and "?" in callback:
            callback = callback.split("?", 1)[0] + "?***"
        return (
            f"CreateOptions(format={self.format!r}, language={self.language!r}, "
            f"password={password!r}, callback_url={callback!r})"
        )

    def form_fields(self) -> dict[str, str]:
        """The multipart text fields; ``sync`` is left out so the task runs asynchronously."""
        fields = {"format": self.format, "language": self.language}
        if self.password is not None:
            fields["password"] = self.password
        if self.callback_url is not None:
            fields["callback_url"] = self.callback_url
        return fields

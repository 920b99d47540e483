"""Decide, from a name and a size alone, whether a file in the inbox is ours to process.

Two different answers: *ignored* files (hidden, temp, lock files) are never touched and never
reported, because they belong to some other program that is still working; *rejected* files are
real documents the service cannot take, so they go to quarantine with a reason, without spending
an API call. Pure: no I/O.
"""

from __future__ import annotations

import fnmatch
from pathlib import PurePosixPath

__all__ = ["MAX_SOURCE_BYTES", "SUPPORTED_EXTENSIONS", "ignore_reason", "reject_reason"]

# What the OCR service accepts (vendor documentation), lower case, without the dot.
SUPPORTED_EXTENSIONS = ("pdf", "ppt", "pptx", "xls", "xlsx", "doc", "docx", "jpeg", "jpg", "png",
                        "gif", "bmp")
MAX_SOURCE_BYTES = 200 * 1024 * 1024  # inclusive: exactly 200 MB is accepted

# Lower-case glob patterns for names of lock, temp and system files.
_IGNORED_NAMES = (
    ("~$*", "an Office owner/lock file"),
    (".~lock.*#", "a LibreOffice lock file"),
    ("*.tmp", "a temporary file"),
    ("*.temp", "a temporary file"),
    ("*.part", "a partial download or copy"),
    ("*.partial", "a partial download or copy"),
    ("*.crdownload", "a partial download"),
    ("*.swp", "an editor swap file"),
    ("*.swx", "an editor swap file"),
    ("*~", "an editor backup file"),
    ("thumbs.db", "a Windows thumbnail cache"),
    ("desktop.ini", "a Windows folder settings file"),
    (".ds_store", "a macOS folder settings file"),
)


def ignore_reason(rel: PurePosixPath) -> str | None:
    """Why a path relative to the inbox is none of our business, or None if it is."""
    for part in rel.parts[:-1]:
        if part.startswith("."):
            return f"inside the hidden folder {part!r}"
    name = rel.name.lower()
    for pattern, what in _IGNORED_NAMES:
        if fnmatch.fnmatchcase(name, pattern):
            return what
    if name.startswith("."):
        return "a hidden file"
    return None


def reject_reason(rel: PurePosixPath, size: int) -> str | None:
    """Why a file must go to quarantine without an upload, in plain words; None if it may go."""
    accepted = ", ".join(SUPPORTED_EXTENSIONS)
    suffix = rel.suffix
    if not suffix or suffix == ".":
        return f"the file has no extension, so its kind is unknown; the OCR service accepts {accepted}"
    if suffix[1:].lower() not in SUPPORTED_EXTENSIONS:
        return f"'{suffix}' is not a kind the OCR service accepts ({accepted})"
    if size == 0:
        return "the file is empty (0 bytes)"
    if size > MAX_SOURCE_BYTES:
        return (f"the file is {size / (1024 * 1024):.1f} MB ({size} bytes); the OCR service "
                f"accepts at most 200 MB ({MAX_SOURCE_BYTES} bytes)")
    return None

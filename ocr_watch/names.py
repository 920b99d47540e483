"""A file name shown to a person: any bytes the file system allows, as valid UTF-8 text.

Python hands a name that is not UTF-8 (an SMB share's, a legacy zip's) to us as a string with
lone surrogates (`os.fsdecode`). Such a string cannot be written as UTF-8, and shown raw it
reads as ``\\udcff``. Logs and reports show those bytes as ``\\xff`` instead. A leaf module:
it imports nothing of ours.
"""

from __future__ import annotations

__all__ = ["readable"]


def readable(text: str) -> str:
    """``text`` with the bytes of a non-UTF-8 file name shown as ``\\xNN``."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")

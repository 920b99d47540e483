"""File names: shown to a person, cut to fit, and numbered when taken. A leaf: it imports
nothing of ours, so the durable file operations (`fsops`) and every layer can use it.

A name is any bytes the file system allows. Python hands a name that is not UTF-8 (an SMB
share's, a legacy zip's) to us as a string with lone surrogates (`os.fsdecode`). Such a string
cannot be written as UTF-8, and shown raw it reads as ``\\udcff``; logs and reports show those
bytes as ``\\xff`` instead (`readable`).

A name is at most ``NAME_MAX`` bytes. Where a derived name (a temp, ``name-2.ext``, a report,
an output's hash name) would be longer, the stem is cut at a character boundary until it
fits, keeping the ending (`fit_name`); names that fit are never changed.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["NAME_MAX", "fit_name", "readable", "sibling_candidates"]


def readable(text: str) -> str:
    """``text`` with the bytes of a non-UTF-8 file name shown as ``\\xNN``."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# Bytes in one file name on Linux's local file systems (ext4, xfs, btrfs, tmpfs) and SMB/NFS.
NAME_MAX = 255


def _name_bytes(name: str) -> int:
    return len(os.fsencode(name))


def fit_name(stem: str, ending: str, limit: int = NAME_MAX) -> str:
    """``stem + ending``, with ``stem`` cut at a character boundary until it fits ``limit`` bytes."""
    if _name_bytes(stem + ending) <= limit:
        return stem + ending
    room = limit - _name_bytes(ending)
    if room < 1:
        raise ValueError(f"no room for a name before {ending!r}")
    cut = stem
    while cut and _name_bytes(cut) > room:
        cut = cut[:-1]
    return cut + ending


def sibling_candidates(path: Path) -> Iterator[Path]:
    """``path``, then ``name-2.ext``, ``name-3.ext`` ... beside it; endless."""
    yield path
    stem, suffix = path.stem, path.suffix
    for n in itertools.count(2):
        yield path.with_name(fit_name(stem, f"-{n}{suffix}"))

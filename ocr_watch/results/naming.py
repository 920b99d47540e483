"""Choose names for results and moved files, so that nothing is ever overwritten.

Collision rules (quoted by the README):

* **Outbox.** A source ``<subdir>/<stem>.<ext>`` converted to format ``<fmt>`` is written to
  ``<subdir>/<stem>.<fmt>`` in the outbox, mirroring the inbox's subfolders. If that name is
  taken (a file on disk, or a name already reserved for another source in the journal), the
  result becomes ``<subdir>/<stem>.<h>.<fmt>``, where ``<h>`` is the first 8 hex digits of the
  source's SHA-256; if that too is taken, ``<stem>.<h>-2.<fmt>``, ``<stem>.<h>-3.<fmt>``, and so
  on. The list depends only on the source path, format and content, so after a restart the same
  file gets the same name.
* **Quarantine and archive.** A file moved to ``<folder>/<rel>`` keeps its name unless that is
  taken; then the number goes before the last extension: ``name.ext`` becomes ``name-2.ext``,
  then ``name-3.ext``, and so on (``name`` for a file with no extension becomes ``name-2``).
* **Names too long.** A file name is at most ``NAME_MAX`` (255) bytes. Where one of these rules
  would make a longer name (a long source name plus ``.<h>``, ``-2``, ``.error.json`` or a temp
  suffix), the stem is cut at a character boundary until the name fits; the ending is kept
  whole. Names that fit are never changed, and the cut depends only on the name, so a restart
  picks the same one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from ocr_watch.names import fit_name, sibling_candidates

__all__ = ["free_sibling", "output_candidates"]

HASH_PREFIX_CHARS = 8


def output_candidates(rel_source: PurePosixPath, fmt: str, sha256: str) -> Iterator[PurePosixPath]:
    """Outbox paths for a result, relative to the outbox, best first; endless."""
    if not fmt or "/" in fmt:
        raise ValueError(f"not a result format: {fmt!r}")
    if len(sha256) < HASH_PREFIX_CHARS:
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    parent, stem = rel_source.parent, rel_source.stem
    short = sha256[:HASH_PREFIX_CHARS].lower()
    yield parent / fit_name(stem, f".{fmt}")
    yield parent / fit_name(stem, f".{short}.{fmt}")
    for n in itertools.count(2):
        yield parent / fit_name(stem, f".{short}-{n}.{fmt}")


def free_sibling(path: Path) -> Path:
    """The first of :func:`sibling_candidates` that does not exist (a broken symlink counts)."""
    for candidate in sibling_candidates(path):
        if not candidate.exists() and not candidate.is_symlink():
            return candidate
    raise AssertionError("unreachable")  # pragma: no cover

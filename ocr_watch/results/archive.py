"""Deal with a source after its result is safely in the outbox: archive, delete or keep it.

Runs only after the result is durable, so a crash here can at worst leave the source in the
inbox with its result already written; the journal then knows not to spend a credit again.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from ocr_watch.choices import OnSuccess
from ocr_watch.fsops import fsync_dir, move_no_clobber

__all__ = ["finish_source"]


def finish_source(source: Path, rel: PurePosixPath, mode: OnSuccess | str, archive_root: Path) -> Path | None:
    """Apply ``on_success``; return the archived path, or None for ``delete`` and ``keep``.

    ``archive`` raises :class:`FileNotFoundError` if the source is gone (the journal decides
    whether that was a finished move). ``delete`` of a source already gone is a no-op, so a
    repeated call after a crash succeeds.
    """
    if mode == OnSuccess.ARCHIVE:
        return move_no_clobber(source, archive_root / rel)
    if mode == OnSuccess.DELETE:
        try:
            os.unlink(source)
        except FileNotFoundError:
            return None
        fsync_dir(source.parent)
        return None
    if mode == OnSuccess.KEEP:
        return None
    raise ValueError(f"on_success must be one of {', '.join(OnSuccess)}, got {mode!r}")

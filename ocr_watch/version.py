"""The version this process runs, for `--version` and the first log line.

Read from the installed distribution's metadata (what pip installed is what runs); a source
tree run without installing has none, and falls back to `ocr_watch.__version__`.
"""

from __future__ import annotations

from importlib import metadata

import ocr_watch

__all__ = ["DISTRIBUTION", "version"]

DISTRIBUTION = "ocr-watch"


def version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return ocr_watch.__version__

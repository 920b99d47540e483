"""Lists the files under a folder, for the scan at start and the periodic safety-net rescan.

A file dropped while the daemon was down, or an event the kernel dropped (inotify queue
overflow), is still found: the watcher is fast, the scan is sure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["scan_files"]


def scan_files(root: Path, below: str = "") -> Iterator[str]:
    """Relative POSIX paths of regular files under `root/below`; hidden folders are skipped."""
    stack = [os.path.join(root, below) if below else os.fspath(root)]
    base = os.fspath(root)
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    yield os.path.relpath(entry.path, base).replace(os.sep, "/")
            except OSError:
                continue

"""The words a configuration chooses among, named once: the config checks against them and the
code that acts on them compares members, so neither can drift from the other. A leaf: it
imports nothing of ours."""

from __future__ import annotations

import enum

__all__ = ["OnSuccess", "WatchMode"]


class OnSuccess(enum.StrEnum):
    """What happens to a source once its output is complete (`on_success`)."""

    ARCHIVE = "archive"
    DELETE = "delete"
    KEEP = "keep"


class WatchMode(enum.StrEnum):
    """How the inbox is watched (`watch.mode`): inotify, listing it, or inotify if it can."""

    AUTO = "auto"
    NATIVE = "native"
    POLLING = "polling"

"""Finding files in the inbox: native or polling events, plus scans. Imports nothing of ours."""

from .observer import InboxWatcher
from .scan import scan_files

__all__ = ["InboxWatcher", "scan_files"]

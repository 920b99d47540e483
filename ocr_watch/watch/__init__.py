"""Finding files in the inbox: native or polling events, plus scans. Imports nothing of ours."""

from .handler import Reason
from .observer import InboxWatcher
from .scan import scan_files
from .supervisor import WatcherDied, keep_watching

__all__ = ["InboxWatcher", "Reason", "WatcherDied", "keep_watching", "scan_files"]

"""Everything that writes or moves files once the API is done: outbox, quarantine, archive."""

from ocr_watch.results.archive import finish_source
from ocr_watch.results.fsops import atomic_write_bytes, move_no_clobber
from ocr_watch.results.quarantine import FailureReport, quarantine_file

__all__ = ["FailureReport", "atomic_write_bytes", "finish_source", "move_no_clobber",
           "quarantine_file"]

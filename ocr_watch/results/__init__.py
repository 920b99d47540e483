"""What happens to a source and its result once the API is done: outbox names, quarantine with
reports, archive. The durable file operations they use are the shared leaf `ocr_watch.fsops`."""

from ocr_watch.results.archive import finish_source
from ocr_watch.results.quarantine import FailureReport, quarantine_file

__all__ = ["FailureReport", "finish_source", "quarantine_file"]

"""Pure decisions about files in the inbox: ignore, reject, identify, and wait until settled."""

from ocr_watch.intake.filters import ignore_reason, reject_reason
from ocr_watch.intake.stability import SettleTracker

__all__ = ["SettleTracker", "ignore_reason", "reject_reason"]

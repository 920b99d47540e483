"""The bounded pool that carries files from the queue to the outbox or quarantine."""

from .planner import PollPlanner
from .pool import Pool, PoolStats
from .service import OcrService
from .settings import PoolSettings

__all__ = ["OcrService", "PollPlanner", "Pool", "PoolSettings", "PoolStats"]

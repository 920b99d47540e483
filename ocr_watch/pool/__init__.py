"""The bounded pool that carries files from the queue to the outbox or quarantine."""

from .pool import Pool
from .settings import PoolSettings

__all__ = ["Pool", "PoolSettings"]

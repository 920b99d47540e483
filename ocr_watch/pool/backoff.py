"""Retry delays: exponential, capped, with jitter so that many files retrying after one
outage do not all hit the service in the same second."""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]


def backoff_delay(attempt: int, initial_s: float, maximum_s: float, rng: random.Random | None = None) -> float:
    """Delay before retry number `attempt` (0-based): half fixed, half random ("equal jitter")."""
    ceiling = min(maximum_s, initial_s * (2.0 ** min(attempt, 30)))
    r: float = rng.random() if rng else random.random()
    return ceiling / 2 + r * ceiling / 2

"""What the poll planner learnt, kept in the state dir so a restart does not pay for it again.

A planner that starts from nothing queries its first tasks early and often: measured with
`python bench/restart.py`, the first 30 tasks after a start cost about 1.7 queries each at
10 s a task, a warmed-up planner's 1.0. That is about 20 requests of quota (10 s at the
default 2 req/s) spent at every start, config reload or upgrade.

The memory is a hint, never a requirement: a missing, stale, unreadable or foreign file is
reported and ignored, and start-up goes on from nothing. It is written atomically (temp,
fsync, rename), so `kill -9` at any line leaves the previous memory or the new one; it is
saved every `every_s` while something changed, and once more at shutdown.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from ocr_watch.fsops import atomic_write_bytes

from .planner import PollPlanner, positive_number

__all__ = ["FILE_NAME", "MAX_AGE_S", "PlannerMemory"]

log = structlog.get_logger("ocr_watch.pool")

FILE_NAME = "planner.json"
_VERSION = 1
# How long the service's speed is assumed to stay what it was; older memory is dropped.
MAX_AGE_S = 7 * 24 * 3600.0


class PlannerMemory:
    """Loads a planner from `path` and keeps `path` up to date with it."""

    def __init__(self, path: Path, planner: PollPlanner, *, wall: Callable[[], float] = time.time) -> None:
        self.path = path
        self.planner = planner
        self._wall = wall
        self._saved: dict[str, Any] | None = None

    def load(self) -> bool:
        """Recall the last run's learning into the planner; False (and a log line) if unusable."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return False
        except OSError as exc:
            return self._ignored(f"cannot read it: {exc.strerror or exc}")
        try:
            stored = json.loads(raw)
        except ValueError:
            return self._ignored("it is not JSON")
        if not isinstance(stored, dict) or stored.get("version") != _VERSION:
            return self._ignored(f"it is not version {_VERSION} of this file")
        saved_at = stored.get("saved_at")
        if not positive_number(saved_at):
            return self._ignored("saved_at is missing or not a time")
        age = self._wall() - saved_at
        if age > MAX_AGE_S:
            return self._ignored(f"it is {age / 86400:.0f} days old; the service's speed may have changed")
        memory = stored.get("planner")
        try:
            if not isinstance(memory, dict):
                raise ValueError("planner is missing")
            self.planner.recall(memory)
        except ValueError as exc:
            return self._ignored(str(exc))
        self._saved = self.planner.memory()
        log.info("planner_recalled", path=str(self.path), durations=self.planner.learnt,
                 age_s=round(max(age, 0.0), 1))
        return True

    def save(self) -> None:
        """Write the planner's memory now if it changed (blocking: it fsyncs); used at shutdown."""
        self._write(self.planner.memory())

    async def keep(self, every_s: float = 15.0) -> None:
        """Save every `every_s` seconds while the planner learns, writing off the event loop."""
        while True:
            await asyncio.sleep(every_s)
            # Copied here, on the loop's thread: the only thread that changes the planner.
            memory = self.planner.memory()
            await asyncio.to_thread(self._write, memory)

    def _write(self, memory: dict[str, Any]) -> None:
        if memory == self._saved or not memory["durations"]:
            return
        data = {"version": _VERSION, "saved_at": self._wall(), "planner": memory}
        try:
            atomic_write_bytes(self.path, json.dumps(data, indent=1).encode(), 0o600)
        except OSError as exc:
            # Losing a hint must not stop the work; the next save tries again.
            log.warning("planner_memory_not_saved", path=str(self.path), error=str(exc))
            return
        self._saved = memory

    def _ignored(self, why: str) -> bool:
        log.warning("planner_memory_ignored", path=str(self.path), reason=why)
        return False

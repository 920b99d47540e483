"""Task store and lifecycle, computed lazily from a monotonic clock.

A task's state is a pure function of the time since it was created, so a query
never waits for a background thread. ``settle`` turns elapsed transitions into
events (credits spent, result URL issued, callbacks due) exactly once each.

Timeline for a duration D: state 0 (queued) until 5% of D, 2 (preparing) until
15%, 3 (waiting) until 25%, 4 (processing, progress 0..99) until D, then 1
(done, progress 100, ``file`` set). Unsupported content (-7), an unreachable
``image_url`` (-3) and "too large" (-5) fail at the end of preparing (15%); the
other failure states (-1, -2, -8) are reached at D.
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FAILURE_MESSAGES: dict[int, str] = {
    -1: "processing failed",
    -2: "failed to store the result",
    -3: "could not download image_url",
    -5: "file too large",
    -7: "corrupt or unsupported file",
    -8: "processing timed out",
}
EARLY_FAILURES = frozenset({-3, -5, -7})

QUEUED_END, PREPARING_END, WAITING_END = 0.05, 0.15, 0.25


def failure_message(state: int) -> str:
    """Human-readable reason for a failure state."""
    return FAILURE_MESSAGES.get(state, "processing failed")


@dataclass
class Task:
    """One OCR task as the emulator remembers it."""

    task_id: str
    sha256: str
    source_name: str
    size: int
    fmt: str
    callback_url: str | None
    created_mono: float
    created_wall: float
    duration: float
    failure_state: int | None = None
    force_expired_url: bool = False
    broken_download_pending: bool = False
    next_transition: int = 0
    state_notified: int = 0
    terminal: bool = False
    result_url: str | None = None
    output_size: int = 0
    queries: int = 0
    downloads: int = 0
    first_download_t: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def transitions(self) -> list[tuple[float, int]]:
        """(offset seconds from creation, state entered) in order."""
        d = self.duration
        fs = self.failure_state
        if fs is not None and fs in EARLY_FAILURES:
            return [(QUEUED_END * d, 2), (PREPARING_END * d, fs)]
        return [(QUEUED_END * d, 2), (PREPARING_END * d, 3), (WAITING_END * d, 4), (d, fs if fs is not None else 1)]

    def terminal_offset(self) -> float:
        """Seconds from creation until the task is terminal."""
        return self.transitions()[-1][0]

    def state_at(self, elapsed: float) -> tuple[int, int]:
        """(state, progress) ``elapsed`` seconds after creation."""
        state = 0
        for offset, entered in self.transitions():
            if elapsed >= offset:
                state = entered
        if state == 1:
            return 1, 100
        if state == 4:
            span = self.duration * (1 - WAITING_END)
            frac = 0.0 if span <= 0 else (elapsed - WAITING_END * self.duration) / span
            return 4, max(0, min(99, int(99 * frac)))
        return state, 0


@dataclass
class Event:
    """A transition that ``settle`` found: the task, the state entered, and its envelope."""

    task: Task
    state: int
    envelope: dict[str, Any]


class TaskStore:
    """All tasks plus credits; thread-safe through one re-entrant lock."""

    def __init__(self, seed: int, credits: int | None, *, issue_url: Callable[[Task, float], str],
                 render_size: Callable[[Task], int], on_events: Callable[[list[Event]], None],
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self._issue_url = issue_url
        self._render_size = render_size
        self._on_events = on_events
        self._clock = clock
        self._wall = wall
        self._rng = random.Random(seed)
        self._seed = seed
        self.tasks: dict[str, Task] = {}
        self.order: list[str] = []
        self.credits_left: int | None = credits
        self.credits_spent = 0
        self.credits_overdrawn = 0
        self.by_sha256: Counter[str] = Counter()

    def reset(self, credits: int | None) -> None:
        """Forget every task and restore the credit balance and the RNG."""
        with self.lock:
            self.tasks.clear()
            self.order.clear()
            self._rng = random.Random(self._seed)
            self.credits_left = credits
            self.credits_spent = 0
            self.credits_overdrawn = 0
            self.by_sha256.clear()

    def now(self) -> float:
        """The monotonic clock the lifecycle runs on."""
        return self._clock()

    def create(self, *, sha256: str, source_name: str, size: int, fmt: str, callback_url: str | None,
               base_seconds: float, per_mb: float, jitter: float, override_seconds: float | None,
               failure_state: int | None, force_expired_url: bool, broken_download: bool) -> Task:
        """Register a new task and return it."""
        with self.lock:
            u = self._rng.uniform(-1.0, 1.0)  # always drawn, so the sequence does not depend on settings
            if override_seconds is not None:
                duration = override_seconds
            else:
                duration = max(0.0, (base_seconds + per_mb * size / (1024 * 1024)) * (1 + jitter * u))
            task = Task(
                task_id=str(uuid.uuid4()),  # random: ids must not repeat across emulator restarts
                sha256=sha256, source_name=source_name, size=size, fmt=fmt, callback_url=callback_url,
                created_mono=self._clock(), created_wall=self._wall(), duration=duration,
                failure_state=failure_state, force_expired_url=force_expired_url,
                broken_download_pending=broken_download,
            )
            self.tasks[task.task_id] = task
            self.order.append(task.task_id)
            if sha256:
                self.by_sha256[sha256] += 1
            return task

    def elapsed(self, task: Task) -> float:
        """Seconds since the task was created."""
        return self._clock() - task.created_mono

    def is_forgotten(self, task: Task, retention: float) -> bool:
        """True once the task has been terminal for longer than ``retention``."""
        return self.elapsed(task) > task.terminal_offset() + retention

    def lookup(self, task_id: str, retention: float) -> Task | None:
        """The task if it exists and is not yet forgotten."""
        with self.lock:
            task = self.tasks.get(task_id)
            if task is None or self.is_forgotten(task, retention):
                return None
            return task

    def settle(self, now: float | None = None) -> list[Event]:
        """Apply every transition due by ``now``; hand them, in time order, to ``on_events``.

        Reaching 1 issues the result URL and spends a credit, exactly once per task.
        """
        with self.lock:
            now = self._clock() if now is None else now
            due: list[tuple[float, Task, int]] = []
            for task in self.tasks.values():
                if task.terminal:
                    continue
                trans = task.transitions()
                elapsed = now - task.created_mono
                while task.next_transition < len(trans) and trans[task.next_transition][0] <= elapsed:
                    offset, state = trans[task.next_transition]
                    due.append((offset + task.created_mono, task, state))
                    task.next_transition += 1
            due.sort(key=lambda item: item[0])
            events = []
            for _, task, state in due:
                task.state_notified = state
                if state == 1 or state < 0:
                    task.terminal = True
                if state == 1:
                    task.result_url = self._issue_url(task, task.created_wall + task.terminal_offset())
                    task.output_size = self._render_size(task)
                    self.credits_spent += 1
                    if self.credits_left is not None:
                        if self.credits_left > 0:
                            self.credits_left -= 1
                        else:
                            self.credits_overdrawn += 1
                events.append(Event(task, state, self.envelope(task, at_state=state)))
            if events:
                self._on_events(events)
            return events

    def next_due(self) -> float | None:
        """Monotonic time of the earliest pending transition, or None."""
        with self.lock:
            best: float | None = None
            for task in self.tasks.values():
                if task.terminal:
                    continue
                offset = task.transitions()[task.next_transition][0]
                t = task.created_mono + offset
                best = t if best is None else min(best, t)
            return best

    def envelope(self, task: Task, at_state: int | None = None) -> dict[str, Any]:
        """The query response for ``task`` now (or as it was when entering ``at_state``)."""
        with self.lock:
            if at_state is None:
                now = self._clock()
                self.settle(now)
                state, progress = task.state_at(now - task.created_mono)
            else:
                state, progress = at_state, (100 if at_state == 1 else 0)
            d = task.duration
            processing_started = WAITING_END * d
            processed = state in (1, 4) or (state < 0 and task.failure_state not in EARLY_FAILURES)
            data: dict[str, Any] = {
                "task_id": task.task_id,
                "state": state,
                "progress": progress,
                "created_at": int(task.created_wall),
                "processed_at": int(task.created_wall + processing_started) if processed else 0,
                "completed_at": int(task.created_wall + task.terminal_offset()) if (state == 1 or state < 0) else 0,
                "type": 0,
                "file_pages": 1 if state == 1 else 0,
                "ocr_pages": 1 if state == 1 else 0,
                "input_size": task.size,
                "output_size": task.output_size if state == 1 else 0,
                "next": {},
            }
            if state == 1:
                data["file"] = task.result_url
            message = "success" if state >= 0 else failure_message(state)
            return {"status": 200, "message": message, "data": data}

    def done_wall(self, task: Task) -> float | None:
        """Wall time the task became (or will become) terminal, if it already is."""
        if self.elapsed(task) >= task.terminal_offset():
            return task.created_wall + task.terminal_offset()
        return None

    def describe(self, retention: float) -> list[dict[str, Any]]:
        """Every task (forgotten ones too, flagged) for ``/_emulator/tasks``."""
        with self.lock:
            out = []
            for tid in self.order:
                t = self.tasks[tid]
                state, progress = t.state_at(self.elapsed(t))
                out.append({
                    "task_id": t.task_id, "sha256": t.sha256, "source_name": t.source_name, "size": t.size,
                    "format": t.fmt, "created_t": t.created_wall, "done_t": self.done_wall(t), "state": state,
                    "progress": progress, "duration": t.duration, "queries": t.queries, "downloads": t.downloads,
                    "first_download_t": t.first_download_t, "forgotten": self.is_forgotten(t, retention),
                    "result_url": t.result_url, "callback_url": t.callback_url,
                    "language": t.extra.get("language"), "password": t.extra.get("password"),
                })
            return out


def expires_at(done_wall: float, ttl: float, expired: bool) -> int:
    """The ``Expires`` value for a URL issued at ``done_wall``."""
    if expired:
        return math.floor(done_wall) - 1
    return math.ceil(done_wall + ttl)

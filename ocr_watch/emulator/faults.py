"""Switchable, deterministic faults and the per-file name triggers.

A fault rule fires on the next ``count`` matching requests (or tasks) and is then
used up, so a test knows exactly which request misbehaves. Kept apart from the
HTTP layer so the bookkeeping (matching, counting down) is testable on its own.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

#: Faults that replace or disturb a response on a route.
REQUEST_KINDS = frozenset({"http_500", "http_429", "slow", "drop", "malformed_json", "body_500", "trickle"})
#: Faults that apply to tasks rather than to one request.
TASK_KINDS = frozenset({"state", "expired_url"})
#: Faults that apply to result downloads only.
DOWNLOAD_KINDS = frozenset({"broken_download"})
ALL_KINDS = REQUEST_KINDS | TASK_KINDS | DOWNLOAD_KINDS

ROUTES = frozenset({"create", "query", "download", "any"})
#: States a ``state`` fault or ``__state_N__`` trigger may force.
FAILURE_STATES = frozenset({-1, -2, -3, -5, -7, -8})


@dataclass
class FaultRule:
    """One armed fault: ``kind`` on ``route`` for the next ``remaining`` matches."""

    kind: str
    route: str
    remaining: int
    params: dict[str, Any] = field(default_factory=dict)
    rule_id: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON view for the control routes."""
        return {"id": self.rule_id, "kind": self.kind, "route": self.route, "count": self.remaining, **self.params}


def validate_fault(kind: str, route: str, count: int, params: dict[str, Any]) -> dict[str, Any]:
    """Check a fault request; return normalised params or raise ``ValueError``."""
    if kind not in ALL_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(ALL_KINDS)}")
    if route not in ROUTES:
        raise ValueError(f"unknown route {route!r}; known: {sorted(ROUTES)}")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError("count must be an integer >= 1")
    out = dict(params)
    if kind == "slow":
        out["delay_s"] = float(out.get("delay_s", 1.0))
        if out["delay_s"] < 0:
            raise ValueError("delay_s must be >= 0")
    elif kind == "trickle":  # headers at once, then the body one byte every interval_s
        out["interval_s"] = float(out.get("interval_s", 20.0))
        if out["interval_s"] <= 0:
            raise ValueError("interval_s must be > 0")
    elif kind == "http_429":
        if out.get("retry_after") is not None:
            out["retry_after"] = float(out["retry_after"])
    elif kind == "state":
        # optional "format": only tasks asked for in that format fail (one output of several)
        if out.get("format") is not None and not isinstance(out["format"], str):
            raise ValueError("format must be a string")
        if "state" not in out:
            raise ValueError("the state fault needs a 'state' parameter")
        out["state"] = int(out["state"])
        if out["state"] not in FAILURE_STATES:
            raise ValueError(f"state must be one of {sorted(FAILURE_STATES)}")
    return out


class FaultBook:
    """The armed fault rules; thread-safe, first armed fires first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._next_id = 1

    def add(self, kind: str, *, route: str = "any", count: int = 1, **params: Any) -> FaultRule:
        """Arm a rule; raises ``ValueError`` for an invalid one."""
        clean = validate_fault(kind, route, count, params)
        with self._lock:
            rule = FaultRule(kind, route, count, clean, self._next_id)
            self._next_id += 1
            self._rules.append(rule)
            return rule

    def take(self, kinds: frozenset[str], route: str | None = None, *, fmt: str | None = None) -> FaultRule | None:
        """Consume one firing of the first rule of one of ``kinds`` matching ``route`` (and
        ``fmt``, for a rule that names a ``format``).

        ``route=None`` ignores the rule's route (task-level faults). Returns a
        snapshot of the rule as it fired, or None.
        """
        with self._lock:
            for rule in self._rules:
                if rule.kind not in kinds:
                    continue
                if route is not None and rule.route not in ("any", route):
                    continue
                if rule.params.get("format") not in (None, fmt):
                    continue
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._rules.remove(rule)
                return FaultRule(rule.kind, rule.route, rule.remaining, dict(rule.params), rule.rule_id)
        return None

    def clear(self) -> None:
        """Disarm everything."""
        with self._lock:
            self._rules.clear()

    def snapshot(self) -> list[dict[str, Any]]:
        """Armed rules as JSON-able dicts."""
        with self._lock:
            return [r.as_dict() for r in self._rules]


_STATE_RE = re.compile(r"__state_(-?\d+)__")
_SECONDS_RE = re.compile(r"__seconds_(\d+(?:\.\d+)?)__")


@dataclass(frozen=True)
class FileTriggers:
    """Behaviour requested through the uploaded file's name."""

    state: int | None = None
    expired: bool = False
    broken_download: bool = False
    seconds: float | None = None


def parse_triggers(source_name: str) -> FileTriggers:
    """Read ``__state_-7__``, ``__expired__``, ``__brokendl__``, ``__seconds_5__`` from a name.

    A ``__state_N__`` with a non-negative or unknown N is ignored (N < 0 other than the
    known codes is still honoured, as "other < 0" is a legal failure in the reference).
    """
    state: int | None = None
    m = _STATE_RE.search(source_name)
    if m and int(m.group(1)) < 0:
        state = int(m.group(1))
    s = _SECONDS_RE.search(source_name)
    return FileTriggers(
        state=state,
        expired="__expired__" in source_name,
        broken_download="__brokendl__" in source_name,
        seconds=float(s.group(1)) if s else None,
    )

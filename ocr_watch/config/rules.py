"""What ties several keys together: defaults that depend on another key and checks across
keys (the folders and state_dir: placement.py; retry backoff, callback fallback: here). Run on
the values `schema.read_section` gave, after every key was read, so their problems join the
others in the same ConfigError."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .placement import place_folders
from .schema import Reader

__all__ = ["apply_rules"]


def apply_rules(r: Reader, raw: Mapping[str, Any], values: dict[str, Any], path: Path) -> bool:
    """Fill in the derived defaults and record the problems across keys in ``values`` (from
    the file ``raw`` at ``path``); True if state_dir is the old shared default
    (`Config.state_dir_legacy`)."""
    values["jobs"], values["state_dir"], legacy = place_folders(r, path, values["jobs"], values["state_dir"])
    retry = values["retry"]
    initial, top = retry["backoff_initial_seconds"], retry["backoff_max_seconds"]
    if initial is not None and top is not None and top < initial:
        r.problem("retry.backoff_max_seconds",
                  f"must be >= retry.backoff_initial_seconds ({initial:g}), got {top:g}")
    # Only when callbacks are on: otherwise the fallback is unused, and its default must not
    # clash with a short poll.timeout_seconds.
    fallback, poll_timeout = values["callback"]["fallback_seconds"], values["poll"]["timeout_seconds"]
    if _given(raw, "callback", "url") and fallback is not None and poll_timeout is not None \
            and fallback >= poll_timeout:
        r.problem("callback.fallback_seconds",
                  f"must be < poll.timeout_seconds ({poll_timeout:g}), got {fallback:g}; a task "
                  "is quarantined at poll.timeout_seconds, so the fallback query must come first")
    return legacy


def _given(raw: Mapping[str, Any], *path: str) -> bool:
    """Whether the file sets the key (null counts as not set, like everywhere else)."""
    value: Any = raw
    for name in path:
        if not isinstance(value, dict):
            return False
        value = value.get(name)
    return value is not None

"""What ties several keys together: defaults that depend on another key (archive and
state_dir on the inbox) and checks across keys (folder relations, retry backoff, callback
fallback). Run on the values `schema.read_section` gave, after every key was read, so their
problems join the others in the same ConfigError."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .folders import default_state_dir
from .schema import Reader

__all__ = ["apply_rules"]


def apply_rules(r: Reader, raw: Mapping[str, Any], values: dict[str, Any]) -> bool:
    """Fill in the derived defaults and record the problems across keys in ``values`` (from
    the file ``raw``); True if state_dir is the old shared default (`Config.state_dir_legacy`)."""
    legacy = _folder_defaults(raw, values)
    _check_folder_relations(r, raw, values)
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


def _folder_defaults(raw: Mapping[str, Any], values: dict[str, Any]) -> bool:
    folders, legacy = values["folders"], False
    inbox = folders["inbox"]
    if inbox is not None:
        if not _given(raw, "folders", "archive"):
            folders["archive"] = inbox.parent / "archive"
        if not _given(raw, "state_dir"):
            values["state_dir"], legacy = default_state_dir(inbox)
    return legacy


def _check_folder_relations(r: Reader, raw: Mapping[str, Any], values: dict[str, Any]) -> None:
    named: dict[str, Path | None] = {f"folders.{k}": v for k, v in values["folders"].items()}
    named["state_dir"] = values["state_dir"]
    if not _given(raw, "folders", "archive") and values["on_success"] != "archive":
        del named["folders.archive"]  # the unused default needs no checking
    folders = {k: v for k, v in named.items() if v is not None}

    keys = list(folders)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if folders[a] == folders[b]:
                r.problem(b, f"is the same folder as {a} ({folders[a]}); each folder needs its own path")
    inbox = folders.get("folders.inbox")
    if inbox is None:
        return
    for key, path in folders.items():
        if key == "folders.inbox" or path == inbox:
            continue
        if path.is_relative_to(inbox):
            r.problem(key, f"is inside folders.inbox ({inbox}), which would feed "
                           f"{'results' if key == 'folders.outbox' else 'its files'} back in")
        elif key != "state_dir" and inbox.is_relative_to(path):
            r.problem("folders.inbox", f"is inside {key} ({path}), which would feed "
                                       "its files back in")

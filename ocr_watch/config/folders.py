"""The folders a configuration names, on disk: where state_dir defaults to, and what `run`
creates (`prepare_folders`) or `check-config` says it would (`plan_folders`). Kept apart
from reading: loading a configuration creates nothing."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from .schema import ConfigError

if TYPE_CHECKING:
    from .sections import Config

__all__ = ["OWNER_FILE", "default_state_dir", "plan_folders", "prepare_folders", "read_owner", "read_owners"]

SHARED_STATE_DIR = ".ocr-watch"      # beside the inbox; holds one state_dir per inbox
JOURNAL_FILE = "journal.sqlite3"
OWNER_FILE = "owner.json"            # in a state_dir: which inbox it serves
def default_state_dir(inbox: Path) -> tuple[Path, bool]:
    """``<inbox parent>/.ocr-watch/<inbox name>``: inboxes that share a parent get one each.

    Before, the default was ``<inbox parent>/.ocr-watch`` itself, shared by such inboxes. A
    journal there is kept (second value True), so no install loses it, unless that
    state_dir's owner record names another inbox: then it is that inbox's journal.
    """
    shared = inbox.parent / SHARED_STATE_DIR
    try:
        if (shared / JOURNAL_FILE).is_file() and read_owner(shared) in (None, inbox):
            return shared, True
    except (OSError, ValueError):
        pass  # unreadable: not provably ours, so leave it alone
    return shared / inbox.name, False


def read_owner(state_dir: Path) -> Path | None:
    """The inbox ``state_dir`` serves, from its owner record; None if it has none yet.

    Raises OSError or ValueError if the record cannot be read.
    """
    try:
        text = (state_dir / OWNER_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("inbox"), str):
        raise ValueError("no inbox in it")
    return Path(data["inbox"])


def read_owners(state_dir: Path) -> list[Path]:
    """Every inbox ``state_dir`` serves (a configuration with jobs records each job's); empty
    if it has no owner record yet. Raises OSError or ValueError as :func:`read_owner`."""
    first = read_owner(state_dir)
    if first is None:
        return []
    data = json.loads((state_dir / OWNER_FILE).read_text(encoding="utf-8"))
    more = data.get("inboxes")
    return [first, *(Path(p) for p in more if isinstance(p, str))] if isinstance(more, list) else [first]


def _folders(config: Config) -> dict[str, Path]:
    """Every folder the daemon writes to, by its key, every job's."""
    folders: dict[str, Path] = {}
    for job in config.jobs:
        folders[f"{job.prefix}folders.inbox"] = job.folders.inbox
        folders[f"{job.prefix}folders.outbox"] = job.folders.outbox
        folders[f"{job.prefix}folders.quarantine"] = job.folders.quarantine
        if job.on_success == "archive":
            folders[f"{job.prefix}folders.archive"] = job.folders.archive
    folders["state_dir"] = config.state_dir
    return folders


def plan_folders(config: Config) -> list[tuple[str, Path]]:
    """Read-only (for `check-config`): the folders `run` would create, by key; raises
    :class:`ConfigError` for what can be seen without writing (a file where a folder should
    be, a folder or parent the daemon's user cannot write)."""
    problems, missing = [], []
    for key, path in _folders(config).items():
        if path.exists():
            if not path.is_dir():
                problems.append(f"{key}: {path} exists but is a file, not a folder")
            elif not os.access(path, os.W_OK | os.X_OK):
                problems.append(f"{key}: {path} is not writable")
            continue
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            problems.append(f"{key}: {path} cannot be created: {parent} is a file, not a folder")
        elif not os.access(parent, os.W_OK | os.X_OK):
            problems.append(f"{key}: {path} cannot be created: {parent} is not writable")
        else:
            missing.append((key, path))
    if problems:
        raise ConfigError(problems)
    return missing


def prepare_folders(config: Config) -> None:
    """Create every folder the daemon writes to and prove each is a writable directory."""
    problems = []
    for key, path in _folders(config).items():
        # state_dir holds the journal and its pre-signed result links: the daemon's user only.
        problem = _prepare_one(path, 0o700 if key == "state_dir" else 0o777)
        if problem:
            problems.append(f"{key}: {problem}")
    if problems:
        raise ConfigError(problems)


def _prepare_one(path: Path, mode: int = 0o777) -> str | None:
    if path.exists() and not path.is_dir():
        return f"{path} exists but is a file, not a folder"
    try:
        path.mkdir(mode, parents=True, exist_ok=True)
    except OSError as exc:
        return f"{path} cannot be created: {exc.strerror or exc}"
    # Hidden name: the watcher ignores dot files, so a probe in the inbox is never picked up.
    probe = path / f".ocr-watch-probe-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"{path} is not writable: {exc.strerror or exc}"
    return None

"""Read the YAML file into a :class:`Config`, or raise one ConfigError with every problem."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .rules import apply_rules
from .schema import ConfigError, Reader, build, read_section, type_name
from .sections import Config

__all__ = ["load_config"]


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read ``path``; raise :class:`ConfigError` listing every problem found."""
    env = os.environ if env is None else env
    path = Path(path).expanduser().resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([f"{path}: cannot read the configuration file: {reason}"]) from exc
    loader = _Loader(text)
    try:
        raw = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(path, exc)]) from exc
    finally:
        loader.dispose()
    if raw is None:
        raise ConfigError([f"{path}: the file is empty; folders.inbox, folders.outbox and "
                           "folders.quarantine are required"])
    if not isinstance(raw, dict):
        raise ConfigError([f"(top level): must be a mapping of keys, got {type_name(raw)}"])

    r = Reader(path.parent, env)
    r.problems.extend(f"{path}: {d}" for d in loader.duplicates)
    values = read_section(r, Config, raw)
    legacy = apply_rules(r, raw, values)
    if r.problems:
        raise ConfigError(r.problems)
    return build(Config, values, path=path, state_dir_legacy=legacy)


class _Loader(yaml.SafeLoader):
    """SafeLoader that notes repeated keys, which plain YAML loading silently lets the last win."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is None:
                continue
            line = key_node.start_mark.line + 1
            if key in first_line:
                self.duplicates.append(f"line {line}: key {key!r} is given twice (first on line "
                                       f"{first_line[key]}); keep one")
            else:
                first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    # Only the position and the parser's complaint: the marked snippet could show the API key.
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "cannot parse"
    if mark is not None:
        return f"{path}: YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return f"{path}: YAML syntax error: {problem}"

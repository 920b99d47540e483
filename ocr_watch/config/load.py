"""Read the YAML file into a :class:`Config`, or raise one ConfigError with every problem."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from .rules import apply_rules
from .schema import ConfigError, Reader, build, read_section, type_name
from .sections import Config

__all__ = ["load_config"]

MERGE_TAG = "tag:yaml.org,2002:merge"


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read ``path``; raise :class:`ConfigError` listing every problem found."""
    env = os.environ if env is None else env
    path = Path(path).expanduser().resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([f"{path}: cannot read the configuration file: {reason}"]) from exc
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        duplicates = _duplicates(node)
        raw = loader.construct_document(node) if node is not None else None
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
    r.problems.extend(duplicates)
    values = read_section(r, Config, raw)
    legacy = apply_rules(r, raw, values, path)
    if r.problems:
        raise ConfigError(r.problems)
    return build(Config, values, path=path, state_dir_legacy=legacy)


def _duplicates(node: yaml.Node | None) -> list[str]:
    """A problem for each key given twice in one mapping (plain YAML loading silently lets the
    last win), named by its dotted key: two jobs of one name are ``jobs.contracts``."""
    found: list[str] = []
    seen: set[int] = set()

    def walk(node: yaml.Node, dotted: str) -> None:
        if id(node) in seen:  # an alias: walked where its anchor is
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{dotted}[{i}]")
        elif isinstance(node, yaml.MappingNode):
            first_line: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == MERGE_TAG:
                    continue  # a merge (<<: *common) may be overridden: that is what it is for
                key, line = key_node.value, key_node.start_mark.line + 1
                here = f"{dotted}.{key}" if dotted else key
                if key in first_line:
                    found.append(f"{here}: is given twice (on line {first_line[key]} and line "
                                 f"{line}); keep one")
                else:
                    first_line[key] = line
                walk(value_node, here)

    if node is not None:
        walk(node, "")
    return found


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    # Only the position and the parser's complaint: the marked snippet could show the API key.
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "cannot parse"
    if mark is not None:
        return f"{path}: YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return f"{path}: YAML syntax error: {problem}"

"""`check-config`'s output: the effective configuration as YAML, derived from the section
definitions, so every key is shown with its default filled in and secrets masked."""

from __future__ import annotations

import enum
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import yaml

from .schema import Setting, section_type, setting_of

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from .sections import Config

__all__ = ["describe"]


def describe(config: Config) -> str:
    """The effective configuration as YAML, defaults filled in and secrets masked."""
    parts = [f"# effective configuration from {config.path}\n"]
    for f in fields(config):
        spec, sub = setting_of(f), section_type(type(config), f)
        if spec is not None:
            parts.append(_entry((f.name,), spec, getattr(config, f.name)))
        elif sub is not None:
            parts.append(f"{f.name}:\n")
            parts += _section(f.name, getattr(config, f.name))
    return "".join(parts)


def _section(name: str, section: DataclassInstance) -> list[str]:
    return [_entry((name, f.name), spec, getattr(section, f.name))
            for f in fields(section) if (spec := setting_of(f)) is not None]


def _entry(path: tuple[str, ...], spec: Setting, value: Any) -> str:
    """One key as YAML, indented as in the whole file; dumped nested in its section, so the
    layout is the one a dump of the whole file would give, and the section's line dropped."""
    data: Any = spec.show(value)
    if isinstance(data, enum.Enum):  # a choice (`ocr_watch.choices`) is shown as its word
        data = data.value
    for name in reversed(path):
        data = {name: data}
    lines = yaml.safe_dump(data, sort_keys=False, default_flow_style=False).splitlines(keepends=True)
    lines = lines[len(path) - 1:]
    note = spec.note(value)
    if note and len(lines) == 1:  # a comment cannot follow the first line of a wrapped value
        lines = [f"{lines[0].rstrip()}  # {note}\n"]
    return "".join(lines)

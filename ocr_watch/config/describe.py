"""`check-config`'s output: the effective configuration as YAML, derived from the section
definitions, so every key is shown with its default filled in and secrets masked.

The simple setup is shown as it is written, its job's keys at the top level; with ``jobs:``
each job is shown under its name, rules and hooks included (passwords and a job's own key
masked like the shared key)."""

from __future__ import annotations

import enum
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import yaml

from .job import JOB_KEYS
from .schema import Setting, section_type, setting_of, yaml_key

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from .job import Job
    from .sections import Config

__all__ = ["describe"]


def describe(config: Config) -> str:
    """The effective configuration as YAML, defaults filled in and secrets masked."""
    parts = [f"# effective configuration from {config.path}\n"]
    for f in fields(config):
        if f.name == "jobs":
            parts += _jobs(config.jobs, config.simple)
            continue
        spec, sub = setting_of(f), section_type(type(config), f)
        if spec is not None:
            parts.append(_entry((f.name,), spec, getattr(config, f.name)))
        elif sub is not None:
            parts.append(_header((f.name,)))
            parts += _section((f.name,), getattr(config, f.name))
    return "".join(parts)


def _jobs(jobs: tuple[Job, ...], simple: bool) -> list[str]:
    if simple:  # rules, hooks and a job's own key are keys of jobs: only, so none are set
        return _section((), jobs[0], only=JOB_KEYS)
    parts = [_header(("jobs",))]
    for job in jobs:
        parts.append(_header(("jobs", job.name)))
        parts += _section(("jobs", job.name), job)
    return parts


def _section(path: tuple[str, ...], section: DataclassInstance,
             only: tuple[str, ...] | None = None) -> list[str]:
    """Every key of ``section`` (or those ``only`` names), a nested section under its own
    line, at ``path``."""
    parts = []
    for f in fields(section):
        if only is not None and f.name not in only:
            continue
        spec, sub = setting_of(f), section_type(type(section), f)
        if spec is not None:
            parts.append(_entry((*path, yaml_key(f)), spec, getattr(section, f.name)))
        elif sub is not None:
            parts.append(_header((*path, f.name)))
            parts += _section((*path, f.name), getattr(section, f.name))
    return parts


def _nested(path: tuple[str, ...], data: Any) -> Any:
    for name in reversed(path):
        data = {name: data}
    return data


def _dump(data: Any) -> list[str]:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False).splitlines(keepends=True)


def _header(path: tuple[str, ...]) -> str:
    """The line that opens a section at ``path`` (a name YAML would misread is quoted)."""
    line = _dump(_nested(path, {}))[-1]
    return line.rstrip("\n").removesuffix(" {}") + "\n"


def _entry(path: tuple[str, ...], spec: Setting, value: Any) -> str:
    """One key as YAML, indented as in the whole file; dumped nested in its sections, so the
    layout is the one a dump of the whole file would give, and the sections' lines dropped."""
    data: Any = spec.show(value)
    if isinstance(data, enum.Enum):  # a choice (`ocr_watch.choices`) is shown as its word
        data = data.value
    lines = _dump(_nested(path, data))[len(path) - 1:]
    note = spec.note(value)
    if note and len(lines) == 1:  # a comment cannot follow the first line of a wrapped value
        lines = [f"{lines[0].rstrip()}  # {note}\n"]
    return "".join(lines)

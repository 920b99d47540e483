"""What differs between two configurations, by dotted key, and a configuration with some of
those values taken from another: what a reload (SIGHUP) needs to apply the keys it can and
keep the others as they run.

Walks the same definitions as the reader (schema.py), so a key added to sections.py or job.py
is compared without a word here. A job's keys are named as in messages (``folders.inbox`` in
the simple setup, ``jobs.<name>.folders.inbox`` with ``jobs:``); jobs added, removed or
renamed are one change, ``jobs``. Secrets compare by value and never show.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .job import Job
from .schema import section_type, setting_of

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["Change", "changed", "changed_keys", "take"]

_D = TypeVar("_D", bound="DataclassInstance")
Path = tuple[str | int, ...]  # attribute names, and a job's index in Config.jobs


@dataclass(frozen=True)
class Change:
    """One key whose value differs."""

    key: str    # as messages name it: ``jobs.scans.ocr.format``
    local: str  # within its job (or the top level): ``ocr.format``, what a reload classifies
    path: Path  # where the value is in a Config (``("jobs", 0, "ocr", "formats")``)


def changed(old: DataclassInstance, new: DataclassInstance) -> list[Change]:
    """Every key whose value differs, in the order the keys are declared."""
    return _changed(old, new, "", "", ())


def changed_keys(old: DataclassInstance, new: DataclassInstance) -> list[str]:
    return [change.key for change in changed(old, new)]


def take(base: _D, source: _D, changes: Iterable[Change]) -> _D:
    """`base` with the value at each change's path taken from `source`."""
    result = base
    for change in changes:
        result = _put(result, change.path, _get(source, change.path))
    return result


def _changed(old: Any, new: Any, prefix: str, local: str, path: Path) -> list[Change]:
    found: list[Change] = []
    cls = type(old)
    for f in dataclasses.fields(cls):
        spec = setting_of(f)
        name = spec.key if spec is not None and spec.key else f.name
        a, b = getattr(old, f.name), getattr(new, f.name)
        here = (*path, f.name)
        if section_type(cls, f) is not None:
            found += _changed(a, b, f"{prefix}{name}.", f"{local}{name}.", here)
        elif spec is None or a == b:
            continue
        elif _jobs(a) and _jobs(b) and [j.name for j in a] == [j.name for j in b]:
            for index, (job_a, job_b) in enumerate(zip(a, b, strict=True)):
                found += _changed(job_a, job_b, job_a.prefix, "", (*here, index))
        else:
            found.append(Change(prefix + name, local + name, here))
    return found


def _jobs(value: object) -> bool:
    return isinstance(value, tuple) and all(isinstance(item, Job) for item in value)


def _get(obj: Any, path: Path) -> Any:
    for step in path:
        obj = obj[step] if isinstance(step, int) else getattr(obj, step)
    return obj


def _put(obj: Any, path: Path, value: Any) -> Any:
    head, *rest = path
    if isinstance(head, int):
        return (*obj[:head], _put(obj[head], tuple(rest), value) if rest else value, *obj[head + 1:])
    return dataclasses.replace(obj, **{head: _put(getattr(obj, head), tuple(rest), value) if rest else value})

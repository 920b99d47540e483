"""What differs between two configurations, by dotted key, and a configuration with some keys
put back: what a reload (SIGHUP) needs to apply the keys it can and keep the others.

Walks the same definitions as the reader (schema.py), so a key added to sections.py is
compared without a word here. Secrets compare by value and never show.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from .schema import section_type, setting_of

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["changed_keys", "keep_keys"]

_D = TypeVar("_D", bound="DataclassInstance")


def changed_keys(old: DataclassInstance, new: DataclassInstance, prefix: str = "") -> list[str]:
    """The dotted keys of the file whose values differ, in the order they are declared."""
    changed: list[str] = []
    cls = type(old)
    for f in dataclasses.fields(cls):
        dotted = f"{prefix}.{f.name}" if prefix else f.name
        a, b = getattr(old, f.name), getattr(new, f.name)
        if section_type(cls, f) is not None:
            changed += changed_keys(a, b, dotted)
        elif setting_of(f) is not None and a != b:
            changed.append(dotted)
    return changed


def keep_keys(new: _D, old: _D, keys: Iterable[str]) -> _D:
    """`new` with the value of each dotted key in `keys` taken from `old`."""
    result = new
    for key in keys:
        result = _put(result, key.split("."), _get(old, key.split(".")))
    return result


def _get(obj: Any, path: list[str]) -> Any:
    for name in path:
        obj = getattr(obj, name)
    return obj


def _put(obj: _D, path: list[str], value: Any) -> _D:
    head, *rest = path
    if rest:
        value = _put(getattr(obj, head), rest, value)
    return dataclasses.replace(obj, **{head: value})

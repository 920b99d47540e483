"""The machinery that lets each configuration key be declared once.

A section is a frozen dataclass; each field that comes from the YAML carries a
:class:`Setting` in its metadata (its default and its check). The key lists behind "unknown
key; did you mean", the reader and `describe` all walk these definitions, so adding a key
means adding a field (and using it), nothing else here.

A field whose type is itself such a dataclass is a nested section (``pool:``); a field with
neither is not read from the file (``Config.path``).
"""

from __future__ import annotations

import difflib
import enum
import functools
import hmac
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_type_hints

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["REQUIRED", "ConfigError", "Reader", "Secret", "Setting", "build", "known_keys",
           "read_section", "secrets_in", "section_data", "section_type", "setting", "setting_of",
           "show_value", "type_name", "yaml_key"]

_D = TypeVar("_D", bound="DataclassInstance")
SPEC = "ocr_watch.config.setting"  # the metadata key a field's Setting is stored under


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` holds one line per problem, key first."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n  " + "\n  ".join(self.problems))


class Secret:
    """A string that does not show itself: repr and str give ``***``; ``reveal()`` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # a Setting default: the key must be given

# A check gets the dotted key and the YAML value; it returns the value converted, or records
# a problem on the reader and returns None.
Check = Callable[["Reader", str, Any], Any]
# A reader of a value that is not one key's (api.key: api.key, api.key_file or the environment).
Read = Callable[["Reader", Mapping[str, Any], str], Any]


def show_value(value: object) -> object:
    """How `describe` writes a value by default: paths as text, secrets masked."""
    return str(value) if isinstance(value, (Path, Secret)) else value


def _no_note(value: object) -> str | None:
    return None


@dataclass(frozen=True)
class Setting:
    """One key: its default (REQUIRED; None: absent stays None, unchecked; else the YAML value
    used when absent or null, checked like a given one) and its check."""

    default: object
    check: Check | None = None
    read: Read | None = None        # instead of default and check, for a value of several keys
    extra_keys: tuple[str, ...] = ()  # further YAML keys ``read`` consumes
    show: Callable[[Any], object] = show_value  # the value as `describe` writes it
    note: Callable[[Any], str | None] = _no_note  # a comment `describe` adds after it
    key: str | None = None          # the YAML key, when not the field's name (ocr.format: formats)

    def value(self, r: Reader, section: Mapping[str, Any], dotted: str) -> Any:
        if self.read is not None:
            return self.read(r, section, dotted)
        value = section.get(dotted.rsplit(".", 1)[-1])
        if value is None:
            if self.default is REQUIRED:
                r.problem(dotted, "is required")
                return None
            if self.default is None:
                return None
            value = self.default
        assert self.check is not None
        return self.check(r, dotted, value)


def setting(default: object, check: Check | None = None, *, read: Read | None = None,
            extra_keys: tuple[str, ...] = (), show: Callable[[Any], object] = show_value,
            note: Callable[[Any], str | None] = _no_note, key: str | None = None) -> dict[str, Setting]:
    """The metadata of a field read from the file: ``field(metadata=setting(32, integer(1)))``."""
    return {SPEC: Setting(default, check, read, extra_keys, show, note, key)}


def setting_of(f: Field[Any]) -> Setting | None:
    spec = f.metadata.get(SPEC)
    return spec if isinstance(spec, Setting) else None


def yaml_key(f: Field[Any]) -> str:
    """The key a field is written under in the file: its name, unless its Setting says."""
    spec = setting_of(f)
    return spec.key if spec is not None and spec.key else f.name


@functools.cache
def _hints(cls: type[DataclassInstance]) -> dict[str, Any]:
    return get_type_hints(cls)


def section_type(cls: type[DataclassInstance], f: Field[Any]) -> type[DataclassInstance] | None:
    """The section class of a field that is a nested section, else None."""
    if setting_of(f) is not None:
        return None
    hint = _hints(cls).get(f.name)
    return hint if isinstance(hint, type) and is_dataclass(hint) else None


@functools.cache
def known_keys(cls: type[DataclassInstance]) -> tuple[str, ...]:
    """Every YAML key allowed in a section, in the order it is declared."""
    keys: list[str] = []
    for f in fields(cls):
        spec = setting_of(f)
        if spec is not None:
            keys += [yaml_key(f), *spec.extra_keys]
        elif section_type(cls, f) is not None:
            keys.append(f.name)
    return tuple(keys)


def type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


class Reader:
    """Walks the parsed YAML, collecting problems instead of stopping at the first."""

    def __init__(self, base_dir: Path, env: Mapping[str, str]) -> None:
        self.base_dir = base_dir  # relative paths are relative to the config file
        self.env = env
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    def unknown_keys(self, mapping: Mapping[Any, Any], prefix: str, known: tuple[str, ...],
                     hints: Mapping[str, str] | None = None) -> None:
        """A problem per key not in ``known``: "did you mean", ``hints``' word for a key that
        belongs elsewhere, or the known keys."""
        for key in mapping:
            dotted = f"{prefix}.{key}" if prefix else str(key)
            if not isinstance(key, str):
                self.problem(dotted, "keys must be strings")
            elif key not in known:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                hint = (f"; did you mean '{close[0]}'?" if close
                        else f"; {hints[key]}" if hints and key in hints
                        else f"; known keys: {', '.join(known)}")
                self.problem(dotted, "unknown key" + hint)


def read_section(r: Reader, cls: type[DataclassInstance], raw: object, prefix: str = "") -> dict[str, Any]:
    """The values of ``cls``'s fields from ``raw`` (nested sections as dicts); a value that
    is missing or wrong is None and its problem is on ``r``."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        r.problem(prefix, f"must be a mapping of keys, got {type_name(raw)}")
        raw = {}
    r.unknown_keys(raw, prefix, known_keys(cls), getattr(cls, "KEY_HINTS", None))
    values: dict[str, Any] = {}
    for f in fields(cls):
        dotted = f"{prefix}.{yaml_key(f)}" if prefix else yaml_key(f)
        spec, sub = setting_of(f), section_type(cls, f)
        if spec is not None:
            values[f.name] = spec.value(r, raw, dotted)
        elif sub is not None:
            values[f.name] = read_section(r, sub, raw.get(f.name), dotted)
    return values


def build(cls: type[_D], values: Mapping[str, Any], **extra: Any) -> _D:
    """``cls`` from values :func:`read_section` gave (every one checked), plus ``extra``."""
    kwargs = dict(extra)
    for f in fields(cls):
        sub = section_type(cls, f)
        if f.name in values:
            kwargs[f.name] = build(sub, values[f.name]) if sub is not None else values[f.name]
    return cls(**kwargs)


def section_data(section: DataclassInstance, *, omit_none: bool = False) -> dict[str, Any]:
    """A section as the YAML data `describe` writes (each value through its Setting's show,
    enums as their word); ``omit_none``: leave out keys without a value (a rule's overrides)."""
    data: dict[str, Any] = {}
    for f in fields(section):
        spec, sub = setting_of(f), section_type(type(section), f)
        value = getattr(section, f.name)
        if spec is not None:
            shown = spec.show(value)
            shown = shown.value if isinstance(shown, enum.Enum) else shown
        elif sub is not None:
            shown = section_data(value, omit_none=omit_none) or None
        else:
            continue
        if shown is not None or not omit_none:
            data[yaml_key(f)] = shown
    return data


def secrets_in(value: object) -> list[Secret]:
    """Every Secret in a configuration value: in its sections, tuples and their dataclasses."""
    if isinstance(value, Secret):
        return [value]
    if isinstance(value, (tuple, list)):
        return [s for item in value for s in secrets_in(item)]
    if is_dataclass(value) and not isinstance(value, type):
        return [s for f in fields(value) for s in secrets_in(getattr(value, f.name))]
    return []

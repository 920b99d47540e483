"""Tests for the config's single declaration: what is derived from it stays in step."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from ocr_watch.config import Config, Job, Rule, load_config
from ocr_watch.config.job import JOB_KEYS
from ocr_watch.config.schema import REQUIRED, Reader, known_keys, section_type, setting_of

pytestmark = pytest.mark.timeout(10)

ROOT = Path(__file__).resolve().parents[1]


def sections(cls: type) -> list[type]:
    """``cls`` and every section below it, a job's rules included."""
    found = [cls]
    for f in fields(cls):
        sub = section_type(cls, f)
        if sub is not None:
            found += sections(sub)
    return found + (sections(Rule) if cls is Job else [])


def declared() -> dict[str, tuple[str, ...]]:
    """Every key the code reads, by section ('' for the top level; 'jobs': every key that may
    appear below it, at any depth)."""
    keys = {"": known_keys(Config)}
    for f in fields(Config):
        sub = section_type(Config, f)
        if sub is not None:
            keys[f.name] = known_keys(sub)
    for f in fields(Job):  # the simple setup's job, at the top level
        sub = section_type(Job, f)
        if sub is not None and f.name in JOB_KEYS:
            keys[f.name] = known_keys(sub)
    keys["jobs"] = tuple({key for cls in sections(Job) for key in known_keys(cls)})
    return keys


def test_every_key_is_in_the_example_config() -> None:
    """config.example.yaml names every key (set or commented out) in its section."""
    found: dict[str, set[str]] = {"": set()}
    section = ""
    for line in (ROOT / "config.example.yaml").read_text().splitlines():
        # A key, set or commented out, also as a list's item or commented out in a comment.
        match = re.match(r"(\s*)#? ?\s*(?:# )?(?:- )?([a-z_]+):", line)
        if not match:
            continue
        indent, key = match.groups()
        if not indent and not line.startswith("#  "):
            section = key
            found[""].add(key)
            found.setdefault(key, set())
        else:
            found[section].add(key)
    for name, keys in declared().items():
        missing = set(keys) - found.get(name, set())
        assert not missing, f"{name or '(top level)'}: not in config.example.yaml: {sorted(missing)}"


def test_the_key_lists_hold_the_known_sections() -> None:
    """The derived key lists are the file's: sections, scalars and api.key_file, in order."""
    keys = declared()
    assert keys[""] == ("jobs", "folders", "on_success", "ocr", "state_dir", "api", "pool", "poll",
                        "callback", "watch", "retry", "metrics", "account", "log_level")
    assert keys["ocr"] == ("format", "language", "password", "password_file")
    assert known_keys(Job) == ("folders", "on_success", "ocr", "rules", "hooks", "api")
    assert known_keys(Rule) == ("match", "ocr")
    assert keys["metrics"] == ("listen",) and keys["account"] == ("low_credits_warning",)
    assert keys["api"] == ("base_url", "key", "key_file", "requests_per_second",
                           "rate_margin", "answer_timeout_seconds", "download_min_bytes_per_second")


def test_every_default_passes_its_own_check(tmp_path: Path) -> None:
    """A default that its check refused would make every file without that key invalid."""
    r = Reader(tmp_path, {})
    checked = 0
    for cls in [*sections(Config), *sections(Job)]:
        for f in fields(cls):
            spec = setting_of(f)
            if spec is None or spec.check is None or spec.default in (None, REQUIRED):
                continue
            assert spec.check(r, f.name, spec.default) is not None, r.problems
            checked += 1
    assert r.problems == [] and checked >= 20


def test_loading_creates_nothing(tmp_path: Path) -> None:
    """Reading the file only reads: the folders appear with prepare_folders (`run`), not before."""
    (tmp_path / "c.yaml").write_text("folders: {inbox: in, outbox: out, quarantine: q}\n"
                                     "api: {key: k-123}\n")
    config = load_config(tmp_path / "c.yaml", env={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]
    assert config.folders.archive == (tmp_path / "archive").resolve()

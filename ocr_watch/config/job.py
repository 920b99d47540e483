"""A job: one watched folder with its own destination, options, rules and hooks (issue 18).

Two ways to write them, never both in one file:

* the simple setup: ``folders``, ``on_success`` and ``ocr`` at the top level are one job,
  named ``default`` (``SIMPLE_JOB``), its keys named as before (``folders.inbox``);
* ``jobs:``, a mapping of names (``[a-z0-9_-]+``, used in logs, status and metrics) to jobs,
  each with its own ``folders``, ``on_success``, ``ocr``, and optionally ``rules``, ``hooks``
  and ``api`` (another account's key); keys named ``jobs.<name>.folders.inbox``.

With ``jobs:``, a top-level ``folders``, ``ocr`` or ``on_success`` is an error naming the key,
not a default the jobs inherit: one place per setting, so no job's options depend on
where a key happens to be written. YAML anchors (``&common`` / ``<<: *common``) share
settings between jobs instead.

A job's sections are declared here like every other (schema.py), so the reader, the
"did you mean" lists and `describe` cover them. The derived defaults and the checks across
jobs (archive, state_dir, folders inside folders) are placement.py's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocr_watch.choices import OnSuccess

from . import checks as c
from .globs import Glob
from .schema import REQUIRED, Reader, Secret, build, read_section, section_data, setting, type_name

__all__ = ["JOB_KEYS", "SIMPLE_JOB", "FoldersSection", "HooksSection", "Job", "JobApiSection",
           "OcrSection", "Rule", "RuleOcr", "read_jobs"]

DEFAULT_LANGUAGE = "ChinesePRC,English,Digits"
SIMPLE_JOB = "default"                            # the name of the simple setup's one job
JOB_KEYS = ("folders", "on_success", "ocr")       # the simple setup's job, at the top level
JOB_NAME = re.compile(r"[a-z0-9_-]{1,64}")
ON_SUCCESS = tuple(OnSuccess)


def _show_formats(formats: tuple[str, ...] | None) -> str | list[str] | None:
    """One format as the word (as the file says it), several as a list."""
    if formats is None:
        return None
    return formats[0] if len(formats) == 1 else list(formats)


@dataclass(frozen=True)
class FoldersSection:
    """Where files come in, go out, go when they fail, and go after success."""

    inbox: Path = field(metadata=setting(REQUIRED, c.folder))
    outbox: Path = field(metadata=setting(REQUIRED, c.folder))
    quarantine: Path = field(metadata=setting(REQUIRED, c.folder))
    archive: Path = field(metadata=setting(None, c.folder))  # default: placement.py


@dataclass(frozen=True)
class OcrSection:
    """What to ask the OCR service for."""

    # ``format:`` in the file: one format or a list (several outputs: one task, one credit each).
    formats: tuple[str, ...] = field(metadata=setting("txt", c.formats, key="format", show=_show_formats))
    language: str = field(metadata=setting(DEFAULT_LANGUAGE, c.language))
    # ocr.password or ocr.password_file (read at load time: checks.read_password says why).
    password: Secret | None = field(metadata=setting(None, read=c.read_password,
                                                     extra_keys=("password_file",)))

    @property
    def format(self) -> str:
        """The one format, for code about a single-format job (tests, describe); the daemon
        reads `formats`. Asking a job with several is a bug of the caller."""
        if len(self.formats) > 1:
            raise ValueError(f"ocr.format: {', '.join(self.formats)}; use formats")
        return self.formats[0]


@dataclass(frozen=True)
class RuleOcr:
    """A rule's overrides of its job's ``ocr``: a key left out (None) keeps the job's value."""

    formats: tuple[str, ...] | None = field(metadata=setting(None, c.formats, key="format",
                                                             show=_show_formats))
    language: str | None = field(metadata=setting(None, c.language))
    password: Secret | None = field(metadata=setting(None, read=c.read_password,
                                                     extra_keys=("password_file",)))


@dataclass(frozen=True)
class Rule:
    """Files whose path below the job's inbox matches get the rule's OCR options."""

    match: Glob = field(metadata=setting(REQUIRED, c.glob, show=str))
    ocr: RuleOcr


def _read_rules(r: Reader, section: Mapping[str, Any], dotted: str) -> tuple[Rule, ...]:
    """``rules:``, a list; each rule named by its index from 0 (``jobs.x.rules[1].match``)."""
    raw = section.get("rules")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        r.problem(dotted, f"must be a list of rules ('- match: ...'), got {type_name(raw)}")
        return ()
    return tuple(build(Rule, read_section(r, Rule, item, f"{dotted}[{i}]")) for i, item in enumerate(raw))


def _show_rules(rules: tuple[Rule, ...]) -> list[dict[str, Any]]:
    return [section_data(rule, omit_none=True) for rule in rules]


def _show_argv(argv: tuple[str, ...] | None) -> list[str] | None:
    return None if argv is None else list(argv)


@dataclass(frozen=True)
class HooksSection:
    """Commands to run after a file is done or quarantined: argv lists, no shell."""

    on_done: tuple[str, ...] | None = field(metadata=setting(None, c.argv, show=_show_argv))
    on_quarantine: tuple[str, ...] | None = field(metadata=setting(None, c.argv, show=_show_argv))
    timeout_seconds: float = field(metadata=setting(60, c.number(0, inclusive=False)))


@dataclass(frozen=True)
class JobApiSection:
    """A job's own account: its key (api.key or api.key_file; None: the shared api.key)."""

    key: Secret | None = field(metadata=setting(None, read=c.read_job_key, extra_keys=("key_file",)))


@dataclass(frozen=True)
class Job:
    """One watched folder and what becomes of its files.

    ``name`` and ``prefix`` are not keys of the file: the job's name, and how its keys are
    named in messages (``""`` for the simple setup, else ``jobs.<name>.``).
    """

    name: str
    prefix: str
    folders: FoldersSection
    on_success: OnSuccess = field(metadata=setting(OnSuccess.ARCHIVE, c.choice(ON_SUCCESS, OnSuccess)))
    ocr: OcrSection
    rules: tuple[Rule, ...] = field(metadata=setting((), read=_read_rules, show=_show_rules))
    hooks: HooksSection
    api: JobApiSection

    @property
    def api_key(self) -> Secret | None:
        """The job's own API key, or None: it uses the shared ``api.key``."""
        return self.api.key


def read_jobs(r: Reader, section: Mapping[str, Any], dotted: str) -> tuple[Job, ...]:
    """The jobs: those under ``jobs:``, or the simple setup's one from the top-level keys."""
    raw = section.get("jobs")
    if raw is None:
        simple = {key: section[key] for key in JOB_KEYS if key in section}
        return (build(Job, read_section(r, Job, simple), name=SIMPLE_JOB, prefix=""),)
    for key in JOB_KEYS:
        if section.get(key) is not None:
            r.problem(key, f"cannot be combined with jobs: each job has its own; move it into "
                           f"the jobs (jobs.<name>.{key}), or drop jobs for the simple setup")
    if not isinstance(raw, dict) or not raw:
        r.problem(dotted, "must be a mapping of job names to jobs (at least one), got "
                          + ("an empty mapping" if raw == {} else type_name(raw)))
        return ()
    jobs = []
    for name, raw_job in raw.items():
        prefix = f"{dotted}.{name}"
        if not isinstance(name, str):
            r.problem(prefix, f"a job's name must be a string, got {type_name(name)}; quote "
                              "names YAML reads as something else ('no', 'on', '1')")
            continue
        if not JOB_NAME.fullmatch(name):
            hint = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")[:64]
            r.problem(prefix, "a job's name is 1 to 64 of a-z, 0-9, '_' and '-' (it is used in "
                              "logs, status and metrics)"
                              + (f"; did you mean '{hint}'?" if hint else ""))
        jobs.append(build(Job, read_section(r, Job, raw_job, prefix), name=name, prefix=prefix + "."))
    return tuple(jobs)

"""Read the YAML configuration into frozen dataclasses, or say everything that is wrong with it.

Why this package exists: a hot folder is set up once, by someone who then walks away. A bad
value must stop the daemon at start with a message naming the dotted key
(``pool.max_in_flight: must be an integer >= 1, got 'eight'``), and all such messages at once,
so one edit fixes the file. The API key is wrapped in :class:`Secret` as soon as it is read and
never appears in an error, a repr or :func:`describe`.

Each key is declared once, in sections.py and job.py (its default and its check); the reader
(load.py), the unknown-key suggestions and `describe` are derived from those definitions
(schema.py). checks.py checks single values (globs.py the rules' patterns), rules.py and
placement.py what ties keys together, folders.py is about the folders on disk, options.py
gives one file its job's or rule's OCR options. Leaf package: imports nothing else of ours
but the choices.
"""

from .checks import KNOWN_LANGUAGES, Listen, listen_text
from .describe import describe
from .diff import Change, changed, changed_keys, take
from .folders import OWNER_FILE, default_state_dir, plan_folders, prepare_folders, read_owner, read_owners
from .globs import Glob
from .job import SIMPLE_JOB, FoldersSection, HooksSection, Job, JobApiSection, OcrSection, Rule, RuleOcr
from .load import load_config
from .options import FileOptions, resolve_options
from .schema import ConfigError, Secret, secrets_in
from .sections import (
    ApiSection,
    CallbackSection,
    Config,
    PollSection,
    PoolSection,
    RetrySection,
    WatchSection,
)

__all__ = [
    "KNOWN_LANGUAGES",
    "OWNER_FILE",
    "SIMPLE_JOB",
    "ApiSection",
    "CallbackSection",
    "Change",
    "Config",
    "ConfigError",
    "FileOptions",
    "FoldersSection",
    "Glob",
    "HooksSection",
    "Job",
    "JobApiSection",
    "Listen",
    "OcrSection",
    "PollSection",
    "PoolSection",
    "RetrySection",
    "Rule",
    "RuleOcr",
    "Secret",
    "WatchSection",
    "changed",
    "changed_keys",
    "default_state_dir",
    "describe",
    "listen_text",
    "load_config",
    "plan_folders",
    "prepare_folders",
    "read_owner",
    "read_owners",
    "resolve_options",
    "secrets_in",
    "take",
]

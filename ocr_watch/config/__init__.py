"""Read the YAML configuration into frozen dataclasses, or say everything that is wrong with it.

Why this package exists: a hot folder is set up once, by someone who then walks away. A bad
value must stop the daemon at start with a message naming the dotted key
(``pool.max_in_flight: must be an integer >= 1, got 'eight'``), and all such messages at once,
so one edit fixes the file. The API key is wrapped in :class:`Secret` as soon as it is read and
never appears in an error, a repr or :func:`describe`.

Each key is declared once, in sections.py (its default and its check); the reader
(load.py), the unknown-key suggestions and `describe` are derived from those definitions
(schema.py). checks.py checks single values, rules.py what ties keys together, folders.py
is about the folders on disk. Leaf package: imports nothing else of ours.
"""

from .checks import KNOWN_LANGUAGES, Listen, listen_text
from .describe import describe
from .diff import changed_keys, keep_keys
from .folders import OWNER_FILE, default_state_dir, plan_folders, prepare_folders, read_owner
from .load import load_config
from .schema import ConfigError, Secret
from .sections import (
    ApiSection,
    CallbackSection,
    Config,
    FoldersSection,
    OcrSection,
    PollSection,
    PoolSection,
    RetrySection,
    WatchSection,
)

__all__ = [
    "KNOWN_LANGUAGES",
    "OWNER_FILE",
    "ApiSection",
    "CallbackSection",
    "Config",
    "ConfigError",
    "FoldersSection",
    "Listen",
    "OcrSection",
    "PollSection",
    "PoolSection",
    "RetrySection",
    "Secret",
    "WatchSection",
    "changed_keys",
    "default_state_dir",
    "describe",
    "keep_keys",
    "listen_text",
    "load_config",
    "plan_folders",
    "prepare_folders",
    "read_owner",
]

"""Read the YAML configuration into frozen dataclasses, or say everything that is wrong with it.

Why this module exists: a hot folder is set up once, by someone who then walks away. A bad
value must stop the daemon at start with a message naming the dotted key
(``pool.max_in_flight: must be an integer >= 1, got 'eight'``), and all such messages at once,
so one edit fixes the file. The API key is wrapped in :class:`Secret` as soon as it is read and
never appears in an error, a repr or :func:`describe`.

Leaf module: imports nothing of ours.
"""

from __future__ import annotations

import difflib
import hmac
import ipaddress
import json
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

__all__ = [
    "ApiSettings",
    "CallbackSettings",
    "Config",
    "ConfigError",
    "Folders",
    "KNOWN_LANGUAGES",
    "OWNER_FILE",
    "OcrSettings",
    "PollSettings",
    "PoolSettings",
    "RetrySettings",
    "Secret",
    "WatchSettings",
    "default_state_dir",
    "describe",
    "listen_text",
    "load_config",
    "plan_folders",
    "prepare_folders",
    "read_owner",
]

API_KEY_ENV = "PICWISH_API_KEY"
DEFAULT_BASE_URL = "https://techhk.aoscdn.com"
DEFAULT_LANGUAGE = "ChinesePRC,English,Digits"
DEFAULT_CALLBACK_LISTEN = "127.0.0.1:8765"
FORMATS = ("txt", "pdf", "docx", "xlsx", "pptx")
ON_SUCCESS = ("archive", "delete", "keep")
WATCH_MODES = ("auto", "native", "polling")
LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_LANGUAGES = 10
SHARED_STATE_DIR = ".ocr-watch"      # beside the inbox; holds one state_dir per inbox
JOURNAL_FILE = "journal.sqlite3"
OWNER_FILE = "owner.json"            # in a state_dir: which inbox it serves
MAX_PASSWORD_CHARS = 32
# Names from the vendor documentation and from real clients (see shared reference).
KNOWN_LANGUAGES = frozenset(
    "Digits English ChinesePRC ChineseTaiwan French German Japanese Portuguese Spanish Italian "
    "Bulgarian Croatian Czech Danish Dutch Finnish Greek Hungarian Korean Norwegian Polish "
    "Russian Slovenian Swedish Turkish".split()
)

# The schema: every key allowed at each level. Used for unknown-key errors and suggestions.
_SCHEMA: dict[str, tuple[str, ...]] = {
    "": ("folders", "on_success", "state_dir", "api", "ocr", "pool", "poll", "callback", "watch",
         "retry", "log_level"),
    "folders": ("inbox", "outbox", "quarantine", "archive"),
    "api": ("base_url", "key", "key_file", "requests_per_second", "answer_timeout_seconds",
            "download_min_bytes_per_second"),
    "ocr": ("format", "language", "password"),
    "pool": ("max_in_flight", "queue_size"),
    "poll": ("interval_seconds", "timeout_seconds"),
    "callback": ("url", "listen", "fallback_seconds"),
    "watch": ("mode", "poll_interval_seconds", "rescan_seconds", "settle_seconds"),
    "retry": ("max_attempts", "backoff_initial_seconds", "backoff_max_seconds", "ambiguous_creates"),
}


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


@dataclass(frozen=True)
class Folders:
    """Where files come in, go out, go when they fail, and go after success."""

    inbox: Path
    outbox: Path
    quarantine: Path
    archive: Path


@dataclass(frozen=True)
class ApiSettings:
    """How to reach the OCR service."""

    base_url: str
    key: Secret
    requests_per_second: float
    # A call's whole life (httpx's timeouts are per read): see api/client.py.
    answer_timeout_seconds: float = 60.0
    download_min_bytes_per_second: float = 16384.0


@dataclass(frozen=True)
class OcrSettings:
    """What to ask the OCR service for."""

    format: str
    language: str
    password: Secret | None


@dataclass(frozen=True)
class PoolSettings:
    """How much work runs at once and waits in memory."""

    max_in_flight: int
    queue_size: int


@dataclass(frozen=True)
class PollSettings:
    """How often, and how long, to ask about one task."""

    interval_seconds: float
    timeout_seconds: float


@dataclass(frozen=True)
class CallbackSettings:
    """Where the service reports task changes, when it can reach this machine (off: url is None)."""

    url: str | None        # the public URL the service is told to POST to; None = callbacks off (poll only)
    listen_host: str       # where the daemon's receiver binds
    listen_port: int
    fallback_seconds: float  # query a task anyway if no callback came by then


@dataclass(frozen=True)
class WatchSettings:
    """How the inbox is watched."""

    mode: str
    poll_interval_seconds: float
    rescan_seconds: float
    settle_seconds: float


@dataclass(frozen=True)
class RetrySettings:
    """How server errors are retried."""

    max_attempts: int
    backoff_initial_seconds: float
    backoff_max_seconds: float
    # Uploads sent whole whose answer was lost (a task may exist, and be billed): how many
    # times such a file is sent again before it goes to quarantine instead.
    ambiguous_creates: int = 1


@dataclass(frozen=True)
class Config:
    """The whole effective configuration; every default filled in, every path absolute."""

    path: Path
    folders: Folders
    on_success: str
    state_dir: Path
    api: ApiSettings
    ocr: OcrSettings
    pool: PoolSettings
    poll: PollSettings
    callback: CallbackSettings
    watch: WatchSettings
    retry: RetrySettings
    log_level: str
    # True: state_dir is the old shared default <inbox>/../.ocr-watch, kept for its journal.
    state_dir_legacy: bool = False


_T = TypeVar("_T")
_MISSING: Any = object()


def _show(value: object) -> str:
    """A value for an error message, shortened; never used for secrets."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


class _Reader:
    """Walks the parsed YAML, collecting problems instead of stopping at the first."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    def section(self, raw: Mapping[str, Any], name: str) -> dict[str, Any]:
        value = raw.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(name, f"must be a mapping of keys, got {_type_name(value)}")
            return {}
        self.unknown_keys(value, name)
        return value

    def unknown_keys(self, mapping: Mapping[Any, Any], prefix: str) -> None:
        known = _SCHEMA[prefix]
        for key in mapping:
            dotted = f"{prefix}.{key}" if prefix else str(key)
            if not isinstance(key, str):
                self.problem(dotted, "keys must be strings")
            elif key not in known:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(known)}"
                self.problem(dotted, "unknown key" + hint)

    def get(self, mapping: Mapping[str, Any], dotted: str, default: Any,
            check: Callable[[str, Any], _T | None]) -> _T | None:
        """``mapping[last part]`` (or ``default`` if absent or null), passed through ``check``."""
        value = mapping.get(dotted.rsplit(".", 1)[-1])
        if value is None:
            if default is _MISSING:
                self.problem(dotted, "is required")
                return None
            value = default
        return check(dotted, value)

    # -- checks: each returns the converted value, or records a problem and returns None --

    def number(self, minimum: float, inclusive: bool) -> Callable[[str, Any], float | None]:
        def check(key: str, value: Any) -> float | None:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                bound = ">=" if inclusive else ">"
                self.problem(key, f"must be a number {bound} {minimum:g}, got {_show(value)}")
                return None
            if value < minimum or (not inclusive and value == minimum):
                bound = ">=" if inclusive else ">"
                self.problem(key, f"must be {bound} {minimum:g}, got {value!r}")
                return None
            if value != value or value in (float("inf"), float("-inf")):
                self.problem(key, f"must be a finite number, got {value!r}")
                return None
            return float(value)
        return check

    def integer(self, minimum: int) -> Callable[[str, Any], int | None]:
        def check(key: str, value: Any) -> int | None:
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                self.problem(key, f"must be an integer >= {minimum}, got {_show(value)}")
                return None
            return value
        return check

    def choice(self, options: tuple[str, ...]) -> Callable[[str, Any], str | None]:
        def check(key: str, value: Any) -> str | None:
            if not isinstance(value, str) or value not in options:
                self.problem(key, f"must be one of {' | '.join(options)}, got {_show(value)}")
                return None
            return value
        return check

    def path(self, key: str, value: Any) -> Path | None:
        if not isinstance(value, str) or not value.strip():
            self.problem(key, f"must be a folder path (a non-empty string), got {_show(value)}")
            return None
        try:
            path = Path(value).expanduser()
            if not path.is_absolute():
                path = self.base_dir / path
            return path.resolve()
        except (OSError, ValueError, RuntimeError) as exc:  # NUL byte, unknown ~user, link loop
            self.problem(key, f"is not a usable path: {exc}")
            return None


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read ``path``; raise :class:`ConfigError` listing every problem found."""
    env = os.environ if env is None else env
    path = Path(path).expanduser().resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([f"{path}: cannot read the configuration file: {reason}"]) from exc
    loader = _Loader(text)
    try:
        raw = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(path, exc)]) from exc
    finally:
        loader.dispose()
    if raw is None:
        raise ConfigError([f"{path}: the file is empty; folders.inbox, folders.outbox and "
                           "folders.quarantine are required"])
    if not isinstance(raw, dict):
        raise ConfigError([f"(top level): must be a mapping of keys, got {_type_name(raw)}"])

    r = _Reader(path.parent)
    r.problems.extend(f"{path}: {d}" for d in loader.duplicates)
    r.unknown_keys(raw, "")
    folders, state_dir, on_success, legacy = _read_folders(r, raw)
    api = _read_api(r, r.section(raw, "api"), env)
    ocr = _read_ocr(r, r.section(raw, "ocr"))

    pool_raw = r.section(raw, "pool")
    pool = (r.get(pool_raw, "pool.max_in_flight", 32, r.integer(1)),
            r.get(pool_raw, "pool.queue_size", 10000, r.integer(1)))
    poll_raw = r.section(raw, "poll")
    poll = (r.get(poll_raw, "poll.interval_seconds", 1, r.number(0, inclusive=False)),
            r.get(poll_raw, "poll.timeout_seconds", 120, r.number(0, inclusive=False)))
    callback = _read_callback(r, r.section(raw, "callback"), poll_timeout=poll[1])
    watch_raw = r.section(raw, "watch")
    watch = (r.get(watch_raw, "watch.mode", "auto", r.choice(WATCH_MODES)),
             r.get(watch_raw, "watch.poll_interval_seconds", 1.0, r.number(0, inclusive=False)),
             r.get(watch_raw, "watch.rescan_seconds", 60, r.number(0, inclusive=True)),
             r.get(watch_raw, "watch.settle_seconds", 2.0, r.number(0, inclusive=True)))
    retry_raw = r.section(raw, "retry")
    retry = (r.get(retry_raw, "retry.max_attempts", 8, r.integer(1)),
             r.get(retry_raw, "retry.backoff_initial_seconds", 1, r.number(0, inclusive=False)),
             r.get(retry_raw, "retry.backoff_max_seconds", 300, r.number(0, inclusive=False)),
             r.get(retry_raw, "retry.ambiguous_creates", 1, r.integer(0)))
    if retry[1] is not None and retry[2] is not None and retry[2] < retry[1]:
        r.problem("retry.backoff_max_seconds",
                  f"must be >= retry.backoff_initial_seconds ({retry[1]:g}), got {retry[2]:g}")
    log_level = r.get(raw, "log_level", "info", r.choice(LOG_LEVELS))

    if r.problems:
        raise ConfigError(r.problems)
    # Every value below was checked; the asserts only narrow the Optional types.
    assert folders is not None and state_dir is not None and on_success is not None
    assert api is not None and ocr is not None and callback is not None
    assert log_level is not None
    return Config(
        path=path, folders=folders, on_success=on_success, state_dir=state_dir, api=api,
        ocr=ocr, pool=PoolSettings(*pool), poll=PollSettings(*poll),  # type: ignore[arg-type]
        callback=callback,
        watch=WatchSettings(*watch), retry=RetrySettings(*retry),  # type: ignore[arg-type]
        log_level=log_level, state_dir_legacy=legacy,
    )


class _Loader(yaml.SafeLoader):
    """SafeLoader that notes repeated keys, which plain YAML loading silently lets the last win."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is None:
                continue
            line = key_node.start_mark.line + 1
            if key in first_line:
                self.duplicates.append(f"line {line}: key {key!r} is given twice (first on line "
                                       f"{first_line[key]}); keep one")
            else:
                first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    # Only the position and the parser's complaint: the marked snippet could show the API key.
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "cannot parse"
    if mark is not None:
        return f"{path}: YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return f"{path}: YAML syntax error: {problem}"


def _read_folders(r: _Reader, raw: Mapping[str, Any]) -> tuple[Folders | None, Path | None, str | None, bool]:
    section = r.section(raw, "folders")
    inbox = r.get(section, "folders.inbox", _MISSING, r.path)
    outbox = r.get(section, "folders.outbox", _MISSING, r.path)
    quarantine = r.get(section, "folders.quarantine", _MISSING, r.path)
    on_success = r.get(raw, "on_success", "archive", r.choice(ON_SUCCESS))
    archive_given = section.get("archive") is not None
    archive = r.get(section, "folders.archive", None, r.path) if archive_given else None
    state_dir = r.get(raw, "state_dir", None, r.path) if raw.get("state_dir") is not None else None
    legacy = False
    if inbox is not None:
        archive = archive if archive_given else inbox.parent / "archive"
        if raw.get("state_dir") is None:
            state_dir, legacy = default_state_dir(inbox)

    named: dict[str, Path | None] = {
        "folders.inbox": inbox, "folders.outbox": outbox, "folders.quarantine": quarantine,
        "folders.archive": archive, "state_dir": state_dir,
    }
    if not archive_given and on_success != "archive":
        del named["folders.archive"]  # the unused default needs no checking
    _check_folder_relations(r, {k: v for k, v in named.items() if v is not None})

    if inbox is None or outbox is None or quarantine is None or archive is None or state_dir is None:
        return None, None, on_success, False
    return Folders(inbox, outbox, quarantine, archive), state_dir, on_success, legacy


def default_state_dir(inbox: Path) -> tuple[Path, bool]:
    """``<inbox parent>/.ocr-watch/<inbox name>``: inboxes that share a parent get one each.

    Before, the default was ``<inbox parent>/.ocr-watch`` itself, shared by such inboxes. A
    journal there is kept (second value True), so no install loses it, unless that
    state_dir's owner record names another inbox: then it is that inbox's journal.
    """
    shared = inbox.parent / SHARED_STATE_DIR
    try:
        if (shared / JOURNAL_FILE).is_file() and read_owner(shared) in (None, inbox):
            return shared, True
    except (OSError, ValueError):
        pass  # unreadable: not provably ours, so leave it alone
    return shared / inbox.name, False


def read_owner(state_dir: Path) -> Path | None:
    """The inbox ``state_dir`` serves, from its owner record; None if it has none yet.

    Raises OSError or ValueError if the record cannot be read.
    """
    try:
        text = (state_dir / OWNER_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("inbox"), str):
        raise ValueError("no inbox in it")
    return Path(data["inbox"])


def _check_folder_relations(r: _Reader, folders: Mapping[str, Path]) -> None:
    keys = list(folders)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if folders[a] == folders[b]:
                r.problem(b, f"is the same folder as {a} ({folders[a]}); each folder needs its own path")
    inbox = folders.get("folders.inbox")
    if inbox is None:
        return
    for key, path in folders.items():
        if key == "folders.inbox" or path == inbox:
            continue
        if path.is_relative_to(inbox):
            r.problem(key, f"is inside folders.inbox ({inbox}), which would feed "
                           f"{'results' if key == 'folders.outbox' else 'its files'} back in")
        elif key != "state_dir" and inbox.is_relative_to(path):
            r.problem("folders.inbox", f"is inside {key} ({path}), which would feed "
                                       "its files back in")


def _read_api(r: _Reader, section: Mapping[str, Any], env: Mapping[str, str]) -> ApiSettings | None:
    base_url = r.get(section, "api.base_url", DEFAULT_BASE_URL, _check_base_url(r))
    rps = r.get(section, "api.requests_per_second", 2, r.number(0, inclusive=False))
    answer = r.get(section, "api.answer_timeout_seconds", 60, r.number(0, inclusive=False))
    min_rate = r.get(section, "api.download_min_bytes_per_second", 16384, r.number(0, inclusive=False))
    key = _read_key(r, section, env)
    if base_url is None or rps is None or key is None or answer is None or min_rate is None:
        return None
    return ApiSettings(base_url=base_url, key=key, requests_per_second=rps, answer_timeout_seconds=answer,
                       download_min_bytes_per_second=min_rate)


def _check_base_url(r: _Reader) -> Callable[[str, Any], str | None]:
    check_url = _check_url(r, allow_query=False, userinfo_hint="the key goes in api.key",
                           secret="the API key")

    def check(key: str, value: Any) -> str | None:
        url = check_url(key, value)
        return None if url is None else url.rstrip("/")
    return check


def _check_url(r: _Reader, *, allow_query: bool, userinfo_hint: str,
               secret: str) -> Callable[[str, Any], str | None]:
    """An absolute http(s) URL with a host, stripped; ``http`` only for loopback hosts.

    ``allow_query``: a query string is accepted (a fragment never is). ``userinfo_hint`` says
    where a credential belongs instead; ``secret`` names what plain http would expose.
    """
    def check(key: str, value: Any) -> str | None:
        if not isinstance(value, str):
            r.problem(key, f"must be an http(s) URL, got {_show(value)}")
            return None
        try:
            parts = urlsplit(value.strip())
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            r.problem(key, "is not a valid URL")
            return None
        if parts.username is not None or parts.password is not None:
            # Do not echo it: the userinfo may be a credential.
            r.problem(key, f"must not contain a user name or password; {userinfo_hint}")
            return None
        if parts.scheme not in ("http", "https") or not host:
            r.problem(key, f"must be an http(s) URL with a host, got {_show(value)}")
            return None
        if parts.fragment or (parts.query and not allow_query):
            what = "a fragment" if allow_query else "a query string or fragment"
            r.problem(key, f"must not have {what}, got {_show(value)}")
            return None
        if parts.scheme == "http" and not _is_loopback(host):
            r.problem(key, f"http:// is only allowed for loopback hosts (127.0.0.0/8, localhost, "
                           f"::1), got host {host!r}; use https:// so {secret} is not sent "
                           "in clear text")
            return None
        return value.strip()
    return check


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_callback(r: _Reader, section: Mapping[str, Any],
                   poll_timeout: float | None) -> CallbackSettings | None:
    callbacks_on = section.get("url") is not None  # absent or null: off, poll only
    check_url = _check_url(r, allow_query=True, secret="the callback's secret",
                           userinfo_hint="the daemon adds its own secret to the URL")
    url = r.get(section, "callback.url", _MISSING, check_url) if callbacks_on else None
    listen = r.get(section, "callback.listen", DEFAULT_CALLBACK_LISTEN, _check_listen(r))
    fallback = r.get(section, "callback.fallback_seconds", 60, r.number(0, inclusive=False))
    # Only when callbacks are on: otherwise the fallback is unused, and its default must not
    # clash with a short poll.timeout_seconds.
    if callbacks_on and fallback is not None and poll_timeout is not None \
            and fallback >= poll_timeout:
        r.problem("callback.fallback_seconds",
                  f"must be < poll.timeout_seconds ({poll_timeout:g}), got {fallback:g}; a task "
                  "is quarantined at poll.timeout_seconds, so the fallback query must come first")
        return None
    if listen is None or fallback is None or (callbacks_on and url is None):
        return None
    return CallbackSettings(url=url, listen_host=listen[0], listen_port=listen[1],
                            fallback_seconds=fallback)


def _check_listen(r: _Reader) -> Callable[[str, Any], tuple[str, int] | None]:
    def check(key: str, value: Any) -> tuple[str, int] | None:
        if isinstance(value, str):
            host, sep, port = value.strip().rpartition(":")
            if host.startswith("[") and host.endswith("]"):
                host = host[1:-1]
                try:
                    ipaddress.IPv6Address(host)
                except ValueError:
                    host = ""
            elif any(ch in host for ch in ":[]"):
                host = ""  # an IPv6 address needs its brackets: [::1]:8765
            if (sep and host and not any(ch.isspace() for ch in host)
                    and port.isascii() and port.isdigit() and len(port) <= 5
                    and int(port) <= 65535):
                return host, int(port)
        r.problem(key, "must be 'host:port' or '[v6addr]:port' (quoted) with a port 0..65535 "
                       f"(0: any free port), got {_show(value)}")
        return None
    return check


def listen_text(host: str, port: int) -> str:
    """How a listen address is written in the config, and so in messages about it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _read_key(r: _Reader, section: Mapping[str, Any], env: Mapping[str, str]) -> Secret | None:
    sources = []
    if section.get("key") is not None:
        sources.append("api.key")
    if section.get("key_file") is not None:
        sources.append("api.key_file")
    if env.get(API_KEY_ENV):
        sources.append(API_KEY_ENV)
    if not sources:
        r.problem("api.key", f"no API key: set api.key, api.key_file or {API_KEY_ENV}")
        return None
    if len(sources) > 1:
        r.problem("api.key", f"more than one API key source ({', '.join(sources)}); "
                             "keep exactly one")
        return None

    source = sources[0]
    if source == "api.key":
        value = section["key"]
        if not isinstance(value, str):
            r.problem("api.key", f"must be a string (quote it), got {_type_name(value)}")
            return None
        value = value.strip()
    elif source == "api.key_file":
        key_file = r.path("api.key_file", section["key_file"])
        if key_file is None:
            return None
        try:
            value = key_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
            r.problem("api.key_file", f"cannot read {key_file}: {reason}")
            return None
    else:
        value = env[API_KEY_ENV].strip()

    if not value:
        r.problem(source, "the API key is empty")
        return None
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        r.problem(source, "the API key contains spaces or control characters; "
                          "it must be a single token")
        return None
    return Secret(value)


def _read_ocr(r: _Reader, section: Mapping[str, Any]) -> OcrSettings | None:
    fmt = r.get(section, "ocr.format", "txt", r.choice(FORMATS))
    language = r.get(section, "ocr.language", DEFAULT_LANGUAGE, _check_language(r))
    password: Secret | None = None
    pw_ok = True
    raw_pw = section.get("password")
    if raw_pw is not None:
        if not isinstance(raw_pw, str):
            r.problem("ocr.password", f"must be a string (quote it), got {_type_name(raw_pw)}")
            pw_ok = False
        elif not raw_pw or len(raw_pw) > MAX_PASSWORD_CHARS:
            r.problem("ocr.password", f"must be 1 to {MAX_PASSWORD_CHARS} characters, "
                                      f"got {len(raw_pw)}")
            pw_ok = False
        else:
            password = Secret(raw_pw)
    if fmt is None or language is None or not pw_ok:
        return None
    return OcrSettings(format=fmt, language=language, password=password)


def _check_language(r: _Reader) -> Callable[[str, Any], str | None]:
    def check(key: str, value: Any) -> str | None:
        if not isinstance(value, str):
            r.problem(key, f"must be a comma-separated string like 'English,Digits', "
                           f"got {_show(value)}")
            return None
        names = [name.strip() for name in value.split(",")]
        ok = True
        if any(not name for name in names):
            r.problem(key, f"has an empty name in {_show(value)}")
            ok = False
        for name in names:
            if name and name not in KNOWN_LANGUAGES:
                close = difflib.get_close_matches(name, sorted(KNOWN_LANGUAGES), n=1, cutoff=0.6)
                hint = (f"; did you mean '{close[0]}'? (names are case-sensitive)" if close
                        else f"; known: {', '.join(sorted(KNOWN_LANGUAGES))}")
                r.problem(key, f"unknown language {name!r}{hint}")
                ok = False
        duplicates = sorted({name for name in names if name and names.count(name) > 1})
        if duplicates:
            r.problem(key, f"lists {', '.join(duplicates)} more than once")
            ok = False
        if len(names) > MAX_LANGUAGES:
            r.problem(key, f"at most {MAX_LANGUAGES} languages, got {len(names)}")
            ok = False
        return ",".join(names) if ok else None
    return check


def _folders(config: Config) -> dict[str, Path]:
    """Every folder the daemon writes to, by its key."""
    folders = {
        "folders.inbox": config.folders.inbox,
        "folders.outbox": config.folders.outbox,
        "folders.quarantine": config.folders.quarantine,
        "state_dir": config.state_dir,
    }
    if config.on_success == "archive":
        folders["folders.archive"] = config.folders.archive
    return folders


def plan_folders(config: Config) -> list[tuple[str, Path]]:
    """Read-only (for `check-config`): the folders `run` would create, by key; raises
    :class:`ConfigError` for what can be seen without writing (a file where a folder should
    be, a folder or parent the daemon's user cannot write)."""
    problems, missing = [], []
    for key, path in _folders(config).items():
        if path.exists():
            if not path.is_dir():
                problems.append(f"{key}: {path} exists but is a file, not a folder")
            elif not os.access(path, os.W_OK | os.X_OK):
                problems.append(f"{key}: {path} is not writable")
            continue
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            problems.append(f"{key}: {path} cannot be created: {parent} is a file, not a folder")
        elif not os.access(parent, os.W_OK | os.X_OK):
            problems.append(f"{key}: {path} cannot be created: {parent} is not writable")
        else:
            missing.append((key, path))
    if problems:
        raise ConfigError(problems)
    return missing


def prepare_folders(config: Config) -> None:
    """Create every folder the daemon writes to and prove each is a writable directory."""
    problems = []
    for key, path in _folders(config).items():
        # state_dir holds the journal and its pre-signed result links: the daemon's user only.
        problem = _prepare_one(path, 0o700 if key == "state_dir" else 0o777)
        if problem:
            problems.append(f"{key}: {problem}")
    if problems:
        raise ConfigError(problems)


def _prepare_one(path: Path, mode: int = 0o777) -> str | None:
    if path.exists() and not path.is_dir():
        return f"{path} exists but is a file, not a folder"
    try:
        path.mkdir(mode, parents=True, exist_ok=True)
    except OSError as exc:
        return f"{path} cannot be created: {exc.strerror or exc}"
    # Hidden name: the watcher ignores dot files, so a probe in the inbox is never picked up.
    probe = path / f".ocr-watch-probe-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"{path} is not writable: {exc.strerror or exc}"
    return None


def describe(config: Config) -> str:
    """The effective configuration as YAML, defaults filled in and secrets masked."""
    data = {
        "folders": {name: str(getattr(config.folders, name))
                    for name in ("inbox", "outbox", "quarantine", "archive")},
        "on_success": config.on_success,
        "state_dir": str(config.state_dir),
        "api": {"base_url": config.api.base_url, "key": str(config.api.key),
                "requests_per_second": config.api.requests_per_second,
                "answer_timeout_seconds": config.api.answer_timeout_seconds,
                "download_min_bytes_per_second": config.api.download_min_bytes_per_second},
        "ocr": {"format": config.ocr.format, "language": config.ocr.language,
                "password": None if config.ocr.password is None else str(config.ocr.password)},
        "pool": {"max_in_flight": config.pool.max_in_flight, "queue_size": config.pool.queue_size},
        "poll": {"interval_seconds": config.poll.interval_seconds,
                 "timeout_seconds": config.poll.timeout_seconds},
        # The url without its query string: the query may carry a token of the user's.
        "callback": {"url": None if config.callback.url is None
                     else urlsplit(config.callback.url)._replace(query="").geturl(),
                     "listen": listen_text(config.callback.listen_host, config.callback.listen_port),
                     "fallback_seconds": config.callback.fallback_seconds},
        "watch": {"mode": config.watch.mode,
                  "poll_interval_seconds": config.watch.poll_interval_seconds,
                  "rescan_seconds": config.watch.rescan_seconds,
                  "settle_seconds": config.watch.settle_seconds},
        "retry": {"max_attempts": config.retry.max_attempts,
                  "backoff_initial_seconds": config.retry.backoff_initial_seconds,
                  "backoff_max_seconds": config.retry.backoff_max_seconds,
                  "ambiguous_creates": config.retry.ambiguous_creates},
        "log_level": config.log_level,
    }
    header = f"# effective configuration from {config.path}\n"
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    return header + text.replace("\ncallback:\n  url: null\n",
                                 "\ncallback:\n  url: null  # callbacks off: every task is polled\n")

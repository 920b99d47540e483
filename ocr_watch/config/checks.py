"""The checks of single values: each returns the value converted, or records a problem naming
the dotted key and returns None. A message shows the value given (shortened), except where it
may be a secret: the API key, the OCR password, a URL's user name and password."""

from __future__ import annotations

import difflib
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .globs import Glob, GlobError
from .schema import Check, Reader, Secret, type_name

__all__ = ["API_KEY_CREDENTIAL", "API_KEY_ENV", "FORMATS", "KNOWN_LANGUAGES", "Listen", "argv", "choice", "file",
           "folder", "formats", "glob", "integer", "language", "listen", "listen_text", "number", "password",
           "read_job_key", "read_key", "read_password", "url"]

API_KEY_ENV = "PICWISH_API_KEY"
# A systemd credential (`LoadCredential=picwish-api-key:/etc/...`), read from the folder
# systemd names in CREDENTIALS_DIRECTORY; used only when none of the three above is set.
API_KEY_CREDENTIAL = "picwish-api-key"
MAX_LANGUAGES = 10
MAX_PASSWORD_CHARS = 32
FORMATS = ("txt", "pdf", "docx", "xlsx", "pptx")
# Names from the vendor documentation and from real clients (see shared reference).
KNOWN_LANGUAGES = frozenset(
    "Digits English ChinesePRC ChineseTaiwan French German Japanese Portuguese Spanish Italian "
    "Bulgarian Croatian Czech Danish Dutch Finnish Greek Hungarian Korean Norwegian Polish "
    "Russian Slovenian Swedish Turkish".split()
)


def _show(value: object) -> str:
    """A value for an error message, shortened; never used for secrets."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def number(minimum: float, *, inclusive: bool) -> Check:
    """A finite int or float (not a bool) above ``minimum`` (or at it, if ``inclusive``)."""
    bound = ">=" if inclusive else ">"

    def check(r: Reader, key: str, value: Any) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            r.problem(key, f"must be a number {bound} {minimum:g}, got {_show(value)}")
            return None
        if value < minimum or (not inclusive and value == minimum):
            r.problem(key, f"must be {bound} {minimum:g}, got {value!r}")
            return None
        if value != value or value in (float("inf"), float("-inf")):
            r.problem(key, f"must be a finite number, got {value!r}")
            return None
        return float(value)
    return check


def integer(minimum: int, maximum: int | None = None) -> Check:
    def check(r: Reader, key: str, value: Any) -> int | None:
        if (isinstance(value, bool) or not isinstance(value, int) or value < minimum
                or (maximum is not None and value > maximum)):
            bounds = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
            r.problem(key, f"must be an integer {bounds}, got {_show(value)}")
            return None
        return value
    return check


def choice(options: tuple[str, ...], kind: Callable[[str], Any] = str) -> Check:
    """One of `options`, as `kind` (an enum of `ocr_watch.choices`, or the string)."""
    def check(r: Reader, key: str, value: Any) -> Any:
        if not isinstance(value, str) or value not in options:
            r.problem(key, f"must be one of {' | '.join(options)}, got {_show(value)}")
            return None
        return kind(value)
    return check


def folder(r: Reader, key: str, value: Any) -> Path | None:
    """An absolute, resolved path; a relative one is relative to the config file's folder."""
    return _path(r, key, value, "folder")


def file(r: Reader, key: str, value: Any) -> Path | None:
    """Like :func:`folder`, for a file (a key file, a password file, a hook's program)."""
    return _path(r, key, value, "file")


def _path(r: Reader, key: str, value: Any, what: str) -> Path | None:
    if not isinstance(value, str) or not value.strip():
        r.problem(key, f"must be a {what} path (a non-empty string), got {_show(value)}")
        return None
    try:
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = r.base_dir / path
        return path.resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # NUL byte, unknown ~user, link loop
        r.problem(key, f"is not a usable path: {exc}")
        return None


def formats(r: Reader, key: str, value: Any) -> tuple[str, ...] | None:
    """One output format, or a list of them (one task, one credit each), each once."""
    given = [value] if isinstance(value, str) else value
    if not isinstance(given, list) or not given:
        r.problem(key, f"must be a format or a list of formats ({' | '.join(FORMATS)}), "
                       f"got {_show(value)}")
        return None
    bad = [f for f in given if not isinstance(f, str) or f not in FORMATS]
    if bad:
        r.problem(key, f"must be one of {' | '.join(FORMATS)}, got {', '.join(_show(f) for f in bad)}")
        return None
    repeated = sorted({f for f in given if given.count(f) > 1})
    if repeated:
        r.problem(key, f"lists {', '.join(repeated)} more than once")
        return None
    return tuple(given)


def glob(r: Reader, key: str, value: Any) -> Glob | None:
    """A pattern on the path relative to the inbox (see globs.py)."""
    if not isinstance(value, str):
        r.problem(key, f"must be a pattern like 'china/**' (quote it), got {_show(value)}")
        return None
    try:
        return Glob.parse(value)
    except GlobError as exc:
        r.problem(key, f"{exc}, got {_show(value)}")
        return None


def argv(r: Reader, key: str, value: Any) -> tuple[str, ...] | None:
    """A command as a list (no shell): the program's path (relative: to the config file;
    no PATH lookup, so what runs does not depend on the daemon's environment) and its
    arguments, all strings. The program must be an executable file now."""
    if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
        r.problem(key, "must be a command as a list of strings, the program first, like "
                       f"['/usr/local/bin/file-to-dms', '--job', 'contracts'], got {_show(value)}")
        return None
    if "/" not in value[0]:
        r.problem(key, f"the program must be a path (absolute, or relative to this file; there "
                       f"is no PATH lookup), got {_show(value[0])}")
        return None
    program = file(r, key, value[0])
    if program is None:
        return None
    if not program.is_file() or not os.access(program, os.X_OK):
        r.problem(key, f"the program {program} is not an executable file")
        return None
    return (str(program), *value[1:])


def url(*, allow_query: bool, userinfo_hint: str, secret: str, strip_slash: bool = False) -> Check:
    """An absolute http(s) URL with a host, stripped; ``http`` only for loopback hosts.

    ``allow_query``: a query string is accepted (a fragment never is). ``userinfo_hint`` says
    where a credential belongs instead; ``secret`` names what plain http would expose.
    ``strip_slash``: a trailing slash is dropped (a base URL that paths are appended to).
    """
    def check(r: Reader, key: str, value: Any) -> str | None:
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
        return value.strip().rstrip("/") if strip_slash else value.strip()
    return check


def _credential(env: Mapping[str, str]) -> Path | None:
    """The credential file systemd provides, if it exists (CREDENTIALS_DIRECTORY is absolute)."""
    folder = env.get("CREDENTIALS_DIRECTORY", "")
    if not folder.startswith("/"):
        return None
    path = Path(folder) / API_KEY_CREDENTIAL
    return path if path.is_file() else None


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_text(host: str, port: int) -> str:
    """How a listen address is written in the config, and so in messages about it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class Listen:
    """Where a receiver binds; str() writes it as the config does."""

    host: str
    port: int  # 0: any free port

    def __str__(self) -> str:
        return listen_text(self.host, self.port)


def listen(r: Reader, key: str, value: Any) -> Listen | None:
    """``host:port`` or ``[v6addr]:port``."""
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
            return Listen(host, int(port))
    r.problem(key, "must be 'host:port' or '[v6addr]:port' (quoted) with a port 0..65535 "
                   f"(0: any free port), got {_show(value)}")
    return None


def language(r: Reader, key: str, value: Any) -> str | None:
    """Comma-separated known language names, at most MAX_LANGUAGES, each once."""
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


def password(r: Reader, key: str, value: Any) -> Secret | None:
    """A string of 1 to MAX_PASSWORD_CHARS characters, wrapped at once; only its length is shown."""
    if not isinstance(value, str):
        r.problem(key, f"must be a string (quote it), got {type_name(value)}")
        return None
    if not value or len(value) > MAX_PASSWORD_CHARS:
        r.problem(key, f"must be 1 to {MAX_PASSWORD_CHARS} characters, got {len(value)}")
        return None
    return Secret(value)


def read_key(r: Reader, section: Mapping[str, Any], dotted: str) -> Secret | None:
    """The API key from exactly one of ``<dotted>``, ``<dotted>_file`` or API_KEY_ENV; with
    none of them, from the systemd credential API_KEY_CREDENTIAL if there is one."""
    return _read_key(r, section, dotted, API_KEY_ENV)


def read_job_key(r: Reader, section: Mapping[str, Any], dotted: str) -> Secret | None:
    """A job's own API key, from ``<dotted>`` or ``<dotted>_file`` (the environment variable and
    the credential are the shared key's); None if neither is given."""
    return _read_key(r, section, dotted, None)


def _read_key(r: Reader, section: Mapping[str, Any], dotted: str, env: str | None) -> Secret | None:
    name = dotted.rsplit(".", 1)[-1]
    file_key = f"{dotted}_file"
    sources = []
    if section.get(name) is not None:
        sources.append(dotted)
    if section.get(f"{name}_file") is not None:
        sources.append(file_key)
    if env is not None and r.env.get(env):
        sources.append(env)
    credential = _credential(r.env) if env is not None else None  # the shared key's only
    if not sources and credential is not None:
        sources.append(f"credential {API_KEY_CREDENTIAL}")
    if not sources:
        if env is not None:
            r.problem(dotted, f"no API key: set {dotted}, {file_key} or {env}, or give the service the "
                              f"systemd credential {API_KEY_CREDENTIAL} (LoadCredential={API_KEY_CREDENTIAL}:FILE)")
        return None
    if len(sources) > 1:
        r.problem(dotted, f"more than one API key source ({', '.join(sources)}); keep exactly one")
        return None

    source = sources[0]
    if source == dotted:
        value = section[name]
        if not isinstance(value, str):
            r.problem(dotted, f"must be a string (quote it), got {type_name(value)}")
            return None
        value = value.strip()
    elif source == file_key:
        key_file = file(r, file_key, section[f"{name}_file"])
        if key_file is None:
            return None
        try:
            value = key_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
            r.problem(file_key, f"cannot read {key_file}: {reason}")
            return None
    elif credential is not None and source == f"credential {API_KEY_CREDENTIAL}":
        try:
            value = credential.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
            r.problem(dotted, f"cannot read the credential {credential}: {reason}")
            return None
    else:
        value = r.env[source].strip()

    if not value:
        r.problem(source, "the API key is empty")
        return None
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        r.problem(source, "the API key contains spaces or control characters; "
                          "it must be a single token")
        return None
    return Secret(value)


def read_password(r: Reader, section: Mapping[str, Any], dotted: str) -> Secret | None:
    """The OCR password from ``<dotted>`` or ``<dotted>_file`` (at most one), or None.

    The file is read here, at load time: a missing or bad file stops start-up naming its key,
    instead of quarantining every file the rule matches, and the options a file is admitted
    with stay fixed until the next start. Only a final line break is dropped from it."""
    name = dotted.rsplit(".", 1)[-1]
    file_key = f"{dotted}_file"
    given, from_file = section.get(name), section.get(f"{name}_file")
    if given is not None and from_file is not None:
        r.problem(dotted, f"both {dotted} and {file_key} are set; keep one")
        return None
    if from_file is None:
        return None if given is None else password(r, dotted, given)
    path = file(r, file_key, from_file)
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        r.problem(file_key, f"cannot read {path}: {reason}")
        return None
    return password(r, file_key, text.removesuffix("\n").removesuffix("\r"))

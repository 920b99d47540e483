"""The glob a job's rule matches against a file's path relative to the job's inbox.

Why our own: :func:`fnmatch.fnmatch` lets ``*`` cross ``/`` (``china/*`` would match
``china/a/b.pdf``) and has no ``**``; ``PurePath.full_match`` arrived in Python 3.13. The
semantics, the ones of gitignore and of pathlib's ``**``:

* the pattern is matched against the whole relative path, ``/`` between folders, case-sensitive;
* ``**`` as a whole segment matches any number of folders, none included (``**/*.pdf``
  matches ``a.pdf`` and ``x/y/a.pdf``); at the end (``china/**``) everything below;
* ``*`` matches any characters within one name, ``?`` one character, ``[abc]``, ``[a-z]``,
  ``[!abc]`` one character of (or not of) a set; none of them matches ``/``. A leading dot
  is nothing special (the watcher ignores hidden files anyway).

A pattern is refused (:class:`GlobError`, said in plain words) when it cannot match a file
path: absolute, ending in ``/``, with empty, ``.`` or ``..`` segments, a backslash (no escape
character: ``[*]`` matches a literal ``*``), ``**`` inside a name, or an unclosed ``[``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Glob", "GlobError"]


class GlobError(ValueError):
    """The pattern is not a usable glob; the message says why."""


@dataclass(frozen=True)
class Glob:
    """A compiled pattern; equal to another with the same text. Build with :meth:`parse`."""

    text: str
    _regex: re.Pattern[str] = field(compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Glob:
        try:
            return cls(text, re.compile(_translate(text), re.DOTALL))
        except re.error as exc:  # a set like [z-a]
            raise GlobError(f"is not a valid pattern: {exc.msg}") from None

    def matches(self, relative: str) -> bool:
        """Whether the path (relative to the inbox, ``/`` between folders) matches."""
        return self._regex.fullmatch(relative) is not None

    def __str__(self) -> str:
        return self.text


def _translate(text: str) -> str:
    if not text:
        raise GlobError("is empty")
    if "\\" in text:
        raise GlobError("has a backslash: use '/' between folders, and [*] for a literal *")
    if text.startswith("/"):
        raise GlobError("must be relative to the job's inbox, not start with '/'")
    if text.endswith("/"):
        raise GlobError(f"matches files, not folders: write '{text}**' for everything in it")
    segments = text.split("/")
    parts = []
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment in ("", ".", ".."):
            raise GlobError("has an empty, '.' or '..' folder: paths are matched as written "
                            "below the inbox, like 'china/**'")
        if segment == "**":
            parts.append(".*" if last else "(?:[^/]+/)*")
            continue
        if "**" in segment:
            raise GlobError(f"'**' must be a whole folder name (like 'a/**/b'), not part of "
                            f"{segment!r}; use '*' within a name")
        parts.append(_segment(segment) + ("" if last else "/"))
    return "".join(parts)


def _segment(segment: str) -> str:
    """One name's pattern as a regex that never matches '/'."""
    out, i = [], 0
    while i < len(segment):
        ch = segment[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            j = i + 1
            negate = j < len(segment) and segment[j] == "!"
            j += negate
            if j < len(segment) and segment[j] == "]":
                j += 1  # a ']' first in the set is one of its characters
            end = segment.find("]", j)
            if end < 0:
                raise GlobError(f"has an unclosed '[' in {segment!r}; [*] matches a literal *")
            body = segment[i + 1 + negate:end]
            chars = "".join("\\" + c if c in "\\^[]" else c for c in body)
            out.append(f"[^/{chars}]" if negate else f"[{chars}]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)

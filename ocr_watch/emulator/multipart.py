"""Streaming request bodies: a 200 MB upload is hashed on the fly, never held in memory.

Reads Content-Length or chunked bodies in 64 KiB pieces and feeds them to the
``python_multipart`` push parser. For file parts only the size, the SHA-256 and
the first bytes (for sniffing) are kept. Also parses url-encoded forms, which the
vendor's ``image_url`` samples send.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO
from urllib.parse import parse_qs

from python_multipart.multipart import MultipartParser, parse_options_header

from .results import SNIFF_BYTES

CHUNK = 64 * 1024
#: Cap on one non-file field and on a whole url-encoded body.
FIELD_LIMIT = 64 * 1024


class BodyError(Exception):
    """The request body is malformed (bad chunking, bad multipart, truncated)."""


class BodyStream:
    """Reads a request body from ``rfile`` per its headers, chunk by chunk; ``pace(n)`` is
    called after each piece of n bytes is read (the shared uplink's wait)."""

    def __init__(self, rfile: IO[bytes] | io.BufferedIOBase, content_length: str | None,
                 transfer_encoding: str | None, pace: Callable[[int], None] | None = None) -> None:
        self._rfile = rfile
        self._pace = pace
        self._chunked = (transfer_encoding or "").lower().strip() == "chunked"
        self._left = 0 if self._chunked else int(content_length or 0)
        self._chunk_left = 0
        self.finished = not self._chunked and self._left == 0
        self.bytes_read = 0
        if not self._chunked and self._left < 0:
            raise BodyError("negative Content-Length")

    @property
    def declared_length(self) -> int | None:
        """Content-Length, or None for chunked bodies."""
        return None if self._chunked else self._left + self.bytes_read

    def read_chunk(self) -> bytes:
        """The next piece of the body; ``b""`` once it is complete."""
        if self.finished:
            return b""
        data = self._read_chunked() if self._chunked else self._read_plain()
        self.bytes_read += len(data)
        if self._pace is not None:
            self._pace(len(data))
        return data

    def _read_plain(self) -> bytes:
        data = self._rfile.read(min(CHUNK, self._left))
        if not data:
            raise BodyError("body shorter than Content-Length")
        self._left -= len(data)
        if self._left == 0:
            self.finished = True
        return data

    def _read_chunked(self) -> bytes:
        if self._chunk_left == 0:
            line = self._rfile.readline(1024)
            if not line:
                raise BodyError("truncated chunked body")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise BodyError("bad chunk size") from exc
            if size == 0:
                while True:  # trailers up to the blank line
                    trailer = self._rfile.readline(8192)
                    if trailer in (b"\r\n", b"\n", b""):
                        break
                self.finished = True
                return b""
            self._chunk_left = size
        data = self._rfile.read(min(CHUNK, self._chunk_left))
        if not data:
            raise BodyError("truncated chunk")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self._rfile.readline(8)  # CRLF after the chunk
        return data

    def drain(self, limit: int) -> bool:
        """Read and discard the rest of the body, up to ``limit`` bytes; True if all read."""
        try:
            while not self.finished:
                if self.bytes_read > limit:
                    return False
                self.read_chunk()
        except (BodyError, OSError):
            return False
        return True


@dataclass
class UploadedFile:
    """What the emulator keeps of a file part."""

    field_name: str
    filename: str
    size: int = 0
    sha256: str = ""
    head: bytes = b""


@dataclass
class ParsedForm:
    """Fields and files of a create request.

    ``too_large`` means a file passed ``max_file_bytes`` and reading stopped there
    (the rest of the body is unread: the connection must be closed).
    """

    fields: dict[str, list[str]] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)
    too_large: bool = False

    def first(self, name: str) -> str | None:
        """First value of a field, or None."""
        values = self.fields.get(name)
        return values[0] if values else None


class _TooLarge(Exception):
    pass


class _MultipartCollector:
    """python_multipart callbacks that hash file parts and keep small fields."""

    def __init__(self, max_file_bytes: int) -> None:
        self.form = ParsedForm()
        self._max = max_file_bytes
        self._headers: dict[bytes, bytes] = {}
        self._hname = b""
        self._hvalue = b""
        self._name = ""
        self._file: UploadedFile | None = None
        self._hash = hashlib.sha256()
        self._value = bytearray()

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": self.header_field,
            "on_header_value": self.header_value,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
        }

    def part_begin(self) -> None:
        self._headers = {}
        self._hname = self._hvalue = b""
        self._file = None
        self._value = bytearray()

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def header_end(self) -> None:
        self._headers[self._hname.lower()] = self._hvalue
        self._hname = self._hvalue = b""

    def headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in params:
            self._file = UploadedFile(self._name, params[b"filename"].decode("utf-8", "replace"))
            self._hash = hashlib.sha256()

    def part_data(self, data: bytes, start: int, end: int) -> None:
        piece = data[start:end]
        if self._file is None:
            if len(self._value) + len(piece) > FIELD_LIMIT:
                raise BodyError(f"field {self._name!r} too long")
            self._value += piece
            return
        f = self._file
        f.size += len(piece)
        if f.size > self._max:
            self.form.too_large = True
            raise _TooLarge()
        if len(f.head) < SNIFF_BYTES:
            f.head += piece[: SNIFF_BYTES - len(f.head)]
        self._hash.update(piece)

    def part_end(self) -> None:
        if self._file is not None:
            self._file.sha256 = self._hash.hexdigest()
            self.form.files.append(self._file)
        else:
            self.form.fields.setdefault(self._name, []).append(self._value.decode("utf-8", "replace"))


def read_form(body: BodyStream, content_type: str | None, max_file_bytes: int) -> ParsedForm:
    """Parse a multipart or url-encoded body; raises ``BodyError`` if malformed.

    Other content types yield an empty form (so validation answers 400).
    """
    ctype, params = parse_options_header(content_type or "")
    if ctype == b"multipart/form-data":
        boundary = params.get(b"boundary")
        if not boundary:
            raise BodyError("multipart body without boundary")
        collector = _MultipartCollector(max_file_bytes)
        parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
        try:
            while True:
                chunk = body.read_chunk()
                if not chunk:
                    break
                parser.write(chunk)
            parser.finalize()
        except _TooLarge:
            return collector.form
        except BodyError:
            raise
        except Exception as exc:  # python_multipart raises its own error types
            raise BodyError(f"bad multipart body: {exc}") from exc
        return collector.form
    if ctype == b"application/x-www-form-urlencoded":
        raw = bytearray()
        while True:
            chunk = body.read_chunk()
            if not chunk:
                break
            raw += chunk
            if len(raw) > FIELD_LIMIT:
                raise BodyError("url-encoded body too long")
        form = ParsedForm()
        form.fields = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        return form
    body.drain(FIELD_LIMIT)
    return ParsedForm()

"""The upload's body as httpx sends it: the multipart stream in fewer, larger writes, which
also says when its last byte was handed on (the answer's deadline starts then), and can hold
its last piece back until the caller lets it go (`before_last`): the service cannot make a
task before it has the whole body, so uploads may cross the line side by side while only
one at a time can be turned into a task whose answer we have not yet recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

__all__ = ["Coalesced", "close_upload"]


class Coalesced(httpx.AsyncByteStream):
    """httpx's multipart body, in writes of up to 64 KiB instead of one per part.

    Measured: a small upload went out in 14 socket sends, each through anyio's cancel
    scopes, which made create the costliest call of a file (1.9 ms of CPU). Joining the
    small pieces makes it one send; memory stays bounded by the chunk size.
    """

    def __init__(self, inner: Any, chunk_bytes: int = 64 * 1024) -> None:
        self._inner = inner
        self._chunk_bytes = chunk_bytes
        self.on_end: Callable[[], None] | None = None  # told when the last byte has been handed on
        self.before_last: Callable[[], Awaitable[None]] | None = None  # awaited before the last piece

    async def __aiter__(self) -> AsyncIterator[bytes]:
        pending: list[bytes] = []
        size = 0
        held: bytes | None = None  # one whole piece is kept back until the next shows it is not the last
        async for piece in self._inner:
            pending.append(piece)
            size += len(piece)
            if size >= self._chunk_bytes:
                if held is not None:
                    yield held
                held, pending, size = b"".join(pending), [], 0
        if pending:
            if held is not None:
                yield held
            held = b"".join(pending)
        if held is not None:
            if self.before_last is not None:
                await self.before_last()
            yield held
        if self.on_end is not None:
            self.on_end()

    @property
    def fields(self) -> Any:
        """The inner stream's parts, so the upload's file handle can still be closed."""
        return getattr(self._inner, "fields", ())

    async def aclose(self) -> None:
        close = getattr(self._inner, "aclose", None)
        if close is not None:
            await close()


def close_upload(request: httpx.Request) -> None:
    """Close the file object handed to httpx for a multipart upload."""
    stream = request.stream
    for field in getattr(stream, "fields", ()):
        handle = getattr(field, "file", None)
        if handle is not None and hasattr(handle, "close"):
            handle.close()

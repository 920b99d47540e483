"""The only code that talks to the paid PicWish OCR service: create, query, download.

Every call to the API host first takes a token from one shared :class:`TokenBucket`, so
the key's rate limit holds however many files are in flight, and passes the bucket's gate
right before its headers are written (httpcore's ``trace`` hook), so no two requests'
headers leave closer than ``(1 + margin)/rate``; a 429 slows the bucket and the same
request is sent again (a 429'd create created nothing). Every other failure is
translated once, by :mod:`ocr_watch.api.answers`, into the tree in :mod:`ocr_watch.api.errors`.

The API key travels only in an ``X-API-KEY`` header added to each API-host request; it is
never a client-wide header, never sent to the result host, never followed through a
redirect, and never appears in a message or ``repr``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import mimetypes
import pathlib
import socket
import time
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import IO, Any, cast

import httpx

from ocr_watch.fsops import AtomicFile
from ocr_watch.intake.identity import FileStamp
from ocr_watch.intake.source import SentReader
from ocr_watch.recorder import NULL, Recorder

from .answers import (
    Kind,
    decode,
    parse_retry_after,
    raise_for_download_status,
    raise_for_status,
    raise_for_task_state,
    raise_transport,
    read_credits,
    safe_url,
)
from .body import Coalesced, close_upload
from .errors import RateLimited, ServerError
from .models import CreateOptions, Task
from .ratelimit import TokenBucket
from .throttled import RateLimitLog

__all__ = ["DEFAULT_RATE_MARGIN", "DEFAULT_TIMEOUT", "PicWishClient", "Upload", "raise_for_task_state"]

# connect: a healthy service answers fast; write/read are per socket operation, so 120 s
# survives a stalled slow link during a 200 MB upload and the service's wait before it
# answers a large create; pool: how long a call may wait for a free connection.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=120.0, pool=60.0)
# httpx's read timeout is per read: an answer trickling a byte every 20 s never trips it.
# These bound a call's whole life instead (config: api.answer_timeout_seconds,
# api.download_min_bytes_per_second).
DEFAULT_ANSWER_TIMEOUT_S = 60.0  # from the request sent whole (a create: its upload) to the answer read whole
DEFAULT_DOWNLOAD_MIN_BPS = 16 * 1024.0  # a result download slower than this on average is abandoned...
DOWNLOAD_GRACE_S = 30.0  # ...once this much time has passed (a slow start is not a stall)

# Two API requests' headers leave at least (1 + this)/rate apart (config: api.rate_margin):
# what a strict gateway needs to never see two closer than 1/rate; measured with
# bench/throughput.py --limiter gateway. A fraction, not seconds: its cost is the same share
# of the quota at any rate.
DEFAULT_RATE_MARGIN = 0.02

_TASKS_PATH = "/api/tasks/document/ocr"
# The account's balance: seen in public client code, not in the OCR reference (answers.read_credits).
_CREDITS_PATH = "/api/customers/package-credits"
_CHUNK_BYTES = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Upload:
    """A created task and what the service was sent for it: ``sha256`` of the bytes uploaded
    (None if the service answered before reading them all), the file's stamp at open."""

    task_id: str
    sha256: str | None
    stamp: FileStamp


API_CONNECTIONS = 8
# An upload's bytes wait in our process, not by the megabyte in the kernel's send buffer:
# the body's last piece (body.py: before_last) is then sent when the line has nearly carried
# the rest, so the answer gate it takes is held for a round trip, not for seconds of
# buffered upload. Bytes in flight are not limited, so a long fast line is not slowed.
_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", None)
_UPLOAD_SOCKET_OPTIONS = [] if _NOTSENT_LOWAT is None else [(socket.IPPROTO_TCP, _NOTSENT_LOWAT, 128 * 1024)]
RESULT_CONNECTIONS = 16


class PicWishClient:
    """Async client for one API key; use as ``async with PicWishClient(...) as client``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        requests_per_second: float = 2.0,
        burst: float = 1.0,
        margin: float = DEFAULT_RATE_MARGIN,
        timeout: httpx.Timeout | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_rate_limit_retries: int = 20,
        answer_timeout_s: float = DEFAULT_ANSWER_TIMEOUT_S,
        download_min_bps: float = DEFAULT_DOWNLOAD_MIN_BPS,
        recorder: Recorder = NULL,
    ) -> None:
        """`recorder`: told of every request's answer (its HTTP status), for the metrics."""
        if not api_key:
            raise ValueError("api_key must not be empty")
        self.answer_timeout_s = answer_timeout_s
        self._recorder = recorder
        self.download_min_bps = download_min_bps
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._max_rate_limit_retries = max_rate_limit_retries
        self.bucket = TokenBucket(requests_per_second, burst, margin=margin)
        # No default headers: the key is added per request, to API-host calls only.
        # API calls are small and spaced by the bucket, so a few kept-alive connections
        # serve them; a small pool is also cheap, since httpcore checks every pooled
        # connection on each request (measured: the costliest part of a query with 64
        # tasks in flight sharing one large pool).
        limits = httpx.Limits(max_connections=API_CONNECTIONS, max_keepalive_connections=API_CONNECTIONS)
        self._http = httpx.AsyncClient(
            timeout=timeout or DEFAULT_TIMEOUT,
            transport=transport or httpx.AsyncHTTPTransport(limits=limits, socket_options=_UPLOAD_SOCKET_OPTIONS),
            follow_redirects=False,
            limits=limits,
        )
        # Results come from another host and never carry the key. Their own client means
        # no header of the API's can reach it, and a long download never holds a
        # connection that an API call is waiting for.
        self._results = httpx.AsyncClient(
            timeout=timeout or DEFAULT_TIMEOUT,
            transport=transport,
            follow_redirects=True,
            limits=httpx.Limits(max_connections=RESULT_CONNECTIONS, max_keepalive_connections=RESULT_CONNECTIONS),
        )
        self._calls: Counter[str] = Counter()
        self._rate_limited = 0
        self._retries = 0
        self._throttles = RateLimitLog()

    def __repr__(self) -> str:
        return f"PicWishClient(base_url={self._base_url!r}, api_key='***', bucket={self.bucket!r})"

    async def __aenter__(self) -> PicWishClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._http.aclose()
        await self._results.aclose()

    @property
    def stats(self) -> dict[str, Any]:
        """Calls by kind, 429s received, internal retries, and the bucket's counters."""
        return {
            "calls": dict(self._calls),
            "rate_limited": self._rate_limited,
            "retries": self._retries,
            "bucket": self.bucket.stats,
        }

    def set_rate(self, requests_per_second: float) -> None:
        """Space calls for this rate from now on (a reload of api.requests_per_second)."""
        self.bucket.set_rate(requests_per_second)

    # -- API host ----------------------------------------------------------------------

    async def create_task(
        self, source: pathlib.Path, options: CreateOptions, *, priority: int = 0
    ) -> str:
        """Upload ``source`` (streamed, never held in memory) and return the new task id.

        A missing or unreadable source raises ``OSError``: that is the caller's file, not
        the service.
        """
        return (await self.upload(source, options, priority=priority)).task_id

    async def upload(self, source: pathlib.Path, options: CreateOptions, *, priority: int = 0,
                     before_last: Callable[[], Awaitable[None]] | None = None) -> Upload:
        """Like :meth:`create_task`, and say what was sent: the SHA-256 of the very bytes the
        service received and the file's stamp when they were read. Only a regular file is
        read (``NotRegularFile`` otherwise); one that shrinks meanwhile raises ``SourceChanged``.
        ``before_last`` is awaited before the body's last piece is sent (see body.py).
        """
        source = pathlib.Path(source)
        mime = mimetypes.guess_type(source.name)[0] or "application/octet-stream"
        url = self._base_url + _TASKS_PATH
        # The service only needs the extension; a name that is not UTF-8 must still encode.
        filename = source.name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        sent: list[SentReader] = []

        def build() -> httpx.Request:
            # A fresh reader per attempt: Content-Length is its size at open, and a retry
            # starts from byte 0 with a fresh hash.
            handle = SentReader(source)
            try:
                request = self._http.build_request(
                    "POST",
                    url,
                    data=options.form_fields(),
                    files={"image_file": (filename, cast(IO[bytes], handle), mime)},
                    headers=self._key_header(),
                )
                request.stream = Coalesced(request.stream)
                request.stream.before_last = before_last
            except BaseException:
                handle.close()
                raise
            sent.append(handle)
            return request

        body, _ = await self._call("create", build, priority)
        data = body.get("data")
        task_id = data.get("task_id") if isinstance(data, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise ServerError(
                "the service accepted the upload but returned no task id",
                status_code=200,
                ambiguous=True,
            )
        reader = sent[-1]
        # The answer came after the whole body (the service reads it before answering).
        return Upload(task_id=task_id, sha256=reader.sha256 if reader.complete else None, stamp=reader.stamp)

    async def get_task(self, task_id: str, *, priority: int = 0) -> Task:
        """Query a task; returns it whatever its state (see :func:`raise_for_task_state`)."""
        url = f"{self._base_url}{_TASKS_PATH}/{urllib.parse.quote(task_id, safe='')}"

        def build() -> httpx.Request:
            return self._http.build_request("GET", url, headers=self._key_header())

        body, sent_at = await self._call("query", build, priority)
        data = body.get("data")
        if not isinstance(data, dict):
            raise ServerError("the service answered a task query without task data", status_code=200)
        message = body.get("message")
        task = Task.from_data(data, task_id=task_id, message=message if isinstance(message, str) else "")
        return dataclasses.replace(task, sent_at=sent_at)

    async def credits_left(self) -> int | None:
        """The credits left on the account, or None when the answer cannot be read. A refusal
        or a failure raises like any call (the caller treats it as unknown)."""

        def build() -> httpx.Request:
            return self._http.build_request("GET", self._base_url + _CREDITS_PATH, headers=self._key_header())

        body, _ = await self._call("credits", build, 0)
        return read_credits(body)

    def _key_header(self) -> dict[str, str]:
        return {"X-API-KEY": self._api_key}

    async def _trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: the bucket's gate just before an API request's headers go out
        (after any wait for a connection; httpcore writes them without yielding after this),
        and the time they went, taken after the write."""
        if event.endswith(".send_request_headers.started"):
            await self.bucket.before_send()
        elif event.endswith((".send_request_headers.complete", ".send_request_headers.failed")):
            self.bucket.sent()

    async def _call(
        self, kind: Kind, build: Callable[[], httpx.Request], priority: int
    ) -> tuple[dict[str, Any], float]:
        """Send one API request, absorbing 429s; return the parsed envelope of a 200 and
        the wall time that request was sent (after the token-bucket wait)."""
        attempt = 0
        while True:
            await self.bucket.acquire(priority)
            sent_at = time.time()
            self._calls[kind] += 1
            request: httpx.Request = build()
            request.extensions["trace"] = self._trace  # the bucket's gate, at the headers' write
            try:
                response = await self._send(kind, request)
            except BaseException:
                self._recorder.api_request(kind, "error")  # no answer: a transport error or a stop
                raise
            finally:
                close_upload(request)
            self._recorder.api_request(kind, str(response.status_code))
            body, status = decode(kind, response)
            if status == 429:
                self._rate_limited += 1
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                self._throttles.received(kind, retry_after)
                self.bucket.penalize(retry_after)
                if attempt >= self._max_rate_limit_retries:
                    raise RateLimited(
                        f"the service kept refusing requests as over the rate limit "
                        f"({attempt + 1} times in a row)",
                        status_code=429,
                        retry_after=retry_after,
                    )
                attempt += 1
                self._retries += 1
                continue
            self.bucket.note_success()  # not throttled, even if it failed otherwise
            if status != 200:
                raise_for_status(kind, status, body, self._api_key)
            return body, sent_at

    async def _send(self, kind: Kind, request: httpx.Request) -> httpx.Response:
        """Send and read the whole (small) answer; map transport errors once, here.

        The answer must be read whole within `answer_timeout_s` of the request being sent
        whole (a create's upload, which may take minutes on a slow line, is not counted);
        past that the call is abandoned like a timeout.

        A create that fails before its upload was sent whole cannot have made a task (the
        service cannot read a cut body): safe to send again. One whose answer was lost after
        that may have made one, and may be billed: it is `ambiguous`.
        """
        loop = asyncio.get_running_loop()
        sent_whole = False
        try:
            async with asyncio.timeout(None) as deadline:
                def arm() -> None:
                    nonlocal sent_whole
                    sent_whole = True
                    deadline.reschedule(loop.time() + self.answer_timeout_s)

                if isinstance(request.stream, Coalesced):
                    request.stream.on_end = arm  # armed when the upload's last byte is sent
                else:
                    arm()
                return await self._http.send(request)
        except TimeoutError:
            text = (f"the answer from {safe_url(request.url)} did not arrive whole within "
                    f"{self.answer_timeout_s:g} s (api.answer_timeout_seconds)")
            if kind == "create":
                text += "; the task may have been created"
            raise ServerError(text, ambiguous=kind == "create") from None
        except httpx.HTTPError as exc:
            raise_transport(kind, exc, sent_whole=sent_whole)

    # -- result host -------------------------------------------------------------------

    async def download_result(self, url: str, dest: pathlib.Path, *, mode: int = 0o666) -> int:
        """Fetch a result URL (no key, no token) into ``dest`` atomically; return bytes written.

        The body goes to a hidden temp file beside ``dest``, is checked against
        Content-Length, fsynced and renamed; the temp file is removed on any failure. ``mode``:
        its permission bits before the umask (the pool passes its source's). The
        fsyncs and the rename run in a thread: on a slow or network disk they take long
        enough to stall every other file's requests if done on the loop.
        """
        self._calls["download"] += 1
        with AtomicFile(pathlib.Path(dest), mode) as target:
            written = await self._stream_to(url, target.file)
        await asyncio.to_thread(target.commit)
        return written

    async def _stream_to(self, url: str, out: IO[bytes]) -> int:
        """Stream a result into `out`; abandoned once its average rate, after a grace
        period, falls below `download_min_bps` (a trickle never trips a per-read timeout)."""
        written = 0
        loop = asyncio.get_running_loop()
        started = loop.time()
        answered = False
        try:
            async with asyncio.timeout_at(started + DOWNLOAD_GRACE_S) as deadline:
                # Redirects are safe to follow here: no key is ever attached to this request.
                async with self._results.stream("GET", url) as response:
                    answered = True
                    self._recorder.api_request("download", str(response.status_code))
                    if response.status_code != 200:
                        await response.aread()
                        raise_for_download_status(response.status_code, safe_url(url))
                    async for chunk in response.aiter_bytes(_CHUNK_BYTES):
                        out.write(chunk)
                        written += len(chunk)
                        deadline.reschedule(started + DOWNLOAD_GRACE_S + written / self.download_min_bps)
                expected = response.headers.get("Content-Length")
                # Content-Length counts the bytes on the wire: those we wrote, unless the
                # body was content-encoded (then httpx's raw count is the one to compare).
                encoded = response.headers.get("Content-Encoding", "identity") != "identity"
                received = response.num_bytes_downloaded if encoded else written
        except TimeoutError:
            if not answered:
                self._recorder.api_request("download", "error")
            raise ServerError(
                f"the result download from {safe_url(url)} was slower than "
                f"{self.download_min_bps:g} bytes/s (api.download_min_bytes_per_second): "
                f"{written} bytes in {loop.time() - started:.0f} s", ambiguous=False) from None
        except httpx.HTTPError as exc:
            if not answered:
                self._recorder.api_request("download", "error")
            raise_transport("download", exc)
        if expected is not None and expected.isdigit() and int(expected) != received:
            raise ServerError(
                f"the result download from {safe_url(url)} was cut short "
                f"({received} of {expected} bytes)",
                ambiguous=False,
            )
        return written



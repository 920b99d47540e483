"""PicWishClient against httpx.MockTransport: mapping of every answer, key handling, retries."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ocr_watch.api import (
    AccountError,
    ApiError,
    CreateOptions,
    PermanentError,
    PicWishClient,
    RateLimited,
    ResultUnavailable,
    ServerError,
    ServiceUnreachable,
    TransientError,
    raise_for_task_state,
)

KEY = "mock-secret-key-123"
BASE = "https://api.example.test"
Handler = Callable[[httpx.Request], httpx.Response]


def envelope(status: int, message: str = "success", data: Any = None, http: int | None = None) -> httpx.Response:
    body = {"status": status, "message": message, "data": data if data is not None else {}}
    return httpx.Response(http if http is not None else status, json=body)


def run(handler: Handler, work: Callable[[PicWishClient], Any],
        **kwargs: Any) -> tuple[Any, list[httpx.Request], PicWishClient]:
    """Run ``work(client)`` with a client whose every request goes to ``handler``."""
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return handler(request)

    async def main() -> tuple[Any, PicWishClient]:
        kwargs.setdefault("requests_per_second", 1000.0)
        async with PicWishClient(BASE, KEY, transport=httpx.MockTransport(record), **kwargs) as client:
            return await work(client), client

    result, client = asyncio.run(main())
    return result, seen, client


def expect_error(handler: Handler, work: Callable[[PicWishClient], Any],
                 cls: type[ApiError]) -> tuple[ApiError, list[httpx.Request]]:
    caught: list[ApiError] = []

    async def guarded(client: PicWishClient) -> None:
        with pytest.raises(cls) as info:
            await work(client)
        caught.append(info.value)

    _, seen, _ = run(handler, guarded)
    exc = caught[0]
    assert KEY not in str(exc) and KEY not in repr(exc)
    return exc, seen


@pytest.fixture
def source(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "scan.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 1000)
    return path


def create(source: pathlib.Path) -> Callable[[PicWishClient], Any]:
    return lambda client: client.create_task(source, CreateOptions())


def query(client: PicWishClient) -> Any:
    return client.get_task("task-1")


class TestCreateAndQuery:
    def test_create_sends_key_fields_and_file(self, source: pathlib.Path) -> None:
        """The key is a per-request header; fields and the file part are in the body; no sync."""
        handler = lambda r: envelope(200, data={"task_id": "abc"})  # noqa: E731
        task_id, seen, client = run(handler, create(source))
        assert task_id == "abc"
        (request,) = seen
        assert request.url == f"{BASE}/api/tasks/document/ocr"
        assert request.headers["X-API-KEY"] == KEY
        body = request.content
        assert b'name="image_file"; filename="scan.png"' in body and b"x" * 1000 in body
        assert b'name="format"' in body and b'name="language"' in body
        assert b'name="sync"' not in body and b'name="password"' not in body
        assert "X-API-KEY" not in client._http.headers
        assert KEY not in repr(client)

    def test_query_parses_task(self) -> None:
        """get_task returns a Task for any state, including a failed one."""
        handler = lambda r: envelope(200, data={"task_id": "task-1", "state": -7})  # noqa: E731
        task, seen, _ = run(handler, query)
        assert task.state == -7 and task.is_failed
        assert seen[0].url.path == "/api/tasks/document/ocr/task-1"
        with pytest.raises(PermanentError) as info:
            raise_for_task_state(task)
        assert info.value.task_state == -7 and "corrupt" in str(info.value)

    @pytest.mark.parametrize(
        ("response", "cls", "status"),
        [
            (envelope(400, "invalid format"), PermanentError, 400),
            (envelope(401, "Unauthorized"), AccountError, 401),
            (envelope(402, "payment required"), AccountError, 402),
            (envelope(400, "Insufficient credits"), AccountError, 400),
            (envelope(403, "balance not enough", http=200), AccountError, 403),
            (envelope(404, "not found"), AccountError, 404),
            (envelope(413, "too large"), PermanentError, 413),
            (envelope(500, "oops"), ServerError, 500),
            (envelope(503, "busy", http=200), ServerError, 503),
            (httpx.Response(502, text="<html>bad gateway</html>"), ServerError, 502),
            (httpx.Response(200, text="not json"), ServerError, 200),
            (httpx.Response(200, json=["status", 200]), ServerError, 200),
            (envelope(200, data={"nothing": 1}), ServerError, 200),
            (httpx.Response(302, headers={"Location": "https://evil.test/"}), ServerError, 302),
        ],
    )
    def test_create_status_mapping(
        self, source: pathlib.Path, response: httpx.Response, cls: type[ApiError], status: int
    ) -> None:
        """Both HTTP status and body status are checked and mapped to what the caller can do."""
        exc, seen = expect_error(lambda r: response, create(source), cls)
        assert exc.status_code == status
        assert len(seen) == 1, "no redirect is followed and nothing is retried but 429"

    def test_query_404_is_result_unavailable(self) -> None:
        """A forgotten task is ResultUnavailable, not an account problem."""
        exc, _ = expect_error(lambda r: envelope(404, "task not found"), query, ResultUnavailable)
        assert exc.status_code == 404

    def test_ambiguity_of_lost_answers(self, source: pathlib.Path) -> None:
        """A lost create answer may have made a task; a lost query answer did nothing."""
        body_lost = lambda r: httpx.Response(200, text="not json")  # noqa: E731
        exc, _ = expect_error(body_lost, create(source), ServerError)
        assert isinstance(exc, TransientError) and exc.ambiguous
        exc, _ = expect_error(body_lost, query, ServerError)
        assert isinstance(exc, TransientError) and not exc.ambiguous


class TestTransportErrors:
    @pytest.mark.parametrize(
        ("error", "cls", "create_ambiguous"),
        [
            (httpx.ConnectError, ServiceUnreachable, False),
            (httpx.ConnectTimeout, ServiceUnreachable, False),
            (httpx.PoolTimeout, ServiceUnreachable, False),
            (httpx.ReadTimeout, ServerError, True),
            (httpx.ReadError, ServerError, True),
            (httpx.RemoteProtocolError, ServerError, True),
            (httpx.WriteError, ServerError, True),
        ],
    )
    def test_mapping(self, source: pathlib.Path, error: type[httpx.TransportError], cls: type[ApiError],
                     create_ambiguous: bool) -> None:
        """httpx errors become our classes, chained with `from`, ambiguous only for a create."""

        def boom(request: httpx.Request) -> httpx.Response:
            raise error(f"failed with headers {dict(request.headers)}", request=request)

        exc, _ = expect_error(boom, create(source), cls)
        assert isinstance(exc, TransientError) and exc.ambiguous is create_ambiguous
        assert isinstance(exc.__cause__, error)
        exc, _ = expect_error(boom, query, cls)
        assert isinstance(exc, TransientError) and not exc.ambiguous


    def test_a_create_cut_before_its_upload_was_sent_whole_is_not_ambiguous(self, source: pathlib.Path) -> None:
        """The service cannot make a task from a cut body: safe to send again, no possible charge."""

        class CutMidUpload(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                async for _ in request.stream:  # type: ignore[union-attr]
                    raise httpx.WriteError("connection reset mid-upload", request=request)
                raise AssertionError("the body had no chunk")

        async def main() -> ServerError:
            async with PicWishClient(BASE, KEY, transport=CutMidUpload(), requests_per_second=1000.0) as client:
                with pytest.raises(ServerError) as info:
                    await client.create_task(source, CreateOptions())
                return info.value

        exc = asyncio.run(main())
        assert not exc.ambiguous and "before the upload was sent whole" in exc.message


class TestRateLimit:
    def test_429_is_retried_and_penalizes(self, source: pathlib.Path) -> None:
        """Two 429s (one with Retry-After) are absorbed; the same upload is sent again whole."""
        answers = iter([
            httpx.Response(429, headers={"Retry-After": "0.05"}, json={"status": 429}),
            envelope(429, "too many", http=200),
            envelope(200, data={"task_id": "abc"}),
        ])
        task_id, seen, client = run(lambda r: next(answers), create(source))
        assert task_id == "abc" and len(seen) == 3
        assert all(b"x" * 1000 in r.content for r in seen)
        assert client.stats["rate_limited"] == 2 and client.stats["retries"] == 2
        assert client.bucket.stats["penalties"] == 2

    def test_429_forever_raises_rate_limited(self) -> None:
        """After max_rate_limit_retries the 429 surfaces as RateLimited with retry_after."""
        answer = lambda r: httpx.Response(429, headers={"Retry-After": "0"}, json={"status": 429})  # noqa: E731
        caught: list[RateLimited] = []

        async def work(client: PicWishClient) -> None:
            with pytest.raises(RateLimited) as info:
                await client.get_task("t")
            caught.append(info.value)

        _, seen, _ = run(answer, work, max_rate_limit_retries=3)
        assert len(seen) == 4 and caught[0].retry_after == 0.0 and caught[0].status_code == 429


class TestDownload:
    URL = "https://results.example.test/r/abc.txt?sig=SECRETSIG&expires=1"

    def test_no_key_no_token_atomic_write(self, tmp_path: pathlib.Path) -> None:
        """The result host never sees the key; no token is taken; the file lands whole."""
        dest = tmp_path / "out.txt"
        written, seen, client = run(lambda r: httpx.Response(200, content=b"hello" * 1000),
                                    lambda c: c.download_result(self.URL, dest))
        assert written == 5000 and dest.read_bytes() == b"hello" * 1000
        assert "X-API-KEY" not in seen[0].headers
        assert client.bucket.stats["granted"] == 0
        assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]

    def test_a_disk_error_making_the_rename_durable_is_raised(
        self, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A folder fsync that fails with EIO is the disk failing, not a filesystem that
        refuses folder fsyncs: the caller (the pool) must hear of it."""
        import errno
        import os
        import stat

        real_fsync = os.fsync

        def failing_for_folders(fd: int) -> None:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                raise OSError(errno.EIO, "I/O error")
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", failing_for_folders)
        dest = tmp_path / "out.txt"
        with pytest.raises(OSError) as caught:
            run(lambda r: httpx.Response(200, content=b"hello"), lambda c: c.download_result(self.URL, dest))
        assert caught.value.errno == errno.EIO
        assert dest.read_bytes() == b"hello"  # renamed whole; only its durability is in doubt

    def test_a_slow_fsync_does_not_hold_up_other_requests(
        self, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """On a network share an fsync can take seconds; it runs in a thread, so while the
        result's fsync is held a query goes out and is answered, and the file appears only
        once the fsync is let go. With the fsync on the loop, the query never leaves."""
        import os
        import stat
        import threading

        fsync_started, release = threading.Event(), threading.Event()
        real_fsync = os.fsync

        def held_for_files(fd: int) -> None:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                fsync_started.set()
                if not release.wait(5):
                    raise OSError("the test never released the fsync: it was blocking the loop")
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", held_for_files)
        dest = tmp_path / "out.txt"

        def answer(request: httpx.Request) -> httpx.Response:
            if request.url.host == "results.example.test":
                return httpx.Response(200, content=b"hello")
            return envelope(200, data={"task_id": "task-2", "state": 1})

        async def work(client: PicWishClient) -> tuple[Any, ...]:
            download = asyncio.create_task(client.download_result(self.URL, dest))
            assert await asyncio.to_thread(fsync_started.wait, 5)
            task = await client.get_task("task-2")
            present_while_held = dest.exists()
            release.set()
            return task.state, present_while_held, await download

        (state, present_while_held, written), seen, _ = run(answer, work)
        assert (state, present_while_held, written) == (1, False, 5)
        assert [r.url.host for r in seen] == ["results.example.test", "api.example.test"]
        assert dest.read_bytes() == b"hello"

    @pytest.mark.parametrize(
        ("response", "cls"),
        [
            (httpx.Response(403, text="expired"), ResultUnavailable),
            (httpx.Response(404, text="gone"), ResultUnavailable),
            (httpx.Response(500, text="oops"), ServerError),
            (httpx.Response(200, headers={"Content-Length": "100"}, content=b"x" * 50), ServerError),
        ],
    )
    def test_failures_leave_nothing(self, tmp_path: pathlib.Path, response: httpx.Response,
                                    cls: type[ApiError]) -> None:
        """Expired, gone, failed or short downloads raise and leave no file or temp file."""
        dest = tmp_path / "out.txt"
        exc, _ = expect_error(lambda r: response, lambda c: c.download_result(self.URL, dest), cls)
        assert "SECRETSIG" not in str(exc)
        if isinstance(exc, TransientError):
            assert not exc.ambiguous
        assert list(tmp_path.iterdir()) == []

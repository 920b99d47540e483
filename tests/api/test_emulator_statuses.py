"""Every status the service answers, over loopback against the emulator: what the client
raises or returns, and what the emulator received."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from ocr_watch.api import (
    AccountError,
    CreateOptions,
    PermanentError,
    PicWishClient,
    RateLimited,
    ResultUnavailable,
    ServerError,
    Task,
)
from ocr_watch.emulator import Emulator
from tests.api.conftest import error_of

Poll = Callable[[PicWishClient, str], Awaitable[Task]]


def statuses(emulator: Emulator, host: str = "api") -> list[Any]:
    return [r["status"] for r in emulator.requests() if r["host"] == host]


class TestBadRequest:
    @pytest.mark.parametrize(
        ("options", "reason"),
        [
            (CreateOptions(format="bmp"), "invalid format"),
            (CreateOptions(language="English,Klingon"), "unknown language: Klingon"),
            (CreateOptions(language=",".join(["English"] * 11)), "too many languages"),
            (CreateOptions(password="p" * 33), "password too long"),
            (CreateOptions(callback_url="ftp://example.test/cb"), "invalid callback_url"),
        ],
    )
    def test_400_is_permanent(self, emulator: Emulator, with_client: Any, make_file: Any, emu_key: str,
                              options: CreateOptions, reason: str) -> None:
        """Each validation rule answers 400: PermanentError with the service's reason; no task."""
        source = make_file()
        exc = error_of(with_client, lambda c: c.create_task(source, options), PermanentError, emu_key)
        assert exc.status_code == 400 and reason in str(exc)
        assert statuses(emulator) == [400]
        assert emulator.stats()["creates"] == 0

    def test_accepted_options_pass(self, emulator: Emulator, with_client: Any, make_file: Any) -> None:
        """The same fields within the rules are accepted (password and callback included)."""
        source = make_file()
        options = CreateOptions(format="docx", language="English,German", password="p" * 32,
                                callback_url="http://127.0.0.1:9/cb")
        task_id = with_client(lambda c: c.create_task(source, options))
        assert [t["task_id"] for t in emulator.tasks()] == [task_id]


class TestAccount:
    def test_401_wrong_key(self, emulator: Emulator, with_client: Any, make_file: Any) -> None:
        """A refused key is an AccountError (stop work, do not quarantine); no task is made."""
        source = make_file()
        wrong = "wrong-key-7f3a"
        exc = error_of(with_client, lambda c: c.create_task(source, CreateOptions()), AccountError,
                     wrong, api_key=wrong)
        assert exc.status_code == 401
        (entry,) = emulator.requests()
        assert entry["api_key_present"] and entry["status"] == 401
        assert emulator.stats()["creates"] == 0

    def test_402_out_of_credits(self, emulator: Emulator, with_client: Any, make_file: Any,
                                emu_key: str, poll_until_settled: Poll) -> None:
        """With one credit, the first file is billed and the second create is refused with 402."""
        emulator.update(credits=1)
        first, second = make_file(), make_file()

        async def work(client: PicWishClient) -> Task:
            task = await poll_until_settled(client, await client.create_task(first, CreateOptions()))
            with pytest.raises(AccountError) as info:
                await client.create_task(second, CreateOptions())
            assert info.value.status_code == 402 and "credits" in str(info.value)
            assert emu_key not in str(info.value)
            return task

        assert with_client(work).is_done
        stats = emulator.stats()
        assert stats["credits_spent"] == 1 and stats["credits_left"] == 0 and stats["creates"] == 1
        assert statuses(emulator)[-1] == 402


class TestNotFound:
    def test_404_unknown_task(self, emulator: Emulator, with_client: Any, emu_key: str) -> None:
        """Querying a task the service never had is ResultUnavailable (task forgotten)."""
        exc = error_of(with_client, lambda c: c.get_task("00000000-0000-4000-8000-000000000000"),
                     ResultUnavailable, emu_key)
        assert exc.status_code == 404
        assert statuses(emulator) == [404]

    def test_404_after_retention(self, emulator: Emulator, with_client: Any, make_file: Any,
                                 emu_key: str, poll_until_settled: Poll) -> None:
        """A finished task the service has forgotten surfaces as ResultUnavailable while polling."""
        emulator.update(task_retention_seconds=0.0)
        source = make_file()

        async def work(client: PicWishClient) -> None:
            task_id = await client.create_task(source, CreateOptions())
            await poll_until_settled(client, task_id)

        exc = error_of(with_client, work, ResultUnavailable, emu_key)
        assert exc.status_code == 404
        assert statuses(emulator)[-1] == 404
        assert emulator.tasks()[0]["forgotten"]

    def test_404_unknown_endpoint(self, emulator: Emulator, with_client: Any, make_file: Any,
                                  emu_key: str) -> None:
        """A wrong base URL is a setup problem (AccountError), not a reason to quarantine files."""
        source = make_file()
        exc = error_of(with_client, lambda c: c.create_task(source, CreateOptions()), AccountError,
                     emu_key, base_url=emulator.base_url.rstrip("/") + "/v9")
        assert exc.status_code == 404
        assert emulator.stats()["creates"] == 0


class TestTooLarge:
    def test_413_streamed_upload_gets_the_answer(self, emulator: Emulator, with_client: Any,
                                                 make_file: Any, emu_key: str) -> None:
        """The emulator answers 413 mid-upload and closes; the client still reads the 413."""
        emulator.update(max_upload_bytes=64 * 1024)
        source = make_file(size=4 * 1024 * 1024)
        exc = error_of(with_client, lambda c: c.create_task(source, CreateOptions()), PermanentError, emu_key)
        assert exc.status_code == 413 and "too large" in str(exc)
        assert statuses(emulator) == [413]
        assert emulator.stats()["creates"] == 0

    def test_limit_is_inclusive(self, emulator: Emulator, with_client: Any, make_file: Any) -> None:
        """A file of exactly max_upload_bytes is accepted ("up to and including")."""
        emulator.update(max_upload_bytes=64 * 1024)
        source = make_file(size=64 * 1024)
        assert with_client(lambda c: c.create_task(source, CreateOptions()))
        assert emulator.stats()["creates"] == 1


class TestRateLimited:
    def test_429_burst_is_absorbed(self, emulator: Emulator, with_client: Any, make_file: Any,
                                   poll_until_settled: Poll) -> None:
        """Three 429s on create are retried inside the client; the file still succeeds, once."""
        emulator.add_fault("http_429", route="create", count=3)
        source = make_file()

        async def work(client: PicWishClient) -> tuple[Task, dict[str, Any]]:
            task = await poll_until_settled(client, await client.create_task(source, CreateOptions()))
            return task, client.stats

        task, stats = with_client(work)
        assert task.is_done
        assert stats["rate_limited"] == 3 and stats["retries"] == 3
        assert stats["bucket"]["penalties"] == 3
        creates = [r["status"] for r in emulator.requests() if r["method"] == "POST"]
        assert creates == [429, 429, 429, 200]
        assert emulator.stats()["creates"] == 1 and emulator.stats()["status_counts"]["429"] == 3

    def test_retry_after_is_honoured(self, emulator: Emulator, with_client: Any, make_file: Any) -> None:
        """After a 429 with Retry-After: 1 the retry reaches the service no sooner than 1 s later."""
        emulator.add_fault("http_429", route="create", count=1, retry_after=1)
        source = make_file()
        with_client(lambda c: c.create_task(source, CreateOptions()))
        first, second = emulator.requests()
        assert (first["status"], second["status"]) == (429, 200)
        assert second["t"] - first["t"] >= 0.95

    def test_429_outliving_retries_is_rate_limited(self, emulator: Emulator, with_client: Any,
                                                   emu_key: str) -> None:
        """With max_rate_limit_retries=2, a fourth 429 in a row never comes: RateLimited after 3."""
        emulator.add_fault("http_429", route="query", count=5)
        exc = error_of(with_client, lambda c: c.get_task("any"), RateLimited, emu_key,
                     max_rate_limit_retries=2)
        assert exc.status_code == 429
        assert statuses(emulator) == [429, 429, 429]

    def test_real_limiter_429s_are_absorbed(self, make_emulator: Callable[..., Emulator],
                                            with_client: Any, emu_key: str, make_file: Any) -> None:
        """A client set faster than the key allows gets real 429s and still finishes every call."""
        emu = make_emulator(requests_per_second=5.0, burst=1.0)
        source = make_file()

        async def work(client: PicWishClient) -> dict[str, Any]:
            task_id = await client.create_task(source, CreateOptions())
            for _ in range(4):
                await client.get_task(task_id)
            return client.stats

        stats = with_client(work, base_url=emu.base_url, requests_per_second=50.0)
        got = emu.stats()
        assert got["rate_limited"] > 0 and got["rate_limited"] == stats["rate_limited"]
        assert [r["status"] for r in emu.requests() if r["status"] != 429] == [200] * 5
        assert stats["bucket"]["effective_rate_per_s"] < 50.0


class TestServerErrors:
    @pytest.mark.parametrize("route", ["create", "query"])
    def test_500(self, emulator: Emulator, with_client: Any, make_file: Any, emu_key: str,
                 route: str) -> None:
        """HTTP 500 is a ServerError; an explicit 500 on create made no task, so not ambiguous."""
        emulator.add_fault("http_500", route=route)
        source = make_file()

        async def work(client: PicWishClient) -> Any:
            if route == "create":
                return await client.create_task(source, CreateOptions())
            return await client.get_task("any")

        exc = error_of(with_client, work, ServerError, emu_key)
        assert isinstance(exc, ServerError) and exc.status_code == 500 and not exc.ambiguous
        assert statuses(emulator) == [500]
        assert emulator.stats()["creates"] == 0

    def test_service_down_is_unreachable(self, with_client: Any, make_file: Any, emu_key: str) -> None:
        """Nothing listening: ServiceUnreachable, not ambiguous (the request never arrived)."""
        from ocr_watch.api import ServiceUnreachable

        source = make_file()
        exc = error_of(with_client, lambda c: c.create_task(source, CreateOptions()), ServiceUnreachable,
                     emu_key, base_url="http://127.0.0.1:9", timeout=httpx.Timeout(2.0))
        assert isinstance(exc, ServiceUnreachable) and not exc.ambiguous
        assert isinstance(exc.__cause__, httpx.ConnectError)

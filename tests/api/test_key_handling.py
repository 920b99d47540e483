"""The API key goes to the API host only: never to the result host, never into a repr,
an error message, or a log line (httpx's and httpcore's debug logs included)."""

from __future__ import annotations

import logging
import pathlib
from typing import Any

import httpx
import pytest
import structlog

from ocr_watch.api import ApiError, CreateOptions, PicWishClient
from ocr_watch.emulator import Emulator


def test_key_stays_on_the_api_host(emulator: Emulator, with_client: Any, make_file: Any, emu_key: str,
                                   poll_until_settled: Any, tmp_path: pathlib.Path,
                                   caplog: pytest.LogCaptureFixture) -> None:
    """A success and a run of failures: the key shows up in none of the places people read."""
    caplog.set_level(logging.DEBUG)
    errors: list[ApiError] = []
    reprs: list[str] = []

    async def attempt(coro: Any) -> Any:
        try:
            return await coro
        except ApiError as exc:
            errors.append(exc)
            return None

    async def work(client: PicWishClient) -> None:
        reprs.append(repr(client))
        reprs.append(repr(client.bucket))
        task = await poll_until_settled(client, await client.create_task(make_file(), CreateOptions()))
        await client.download_result(task.file_url, tmp_path / "ok.txt")
        emulator.add_fault("broken_download")
        await attempt(client.download_result(task.file_url, tmp_path / "broken.txt"))
        await attempt(client.create_task(make_file(), CreateOptions(format="nope", password="x" * 40)))
        for kind in ("http_500", "drop", "malformed_json", "body_500"):
            emulator.add_fault(kind, route="create")
            await attempt(client.create_task(make_file(), CreateOptions()))
        emulator.add_fault("http_429", route="query", count=3)
        await attempt(client.get_task("missing"))
        # By file name: an armed expired_url fault would go to whichever task completes next.
        expired_source = make_file(name="late__expired__.png")
        expired = await poll_until_settled(client, await client.create_task(expired_source, CreateOptions()))
        await attempt(client.download_result(expired.file_url, tmp_path / "expired.txt"))

    with structlog.testing.capture_logs() as structured:
        with_client(work, max_rate_limit_retries=1, timeout=httpx.Timeout(5.0))

    assert len(errors) == 8, "\n".join(repr(e) for e in errors)
    for text in [*reprs, *(str(e) for e in errors), *(repr(e) for e in errors), caplog.text, repr(structured)]:
        assert emu_key not in text
    assert "HTTP Request: POST" in caplog.text, "httpx logs were captured, so the check above means something"

    log = emulator.requests()
    api = [r for r in log if r["host"] == "api"]
    result = [r for r in log if r["host"] == "result"]
    assert api and all(r["api_key_present"] for r in api)
    assert len(result) == 3 and not any(r["api_key_present"] for r in result)
    assert emulator.stats()["downloads_with_api_key"] == 0


def test_no_client_wide_key_header(emulator: Emulator, emu_key: str) -> None:
    """The key is added per request, so no other request can inherit it."""
    client = PicWishClient(emulator.base_url, emu_key)
    assert emu_key not in repr(client)
    assert all(emu_key not in value for value in client._http.headers.values())

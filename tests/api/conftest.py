"""Fixtures for driving PicWishClient against the shared in-process emulator."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ocr_watch.api import PicWishClient, Task
from ocr_watch.emulator import Emulator

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def make_file(tmp_path: pathlib.Path) -> Callable[..., pathlib.Path]:
    """``make_file(name, size, head)``: a source file; PNG magic by default so it is accepted."""
    counter = iter(range(10_000))

    def make(name: str = "scan.png", size: int = 4096, head: bytes = PNG_MAGIC) -> pathlib.Path:
        folder = tmp_path / f"src{next(counter)}"
        folder.mkdir()
        path = folder / name
        # Distinct content per file, so the emulator never sees the same hash by accident.
        body = head + folder.name.encode()
        path.write_bytes(body + b"\0" * max(0, size - len(body)))
        return path

    return make


RunWithClient = Callable[..., Any]


@pytest.fixture
def with_client(emulator: Emulator, emu_key: str) -> RunWithClient:
    """``with_client(work, **client_kwargs)``: ``await work(client)`` in a fresh event loop.

    The client is fast by default (1000 req/s) because the emulator fixture has no limit.
    """

    def run(work: Callable[[PicWishClient], Awaitable[Any]], *, api_key: str | None = None,
            base_url: str | None = None, **kwargs: Any) -> Any:
        kwargs.setdefault("requests_per_second", 1000.0)

        async def main() -> Any:
            async with PicWishClient(base_url or emulator.base_url, api_key or emu_key, **kwargs) as client:
                return await work(client)

        return asyncio.run(main())

    return run


async def poll_until_settled(client: PicWishClient, task_id: str, timeout_s: float = 10.0) -> Task:
    """Poll as the pool would, until the task is done or failed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        task = await client.get_task(task_id)
        if not task.is_pending:
            return task
        if loop.time() > deadline:
            raise AssertionError(f"task {task_id} still pending after {timeout_s}s: {task}")
        await asyncio.sleep(0.05)


@pytest.fixture(name="poll_until_settled")
def poll_until_settled_fixture() -> Callable[[PicWishClient, str], Awaitable[Task]]:
    """The polling helper, as a fixture."""
    return poll_until_settled


def error_of(with_client: RunWithClient, work: Callable[[PicWishClient], Awaitable[Any]],
             cls: type[Exception], key: str = "emu-key", **kwargs: Any) -> Any:
    """Run ``work``, return the error of class ``cls`` it raised, and check ``key`` is nowhere in it."""
    caught: list[Exception] = []

    async def guarded(client: PicWishClient) -> None:
        with pytest.raises(cls) as info:
            await work(client)
        caught.append(info.value)

    with_client(guarded, **kwargs)
    exc = caught[0]
    assert key not in str(exc) and key not in repr(exc)
    return exc

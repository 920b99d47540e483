"""Every task state and every emulator fault, over loopback: the client's answer and the
emulator's record of what it received."""

from __future__ import annotations

import pathlib
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from ocr_watch.api import (
    CreateOptions,
    PermanentError,
    PicWishClient,
    ResultUnavailable,
    ServerError,
    Task,
    TaskState,
    raise_for_task_state,
)
from ocr_watch.emulator import Emulator
from tests.api.conftest import error_of

Poll = Callable[[PicWishClient, str], Awaitable[Task]]


class TestStates:
    def test_done_then_download(self, emulator: Emulator, with_client: Any, make_file: Any,
                                poll_until_settled: Poll, tmp_path: pathlib.Path) -> None:
        """State 1: the result is downloaded whole, without the key, and one credit is spent."""
        source = make_file()
        dest = tmp_path / "out" / "scan.txt"
        dest.parent.mkdir()

        async def work(client: PicWishClient) -> tuple[Task, int, dict[str, Any]]:
            task = await poll_until_settled(client, await client.create_task(source, CreateOptions()))
            raise_for_task_state(task)  # no-op for a good task
            return task, await client.download_result(task.file_url or "", dest), client.stats

        task, written, stats = with_client(work)
        assert task.state == TaskState.DONE and task.progress == 100 and task.is_done
        assert written == dest.stat().st_size == task.output_size
        assert dest.read_bytes().startswith(b"ocr-watch emulator result")
        assert sorted(p.name for p in dest.parent.iterdir()) == ["scan.txt"]
        assert stats["calls"]["download"] == 1
        assert stats["bucket"]["granted"] == stats["calls"]["create"] + stats["calls"]["query"]
        got = emulator.stats()
        assert got["credits_spent"] == 1 and got["downloads"] == 1 and got["downloads_with_api_key"] == 0
        result_entries = [r for r in emulator.requests() if r["host"] == "result"]
        assert [(r["status"], r["api_key_present"]) for r in result_entries] == [(200, False)]

    @pytest.mark.parametrize("state", [-1, -2, -3, -5, -7, -8])
    def test_failure_states(self, emulator: Emulator, with_client: Any, make_file: Any,
                            poll_until_settled: Poll, state: int) -> None:
        """A failed task is returned, not raised; raise_for_task_state makes it Permanent; free."""
        emulator.add_fault("state", state=state)
        source = make_file()

        async def work(client: PicWishClient) -> Task:
            return await poll_until_settled(client, await client.create_task(source, CreateOptions()))

        task = with_client(work)
        assert task.state == state and task.is_failed and task.file_url is None
        with pytest.raises(PermanentError) as info:
            raise_for_task_state(task)
        assert info.value.task_state == state and "state" not in str(info.value)
        assert emulator.stats()["credits_spent"] == 0
        assert [t["state"] for t in emulator.tasks()] == [state]

    def test_unsupported_content_is_corrupt(self, emulator: Emulator, with_client: Any, make_file: Any,
                                            poll_until_settled: Poll) -> None:
        """Bytes that are no PDF, image or Office file end in state -7, whatever the name says."""
        source = make_file(name="notes.png", head=b"just some text, not an image\n")

        async def work(client: PicWishClient) -> Task:
            return await poll_until_settled(client, await client.create_task(source, CreateOptions()))

        task = with_client(work)
        assert task.state == TaskState.CORRUPT
        assert emulator.stats()["credits_spent"] == 0


class TestRequestFaults:
    @pytest.mark.parametrize(("kind", "route", "created", "ambiguous"), [
        ("drop", "create", 1, True),
        ("drop", "query", 1, False),
        ("malformed_json", "create", 1, True),
        ("malformed_json", "query", 1, False),
        ("body_500", "create", 0, False),
        ("body_500", "query", 1, False),
    ])
    def test_lost_or_bad_answers(self, emulator: Emulator, with_client: Any, make_file: Any,
                                 kind: str, route: str, created: int, ambiguous: bool) -> None:
        """A lost/garbled create answer is ambiguous (the task exists); a query's never is."""
        source = make_file()

        async def work(client: PicWishClient) -> None:
            if route == "query":
                task_id = await client.create_task(source, CreateOptions())
                emulator.add_fault(kind, route=route)
                await client.get_task(task_id)
            else:
                emulator.add_fault(kind, route=route)
                await client.create_task(source, CreateOptions())

        exc = error_of(with_client, work, ServerError)
        assert exc.ambiguous is ambiguous
        if kind == "body_500":
            assert exc.status_code == 500
        assert emulator.stats()["creates"] == created
        assert [r["fault"] for r in emulator.requests()][-1] == kind

    def test_slow_answer_within_timeout(self, emulator: Emulator, with_client: Any, make_file: Any) -> None:
        """A slow but timely answer is just an answer."""
        emulator.add_fault("slow", route="create", delay_s=0.3)
        source = make_file()
        assert with_client(lambda c: c.create_task(source, CreateOptions()),
                           timeout=httpx.Timeout(5.0, read=2.0))
        assert emulator.requests()[0]["fault"] == "slow" and emulator.stats()["creates"] == 1

    @pytest.mark.parametrize(("route", "ambiguous"), [("create", True), ("query", False)])
    def test_slow_answer_past_read_timeout(self, emulator: Emulator, with_client: Any, make_file: Any,
                                           route: str, ambiguous: bool) -> None:
        """A read timeout on create is ambiguous: the emulator did create the task meanwhile."""
        source = make_file()

        async def work(client: PicWishClient) -> None:
            if route == "query":
                task_id = await client.create_task(source, CreateOptions())
                emulator.add_fault("slow", route="query", delay_s=1.0)
                await client.get_task(task_id)
            else:
                emulator.add_fault("slow", route="create", delay_s=1.0)
                await client.create_task(source, CreateOptions())

        exc = error_of(with_client, work, ServerError, timeout=httpx.Timeout(5.0, read=0.3))
        assert exc.ambiguous is ambiguous and isinstance(exc.__cause__, httpx.ReadTimeout)
        assert emulator.stats()["creates"] == 1


class TestDownloadFaults:
    def _done_task(self, client: PicWishClient, source: pathlib.Path, poll: Poll) -> Awaitable[Task]:
        async def go() -> Task:
            return await poll(client, await client.create_task(source, CreateOptions()))
        return go()

    def test_expired_url(self, emulator: Emulator, with_client: Any, make_file: Any,
                         poll_until_settled: Poll, tmp_path: pathlib.Path) -> None:
        """An expired URL (403) is ResultUnavailable; nothing is left on disk."""
        emulator.add_fault("expired_url")
        source = make_file()
        dest = tmp_path / "out.txt"

        async def work(client: PicWishClient) -> None:
            task = await self._done_task(client, source, poll_until_settled)
            await client.download_result(task.file_url or "", dest)

        exc = error_of(with_client, work, ResultUnavailable)
        assert exc.status_code == 403 and "expired" in str(exc) and "Signature" not in str(exc)
        assert not dest.exists() and not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
        assert [r["status"] for r in emulator.requests() if r["host"] == "result"] == [403]

    def test_broken_download_is_retryable(self, emulator: Emulator, with_client: Any, make_file: Any,
                                          poll_until_settled: Poll, tmp_path: pathlib.Path) -> None:
        """A download cut short raises a non-ambiguous ServerError, leaves no temp file, and a
        second try succeeds."""
        emulator.add_fault("broken_download")
        source = make_file()
        dest = tmp_path / "dl" / "out.txt"
        dest.parent.mkdir()

        async def work(client: PicWishClient) -> tuple[ServerError, int]:
            task = await self._done_task(client, source, poll_until_settled)
            with pytest.raises(ServerError) as info:
                await client.download_result(task.file_url or "", dest)
            assert list(dest.parent.iterdir()) == []
            return info.value, await client.download_result(task.file_url or "", dest)

        exc, written = with_client(work)
        assert not exc.ambiguous and written == dest.stat().st_size > 0
        assert list(dest.parent.iterdir()) == [dest]
        entries = [r for r in emulator.requests() if r["host"] == "result"]
        assert [r["fault"] for r in entries] == ["broken_download", None]
        assert not any(r["api_key_present"] for r in entries)

    @pytest.mark.parametrize("kind", ["http_500", "drop"])
    def test_result_host_failures(self, emulator: Emulator, with_client: Any, make_file: Any,
                                  poll_until_settled: Poll, tmp_path: pathlib.Path, kind: str) -> None:
        """A failing result host is a non-ambiguous ServerError; downloads take no API token."""
        source = make_file()
        dest = tmp_path / "out.txt"

        async def work(client: PicWishClient) -> tuple[ServerError, dict[str, Any]]:
            task = await self._done_task(client, source, poll_until_settled)
            emulator.add_fault(kind, route="download")
            granted = client.bucket.stats["granted"]
            with pytest.raises(ServerError) as info:
                await client.download_result(task.file_url or "", dest)
            assert client.bucket.stats["granted"] == granted
            return info.value, client.stats

        exc, _ = with_client(work)
        assert not exc.ambiguous and not dest.exists()
        assert [r["fault"] for r in emulator.requests() if r["host"] == "result"] == [kind]

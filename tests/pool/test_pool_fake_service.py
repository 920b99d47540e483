"""The pool against a fake OCR service: it needs only the `OcrService` protocol, so the
journey can be driven, and the service's part of it scripted, without a server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from ocr_watch.api import CreateOptions, ServerError, Task
from ocr_watch.api.client import Upload
from ocr_watch.intake.identity import sha256_file, stamp
from ocr_watch.journal import FileState
from ocr_watch.testing import png_bytes
from tests.pool.harness import Harness, finished

pytestmark = [pytest.mark.timeout(60), pytest.mark.anyio]

DONE, PROCESSING = 1, 4


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Bucket:
    rate_per_s = 100.0


class FakeService:
    """Creates one task a file; answers queries from `answers` (an ApiError is raised), then done."""

    def __init__(self, answers: list[int | ServerError] | None = None) -> None:
        self.bucket = Bucket()
        self.answers = list(answers or [])
        self.uploads: list[Path] = []
        self.queries: list[str] = []
        self.downloads: list[str] = []

    async def upload(self, source: Path, options: CreateOptions, *, priority: int = 0,
                     before_last: Callable[[], Awaitable[None]] | None = None) -> Upload:
        if before_last is not None:
            await before_last()
        self.uploads.append(source)
        return Upload(task_id=f"t{len(self.uploads)}", sha256=sha256_file(source), stamp=stamp(source))

    async def get_task(self, task_id: str, *, priority: int = 0) -> Task:
        self.queries.append(task_id)
        answer = self.answers.pop(0) if self.answers else DONE
        if isinstance(answer, ServerError):
            raise answer
        url = f"https://results.test/{task_id}.txt" if answer == DONE else None
        return Task(task_id, answer, 100 if answer == DONE else 40, url)

    async def download_result(self, url: str, dest: Path, *, mode: int = 0o666) -> int:
        self.downloads.append(url)
        data = f"text of {url}".encode()
        dest.write_bytes(data)
        return len(data)


def fast(root: Path, **values: object) -> Harness:
    return Harness(root, poll_min_interval_s=0.02, poll_max_interval_s=0.05, backoff_initial_s=0.02,
                   backoff_max_s=0.05, max_in_flight=4, **{"max_attempts": 5, **values})


async def test_a_fake_service_carries_a_file_to_the_outbox(tmp_path: Path) -> None:
    harness = fast(tmp_path)
    config, journal = harness.place, harness.journal
    data = png_bytes(1)
    row = harness.drop("a.png", data)
    service = FakeService([PROCESSING])
    pool = await harness.drive(service, finished(1), rows=[row])
    assert pool.stats.done == 1 and pool.stats.in_flight == 0
    assert service.uploads == [config.inbox / "a.png"] and service.queries == ["t1", "t1"]
    assert (config.outbox / "a.txt").read_bytes() == b"text of https://results.test/t1.txt"
    assert (config.archive / "a.png").read_bytes() == data
    assert journal.get(row.id).state is FileState.DONE


async def test_failed_queries_are_retried_without_counting_against_the_file(tmp_path: Path) -> None:
    harness = fast(tmp_path, max_attempts=4)
    journal = harness.journal
    row = harness.drop("b.png", png_bytes(2))
    service = FakeService([ServerError("boom", status_code=500)] * 3)
    pool = await harness.drive(service, finished(1), rows=[row])
    assert pool.stats.done == 1 and service.queries == ["t1"] * 4
    final = journal.get(row.id)
    assert final.state is FileState.DONE and final.attempts == 0


async def test_a_task_past_the_poll_timeout_is_quarantined_even_when_queries_only_fail(tmp_path: Path) -> None:
    harness = fast(tmp_path, task_timeout_s=0.2, max_attempts=1000)
    config = harness.place
    row = harness.drop("c.png", png_bytes(3))
    service = FakeService([ServerError("boom", status_code=502)] * 10_000)
    pool = await harness.drive(service, finished(1), rows=[row])
    assert pool.stats.quarantined == 1 and service.downloads == []
    report = json.loads((config.quarantine / "c.png.error.json").read_text())
    assert "poll.timeout_seconds" in report["reason"] and "the last query failed: boom" in report["reason"]
    queries = len(service.queries)
    await asyncio.sleep(0.3)  # the scenario: time passes, and the task is no longer queried
    assert len(service.queries) == queries

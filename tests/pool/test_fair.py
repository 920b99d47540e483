"""Fair share between jobs (issue 18): the queue window and the upload gate serve jobs in turn."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ocr_watch.journal import Journal, RowOptions
from ocr_watch.pool.gate import FairGate
from ocr_watch.pool.window import QueueWindow

STAMP = (10, 1_000, 42)
TXT = [RowOptions("txt", "English")]

pytestmark = [pytest.mark.timeout(30), pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_the_window_takes_jobs_in_turn_and_refills_each_from_the_journal(tmp_path: Path) -> None:
    """A busy job's backlog (most of it on disk) does not make a quiet job's file wait behind it."""
    journal = Journal(tmp_path / "journal.sqlite3")
    window = QueueWindow(journal, size=4)
    busy = [journal.add_file(f"b{n}.png", STAMP, TXT, job="busy")[0].id for n in range(10)]
    for row_id in busy:
        window.put(row_id, "busy")
    quiet = journal.add_file("q.png", STAMP, TXT, job="quiet")[0].id
    window.put(quiet, "quiet")
    taken = [await window.take() for _ in range(11)]
    assert taken[:2] == [(busy[0], "busy"), (quiet, "quiet")]
    assert [row_id for row_id, _ in taken[2:]] == busy[1:], "the rest of the backlog, in order, from the journal"
    assert window.empty


async def test_the_gate_hands_the_next_upload_to_the_next_job() -> None:
    gate = FairGate()
    order: list[str] = []
    release = asyncio.Event()

    async def upload(job: str, name: str) -> None:
        async with gate.hold(job):
            order.append(name)
            await release.wait()

    first = asyncio.create_task(upload("busy", "b0"))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(upload("busy", f"b{n}")) for n in range(1, 4)]
    await asyncio.sleep(0)
    waiting.append(asyncio.create_task(upload("quiet", "q")))
    cancelled = asyncio.create_task(upload("other", "never"))
    await asyncio.sleep(0)
    cancelled.cancel()
    release.set()
    await asyncio.gather(first, *waiting)
    assert order == ["b0", "b1", "q", "b2", "b3"]
    async with asyncio.timeout(1):  # a cancelled waiter left nothing behind: the gate is free
        async with gate.hold("other"):
            pass

"""A reload's settings reach the pool: a job's new on_success applies to files that end after
it, files keep the options they were admitted with (in their rows), and a new pool size lets
more files into flight."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from ocr_watch.api import CreateOptions
from ocr_watch.choices import OnSuccess
from ocr_watch.emulator import Emulator
from ocr_watch.intake.identity import stamp
from ocr_watch.journal import RowOptions
from ocr_watch.pool import Pool, PoolSettings
from ocr_watch.testing import png_bytes
from tests.pool.harness import Harness, finished

pytestmark = [pytest.mark.timeout(60), pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def reloaded(settings: PoolSettings, **changes: object) -> PoolSettings:
    return dataclasses.replace(settings, **changes)  # type: ignore[arg-type]


async def test_a_reload_changes_how_files_end_and_never_what_they_were_admitted_with(
        tmp_path: Path, emulator: Emulator) -> None:
    """Options are in the rows (fixed at admission): a file admitted before a reload is sent
    as admitted; the job's new on_success applies to every file that ends after it."""
    harness = Harness(tmp_path, emulator)
    before = harness.drop("before.png", png_bytes(1))  # admitted as txt
    path = harness.inbox / "after.png"
    path.write_bytes(png_bytes(2))
    after = harness.journal.add_file("after.png", stamp(path).key, [RowOptions("docx", "English", "pw")])[0]
    new = reloaded(harness.settings, places={"default": dataclasses.replace(harness.place,
                                                                              on_success=OnSuccess.KEEP)})
    assert harness.settings.update(new) == ["places"]
    assert (before.options_key, after.options_key) == ("txt|ChinesePRC,English,Digits", "docx|English")
    await harness.run(finished(2), rows=[before, after])
    assert sorted(p.name for p in harness.outbox.iterdir()) == ["after.docx", "before.txt"]
    asked = sorted((t["format"], t["password"]) for t in emulator.tasks())
    assert asked == [("docx", "pw"), ("txt", None)]
    assert sorted(p.name for p in harness.inbox.iterdir()) == ["after.png", "before.png"]


def test_a_rows_create_options_are_its_own_and_the_callback_url_the_pools(tmp_path: Path) -> None:
    harness = Harness(tmp_path, callback_url="https://cb.example/x?t=1")
    row = harness.journal.add_file("a.png", (1, 2, 3), [RowOptions("pdf", "German", "pw", 0)])[0]
    assert harness.settings.create_options(row) == CreateOptions(
        format="pdf", language="German", password="pw", callback_url="https://cb.example/x?t=1")
    unfixed = harness.journal.add("b.png", (1, 2, 4), "txt|English")  # an older row, not resumed
    with pytest.raises(RuntimeError, match="no options fixed"):
        harness.settings.create_options(unfixed)


async def test_a_larger_pool_takes_more_files_into_flight(tmp_path: Path, emulator: Emulator) -> None:
    """max_in_flight 1 -> 3 while the first file is processing (1 s): the other two are created
    before it is done, not after."""
    emulator.update(processing_seconds=1.0)
    harness = Harness(tmp_path, emulator, max_in_flight=1)
    rows = [harness.drop(f"{n}.png", png_bytes(n)) for n in range(3)]
    scheduled: list[object] = []

    def until(pool: Pool) -> bool:
        if not scheduled:  # first call, as the pool starts: grow it 0.3 s into the first task
            scheduled.append(asyncio.get_running_loop().call_later(
                0.3, pool.reconfigure, reloaded(harness.settings, max_in_flight=3)))
        return pool.stats.done == 3

    await harness.run(until, rows=rows)
    tasks = sorted(emulator.tasks(), key=lambda t: t["created_t"])
    first_done = tasks[0]["done_t"]
    assert len(tasks) == 3 and all(t["created_t"] < first_done for t in tasks[1:]), tasks

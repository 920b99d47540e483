"""A reload's settings reach the pool: files admitted after it use the new OCR options, files
admitted before it keep theirs (format and language are in their row), and a new pool size
lets more files into flight."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from ocr_watch.api import CreateOptions
from ocr_watch.choices import OnSuccess
from ocr_watch.emulator import Emulator
from ocr_watch.pool import Pool, PoolSettings
from ocr_watch.testing import png_bytes
from tests.pool.harness import Harness, finished

pytestmark = [pytest.mark.timeout(60), pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def reloaded(settings: PoolSettings, **changes: object) -> PoolSettings:
    return dataclasses.replace(settings, **changes)  # type: ignore[arg-type]


async def test_files_admitted_before_a_reload_keep_their_format_and_after_it_take_the_new(
        tmp_path: Path, emulator: Emulator) -> None:
    harness = Harness(tmp_path, emulator)
    before = harness.drop("before.png", png_bytes(1))  # admitted as txt
    new = reloaded(harness.settings, create_options=CreateOptions(format="docx", language="English"),
                   on_success=OnSuccess.KEEP)
    assert harness.settings.update(new) == ["on_success", "create_options"]
    after = harness.drop("after.png", png_bytes(2))  # admitted as docx
    assert (before.options_key, after.options_key) == ("txt|ChinesePRC,English,Digits", "docx|English")
    await harness.run(finished(2), rows=[before, after])
    assert sorted(p.name for p in harness.settings.outbox.iterdir()) == ["after.docx", "before.txt"]
    assert sorted(t["format"] for t in emulator.tasks()) == ["docx", "txt"]
    # on_success: keep applies to both (a file's ending is decided when it ends).
    assert sorted(p.name for p in harness.settings.inbox.iterdir()) == ["after.png", "before.png"]


def test_options_of_a_row_come_from_its_key_and_the_password_is_todays() -> None:
    settings = PoolSettings(
        inbox=Path("/i"), outbox=Path("/o"), quarantine=Path("/q"), archive=Path("/a"), on_success=OnSuccess.ARCHIVE,
        create_options=CreateOptions(format="pdf", language="German", password="pw"), max_in_flight=1, max_uploads=1,
        queue_size=1, poll_min_interval_s=1, task_timeout_s=1, max_attempts=1, ambiguous_creates=1,
        backoff_initial_s=1, backoff_max_s=1)
    assert settings.options_for("txt|English,Digits") == CreateOptions(format="txt", language="English,Digits",
                                                                         password="pw")
    assert settings.options_for("garbled") == settings.create_options
    assert settings.format_of(settings.options_key) == "pdf"


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

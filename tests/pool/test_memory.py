"""The planner's memory file: recalled when sound, ignored with a reason when not, never fatal."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
import structlog

from ocr_watch.pool.memory import MAX_AGE_S, PlannerMemory
from ocr_watch.pool.planner import PollPlanner

pytestmark = pytest.mark.timeout(10)

NOW = 1_800_000_000.0


def learnt_planner() -> PollPlanner:
    planner = PollPlanner(min_interval_s=0.5)
    for duration in (8.0, 9.0, 10.0, 11.0):
        planner.record_done(duration, None)
    planner.first_outcome(True)
    return planner


def memory_at(path: Path, planner: PollPlanner | None = None, now: float = NOW) -> PlannerMemory:
    return PlannerMemory(path, planner or PollPlanner(min_interval_s=0.5), wall=lambda: now)


def test_a_saved_memory_is_recalled_by_the_next_run(tmp_path: Path) -> None:
    path = tmp_path / "state" / "planner.json"
    learnt = learnt_planner()
    memory_at(path, learnt).save()
    assert json.loads(path.read_text())["version"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["planner.json"]  # no temp left behind

    next_run = memory_at(path, now=NOW + 3600)
    with structlog.testing.capture_logs() as logs:
        assert next_run.load() is True
    assert next_run.planner.memory() == learnt.memory()
    assert next_run.planner.first_delay() == learnt.first_delay() > 8.0
    assert [e["event"] for e in logs] == ["planner_recalled"]


def test_nothing_learnt_writes_nothing_and_an_unchanged_memory_is_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "planner.json"
    memory_at(path).save()
    assert not path.exists()

    memory = memory_at(path, learnt_planner())
    memory.save()
    first = path.stat()
    os.utime(path, ns=(1, 1))
    memory.save()
    assert path.stat().st_mtime_ns == 1  # untouched
    memory.planner.record_done(12.0, None)
    memory.save()
    assert path.stat().st_ino != first.st_ino  # replaced by rename, not edited in place
    assert 12.0 in json.loads(path.read_text())["planner"]["durations"]


def test_a_missing_file_is_a_quiet_cold_start(tmp_path: Path) -> None:
    memory = memory_at(tmp_path / "planner.json")
    with structlog.testing.capture_logs() as logs:
        assert memory.load() is False
    assert logs == []
    assert memory.planner.learnt == 0


@pytest.mark.parametrize(("content", "reason"), [
    (b"{not json", "not JSON"),
    (b'{"version": 99, "saved_at": 1800000000, "planner": {}}', "not version 1"),
    (b'{"version": 1, "planner": {}}', "saved_at is missing"),
    (b'{"version": 1, "saved_at": NaN, "planner": {}}', "not a time"),
    (b'{"version": 1, "saved_at": 1800000000}', "planner is missing"),
    (b'{"version": 1, "saved_at": 1800000000, "planner": {"durations": [-3], "second_scale": 1}}',
     "durations must be"),
])
def test_an_unusable_file_is_ignored_with_its_reason(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "planner.json"
    path.write_bytes(content)
    memory = memory_at(path)
    with structlog.testing.capture_logs() as logs:
        assert memory.load() is False
    assert [(e["event"], e["log_level"]) for e in logs] == [("planner_memory_ignored", "warning")]
    assert reason in logs[0]["reason"]
    assert memory.planner.learnt == 0


def test_memory_older_than_a_week_is_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "planner.json"
    memory_at(path, learnt_planner()).save()
    stale = memory_at(path, now=NOW + MAX_AGE_S + 60)
    with structlog.testing.capture_logs() as logs:
        assert stale.load() is False
    assert "days old" in logs[0]["reason"]
    assert stale.planner.learnt == 0


def test_a_save_that_cannot_write_warns_and_carries_on(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    memory = memory_at(blocker / "planner.json", learnt_planner())
    with structlog.testing.capture_logs() as logs:
        memory.save()  # no exception
    assert [e["event"] for e in logs] == ["planner_memory_not_saved"]


def test_keep_saves_what_is_learnt_while_running(tmp_path: Path) -> None:
    path = tmp_path / "planner.json"
    memory = memory_at(path)

    async def scenario() -> None:
        keeper = asyncio.create_task(memory.keep(every_s=0.01))
        try:
            memory.planner.record_done(7.0, None)
            deadline = asyncio.get_running_loop().time() + 5
            while not path.exists():
                assert asyncio.get_running_loop().time() < deadline, "memory was never saved"
                await asyncio.sleep(0.01)
        finally:
            keeper.cancel()

    asyncio.run(scenario())
    assert json.loads(path.read_text())["planner"]["durations"] == [7.0]

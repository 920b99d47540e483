"""Admission on a real inbox and journal: what it admits, and that its disk reads stay off the loop."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ocr_watch.admission import Admission
from ocr_watch.journal import Journal, RowOptions

HOLD_S = 5.0


class Held:
    """``os.lstat`` (what admission reads) of one file name, once armed, waits until the test lets it go (a network
    share's round trip that does not end); if nobody does, it goes on after HOLD_S and notes
    that. ``answered`` counts the stats of that name that have returned."""

    def __init__(self, name: str, *, armed: bool = True) -> None:
        self.name = name
        self.armed = armed
        self.started = threading.Event()
        self.release = threading.Event()
        self.timed_out = False
        self.answered = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_stat = os.lstat

        def held_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
            if not os.fspath(path).endswith(os.sep + self.name):
                return real_stat(path, *args, **kwargs)
            if self.armed:
                self.started.set()
                if not self.release.wait(HOLD_S):
                    self.timed_out = True
            result = real_stat(path, *args, **kwargs)
            self.answered += 1
            return result

        monkeypatch.setattr(os, "lstat", held_stat)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.sqlite3")
    yield j
    j.close()


class Run:
    """Admission running on an event loop, and what it has enqueued."""

    def __init__(self, inbox: Path, journal: Journal, settle_s: float) -> None:
        self.queued: list[int] = []
        self.activity = asyncio.Event()
        self.admission = Admission(inbox, journal, self.queued.append, lambda rel: [RowOptions("txt", "English")],
                                   settle_s=settle_s, activity=self.activity)

    async def until(self, predicate: Callable[[], object], what: str, timeout: float = 10.0) -> None:
        """Wait, through admission's own activity signal, until ``predicate`` holds."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    self.activity.clear()
                    await self.activity.wait()
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


def run_admission(tmp_path: Path, journal: Journal, settle_s: float,
                  body: Callable[[Run], Awaitable[None]]) -> list[int]:
    """Run admission while ``body`` drives it; returns the enqueued row ids."""
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    run = Run(inbox, journal, settle_s)

    async def main() -> None:
        runner = asyncio.create_task(run.admission.run())
        try:
            await body(run)
        finally:
            runner.cancel()
            with pytest.raises(asyncio.CancelledError):
                await runner

    asyncio.run(main())
    return run.queued


@pytest.mark.timeout(30)
def test_a_slow_stat_does_not_hold_up_the_loop(
        tmp_path: Path, journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the stat of a reported file hangs, the loop goes on (here: it is the loop that
    lets the stat go), admission is not idle, and the file is admitted once the stat answers.
    With the stat on the loop, nothing lets it go until it gives up."""
    held = Held("slow.png")
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "slow.png").write_bytes(b"scan")
    held.install(monkeypatch)

    async def body(run: Run) -> None:
        asyncio.get_running_loop().call_soon(run.admission.report, "slow.png", "closed")
        assert await asyncio.to_thread(held.started.wait, HOLD_S)
        idle_while_held = run.admission.idle
        held.release.set()
        await run.until(lambda: run.queued, "slow.png admitted")
        assert not idle_while_held

    queued = run_admission(tmp_path, journal, 1.0, body)
    assert not held.timed_out, "the stat was let go only by its own timeout: it ran on the loop"
    row = journal.get(queued[0])
    assert (row.rel, row.size) == ("slow.png", 4)


@pytest.mark.timeout(30)
def test_the_settle_recheck_does_not_hold_up_the_loop(
        tmp_path: Path, journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file reported while still being written is stat'ed again when its settle time is up
    (a network share may send no event for the rest of it); that re-check is off the loop too."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "growing.png").write_bytes(b"sc")
    held = Held("growing.png", armed=False)
    held.install(monkeypatch)

    async def body(run: Run) -> None:
        run.admission.report("growing.png", "changed")
        await run.until(lambda: held.answered == 1, "growing.png read once")
        (inbox / "growing.png").write_bytes(b"scan, all of it")
        held.armed = True  # the next stat is the re-check after settle_s
        assert await asyncio.to_thread(held.started.wait, HOLD_S)
        held.release.set()
        await run.until(lambda: run.queued, "growing.png admitted")

    queued = run_admission(tmp_path, journal, 0.2, body)
    assert not held.timed_out, "the re-check ran on the loop"
    assert journal.get(queued[0]).size == len(b"scan, all of it")


@pytest.mark.timeout(30)
def test_the_last_report_in_a_batch_decides(tmp_path: Path, journal: Journal) -> None:
    """Reports that arrive together are read together, and the latest says what the file is:
    closed then written again waits to settle; closed then gone is not admitted; a file
    reported over and over is admitted once."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("rewritten.png", "vanished.png", "chatty.png"):
        (inbox / name).write_bytes(name.encode())

    async def body(run: Run) -> None:
        run.admission.report("rewritten.png", "closed")
        run.admission.report("rewritten.png", "changed")
        run.admission.report("vanished.png", "closed")
        (inbox / "vanished.png").unlink()
        run.admission.report("vanished.png", "gone")
        for _ in range(50):
            run.admission.report("chatty.png", "changed")
        run.admission.report("chatty.png", "closed")
        await run.until(lambda: len(run.queued) == 1, "chatty.png admitted")
        assert journal.get(run.queued[0]).rel == "chatty.png"
        await run.until(lambda: len(run.queued) == 2, "rewritten.png admitted after settling")
        await run.until(lambda: run.admission.idle, "admission idle")

    queued = run_admission(tmp_path, journal, 0.3, body)
    assert [journal.get(i).rel for i in queued] == ["chatty.png", "rewritten.png"]

"""Uploads side by side (pool.max_uploads) and backlogs that flow at once (issue 19)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from ocr_watch.emulator import Emulator, render_result
from ocr_watch.testing import PNG, Daemon, Workspace, png_bytes, sha256, wait_for


def _task_of(emulator: Emulator, name: str) -> dict:
    [task] = [t for t in emulator.tasks() if t["source_name"] == name]
    return task


@pytest.mark.timeout(60)
def test_a_small_file_dropped_during_a_big_upload_is_done_first(
    workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
) -> None:
    emulator.update(upload_bytes_per_second=2_000_000)  # the big file takes 2 s to cross
    daemon = daemon_factory(workspace.write_config()).start()
    daemon.wait_event("watching")
    big = PNG + b"\0" * 4_000_000
    workspace.drop("big.png", big)
    wait_for(lambda: emulator.stats()["create_requests"] >= 1, what="the big upload under way")
    small = png_bytes(1)
    workspace.drop("small.png", small)
    wait_for(lambda: (workspace.outbox / "big.txt").exists(), 30, what="the big file done")
    assert daemon.terminate() == 0
    assert _task_of(emulator, "small.png")["created_t"] < _task_of(emulator, "big.png")["created_t"]
    done = [e["file"] for e in daemon.events() if e.get("event") == "file_done"]
    assert done == ["small.png", "big.png"]
    assert (workspace.outbox / "small.txt").read_bytes() == render_result(sha256(small), "small.png", "txt")
    assert (workspace.outbox / "big.txt").read_bytes() == render_result(sha256(big), "big.png", "txt")


@pytest.mark.timeout(60)
def test_a_kill_with_several_uploads_in_flight_costs_at_most_one_create(
    workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
) -> None:
    """Four uploads under way, the first's task made and its answer held back: a kill -9 then
    leaves one task we never heard of, not four (the others never sent their last byte)."""
    emulator.add_fault("slow", route="create", count=4, delay_s=3.0)
    config = workspace.write_config(pool={"max_uploads": 4})
    sources = {f"k{n}.png": png_bytes(n) for n in range(4)}
    for name, data in sources.items():
        workspace.drop(name, data)
    daemon = daemon_factory(config).start()
    wait_for(lambda: emulator.stats()["create_requests"] >= 4 and emulator.stats()["creates"] >= 1, 20,
             what="four uploads under way, one task made")
    daemon.kill9()
    assert emulator.stats()["creates"] == 1, "only the upload holding the answer gate had sent its last byte"
    emulator.faults.clear()
    daemon = daemon_factory(config).start()
    wait_for(lambda: len(workspace.files(workspace.outbox)) == 4, 30, what="every file done")
    assert daemon.terminate() == 0
    tasks = emulator.tasks()
    assert len(tasks) == len(sources) + 1, "one extra create for the one kill"
    for name, data in sources.items():
        assert (workspace.outbox / name.replace(".png", ".txt")).read_bytes() == render_result(
            sha256(data), name, "txt")


@pytest.mark.timeout(60)
def test_a_backlog_starts_uploading_before_it_is_all_admitted(
    workspace: Workspace, daemon_factory: Callable[[Path], Daemon], emulator: Emulator
) -> None:
    """3,000 files waiting at start: the first task is created before the last file's row is
    written (admission goes 500 files a step; it used to admit all before the first upload)."""
    files = 3000
    for n in range(files):
        folder = workspace.inbox / f"d{n % 3}"
        folder.mkdir(exist_ok=True)
        (folder / f"f{n:05d}.png").write_bytes(png_bytes(n))
    config = workspace.write_config(watch={"settle_seconds": 2})  # files untouched that long: taken at once
    daemon = daemon_factory(config).start()
    journal = workspace.root / ".ocr-watch" / "inbox" / "journal.sqlite3"
    wait_for(lambda: journal.exists(), 10, what="the journal")

    def admitted() -> int:
        try:
            with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
                return int(db.execute("SELECT count(*) FROM files").fetchone()[0])
        except sqlite3.OperationalError:  # the file is there, its tables not yet
            return 0

    wait_for(lambda: admitted() == files, 30, 0.1, what="every file admitted")
    assert daemon.terminate() == 0
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        last_admitted = db.execute("SELECT max(first_seen) FROM files").fetchone()[0]
    first_created = min(t["created_t"] for t in emulator.tasks())
    assert first_created < last_admitted

"""What the pool tests share: folders, a journal, settings for fast tests, and a driver that runs
a pool over some OCR service until a condition holds (the emulator's client, or a fake)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ocr_watch.api import CreateOptions, PicWishClient
from ocr_watch.choices import OnSuccess
from ocr_watch.emulator import Emulator
from ocr_watch.intake.identity import stamp
from ocr_watch.journal import Journal, Row, RowOptions
from ocr_watch.pool import OcrService, Pool, PoolSettings
from ocr_watch.pool.settings import JobPlace
from ocr_watch.testing import EMU_KEY

__all__ = ["Harness", "finished"]


class Harness:
    """Folders and a journal under `root`; `emulator` (if any) is the service `run` talks to."""

    def __init__(self, root: Path, emulator: Emulator | None = None, **settings: Any) -> None:
        self.root = root
        self.emulator = emulator
        for name in ("inbox", "outbox", "quarantine", "archive"):
            (root / name).mkdir(exist_ok=True)
        self.place = JobPlace(name="default", inbox=root / "inbox", outbox=root / "outbox",
                              quarantine=root / "quarantine", archive=root / "archive", on_success=OnSuccess.ARCHIVE)
        self.inbox, self.outbox = self.place.inbox, self.place.outbox
        self.quarantine, self.archive = self.place.quarantine, self.place.archive
        values: dict[str, Any] = dict(
            places={"default": self.place},
            poll_min_interval_s=0.05, backoff_initial_s=0.05, backoff_max_s=0.2, max_attempts=3, ambiguous_creates=1,
            max_in_flight=32, max_uploads=4, queue_size=10_000, task_timeout_s=120.0,
        )
        values.update(settings)
        self.settings = PoolSettings(**values)
        self.journal = Journal(root / "state" / "journal.sqlite3")

    def drop(self, rel: str, data: bytes) -> Row:
        path = self.inbox / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        defaults = CreateOptions()
        return self.journal.add_file(rel, stamp(path).key, [RowOptions(defaults.format, defaults.language)])[0]

    async def run(self, until: Callable[[Pool], bool], *, key: str = EMU_KEY, rows: list[Row] | None = None,
                  resume: list[Row] | None = None, timeout: float = 20.0) -> Pool:
        """Run a pool against the emulator until `until(pool)`."""
        assert self.emulator is not None
        async with PicWishClient(self.emulator.base_url, key, requests_per_second=1000) as client:
            return await self.drive(client, until, rows=rows, resume=resume, timeout=timeout)

    async def drive(self, service: OcrService, until: Callable[[Pool], bool], *, rows: list[Row] | None = None,
                    resume: list[Row] | None = None, timeout: float = 20.0) -> Pool:
        """Run a pool over `service` until `until(pool)`, woken by its changes; then stop it."""
        changed = asyncio.Event()
        pool = Pool(self.journal, service, self.settings, on_change=changed.set)
        if resume:
            pool.resume(resume)
        for row in rows or []:
            pool.enqueue(row.id, row.job)
        runner = asyncio.create_task(pool.run())
        try:
            async with asyncio.timeout(timeout):
                while not until(pool):
                    changed.clear()
                    await changed.wait()
        finally:
            await pool.shutdown(1.0)
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        return pool

    def report(self, rel: str) -> dict[str, Any]:
        """The quarantine report of `rel`."""
        report: dict[str, Any] = json.loads((self.quarantine / f"{rel}.error.json").read_text())
        return report


def finished(n: int) -> Callable[[Pool], bool]:
    """Until `n` files are done or quarantined."""
    return lambda pool: pool.stats.done + pool.stats.quarantined >= n

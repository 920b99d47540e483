"""Keeps the inbox watched: the daemon's watch task.

Once a second (or at once, when the watcher says the inbox itself was deleted) it asks the
watcher's `health()`. A lost inbox (deleted, renamed away, replaced) is logged, its observer
stopped, and the configured path watched again as soon as it is a folder, followed by a
scan for what arrived meanwhile. A dead observer thread cannot be cured from inside: the
task fails with `WatcherDied`, the daemon stops, and systemd starts it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress

import structlog

from .observer import Health, InboxWatcher

__all__ = ["WatcherDied", "keep_watching"]

log = structlog.get_logger("ocr_watch.watch")

CHECK_EVERY_S = 1.0


class WatcherDied(RuntimeError):
    """The observer's thread ended without being stopped: no event would ever come again."""


async def keep_watching(watcher: InboxWatcher, rescan: Callable[[], object], *,
                        wake: asyncio.Event | None = None, every_s: float = CHECK_EVERY_S) -> None:
    """Run until cancelled; `wake` (set from the watcher's `on_trouble`) cuts a wait short."""
    wake = wake or asyncio.Event()
    while True:
        with suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), every_s)
        wake.clear()
        health = await asyncio.to_thread(watcher.health)
        if health is Health.DEAD:
            log.error("watcher_died", inbox=str(watcher.root), observer=watcher.kind,
                      action="exiting, to be restarted")
            raise WatcherDied(f"the inbox watcher's thread ({watcher.kind}) died; no more events would come")
        if health is Health.LOST:
            await _watch_again(watcher, rescan, every_s)


async def _watch_again(watcher: InboxWatcher, rescan: Callable[[], object], every_s: float) -> None:
    """Stop the lost watch, wait until the path is a folder again, watch it, then scan it."""
    log.warning("inbox_lost", inbox=str(watcher.root), action="waiting for it to be a folder again")
    await asyncio.to_thread(watcher.drop)
    while not await asyncio.to_thread(watcher.restart):
        await asyncio.sleep(every_s)
    log.info("watching_again", inbox=str(watcher.root), observer=watcher.kind)
    rescan()  # what arrived while nothing watched, or was already in a folder moved into place

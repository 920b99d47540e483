"""SIGHUP: read the configuration file again and apply what can change while files are in flight.

The file is read with the same loader as at start, and checked as `check-config` checks it;
an invalid file changes nothing and is logged (`config_reload_refused`) with the very lines
`check-config` would print. Otherwise each changed key is either applied for the files that
come next (`LIVE_KEYS`: the log level, the rate limit, the pool size, the watch timings, the
OCR options, on_success) or, if it needs a restart (folders, state_dir, the callback
listener, the API's address or key, and every other key), named in one
`config_reload_needs_restart` line and left as it was running. A reload never stops the
daemon: whatever goes wrong is logged and the running configuration is kept.

A file in flight keeps what it was admitted with (its format and language are in its journal
row; see pool/settings.py). systemd is told `RELOADING=1` (with `MONOTONIC_USEC`) before and
`READY=1` after, whatever the outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from ocr_watch import config as cfgmod
from ocr_watch.notify import Notifier

__all__ = ["LIVE_KEYS", "ReloadPlan", "Reloader", "plan_reload"]

log = structlog.get_logger("ocr_watch.reload")

# The keys a reload applies, as named within a job (a job's) or at the top level.
LIVE_KEYS = frozenset({
    "log_level", "on_success",
    "api.requests_per_second",
    "pool.max_in_flight",
    "watch.settle_seconds", "watch.poll_interval_seconds", "watch.rescan_seconds",
    "ocr.format", "ocr.language", "ocr.password",
})


@dataclass(frozen=True)
class ReloadPlan:
    """What a reload does: the configuration to run with, and the changed keys by fate."""

    config: cfgmod.Config  # the running one with the new file's values for the applied keys
    applied: list[str]
    needs_restart: list[str]


def plan_reload(running: cfgmod.Config) -> ReloadPlan:
    """Read `running.path` again; ConfigError with check-config's lines if it cannot be used,
    or with what `run` would refuse at start.

    Blocking (reads the file, looks at the folders): call it in a thread.
    """
    new = cfgmod.load_config(running.path)
    cfgmod.plan_folders(new)  # what check-config reports about the folders, read-only
    changes = cfgmod.changed(running, new)
    live = [change for change in changes if change.local in LIVE_KEYS]
    effective = cfgmod.take(running, new, live)
    cfgmod.prepare_folders(effective)  # on_success now archive: its folder is made, as at start
    return ReloadPlan(effective, [c.key for c in live], [c.key for c in changes if c.local not in LIVE_KEYS])


class Reloader:
    """Runs one reload at a time (a SIGHUP during one waits for it); `apply(config, keys)`
    carries the applied keys to the running parts (the daemon's)."""

    def __init__(self, running: cfgmod.Config, apply: Callable[[cfgmod.Config, list[str]], Awaitable[None]],
                 notifier: Notifier) -> None:
        self.config = running
        self._apply = apply
        self._notifier = notifier
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self) -> None:
        """From the signal handler: reload in a task of its own."""
        task = asyncio.get_running_loop().create_task(self.reload(), name="reload")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self) -> None:
        async with self._lock:
            self._notifier.reloading()
            try:
                await self._reload()
            finally:
                self._notifier.ready()

    async def _reload(self) -> None:
        path = str(self.config.path)
        try:
            plan = await asyncio.to_thread(plan_reload, self.config)
        except cfgmod.ConfigError as exc:
            log.error("config_reload_refused", path=path, problems=exc.problems,
                      action="nothing changed; the running configuration is kept")
            return
        except Exception:
            log.exception("config_reload_failed", path=path, action="nothing changed; the running configuration "
                                                                   "is kept")
            return
        if plan.needs_restart:
            log.warning("config_reload_needs_restart", path=path, keys=plan.needs_restart,
                        action="ignored until ocr-watch is restarted")
        try:
            await self._apply(plan.config, plan.applied)
        except Exception:
            log.exception("config_reload_failed", path=path, keys=plan.applied,
                          action="some keys may be applied; restart ocr-watch to be sure of all")
            return
        self.config = plan.config
        log.info("config_reloaded", path=path, applied=plan.applied)

    async def aclose(self) -> None:
        """Let a reload under way finish (it is short), at stop."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

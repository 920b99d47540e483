"""The jobs as the daemon serves them (issue 18): what daemon.py builds per job and per key.

- One pool per API key (pool/group.py says why): the jobs without a key of their own share
  the configuration's `api.key`, its client and token bucket, and so its quota; a job with
  its own `api.key` gets a client, a bucket and a pool of its own.
- One admission per job (its inbox, its name on every row); a file's options are resolved
  when it is admitted (its job's, or its first matching rule's) and kept in its rows, one
  row per format (`row_options`). Rows of an older journal, admitted before options were
  kept, get the options that version would have sent, at the first start (`fix_legacy`).
- Hooks: one runner for the daemon; a file's hook is submitted when its state is final
  (`HookDispatch`), with its facts, never its key or password.
- Watching: a watcher per job's inbox, its supervisor, and the rescans of every inbox
  (`Watches`); a reload changes their timings (`set_rescan`, `set_poll_interval`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from ocr_watch import config as cfgmod
from ocr_watch.api import PicWishClient
from ocr_watch.choices import OnSuccess
from ocr_watch.journal import FileState, Journal, Row, RowOptions
from ocr_watch.pool import PollPlanner, Pool, PoolSettings
from ocr_watch.pool.flight import Ended
from ocr_watch.pool.group import PoolGroup
from ocr_watch.pool.settings import JobPlace
from ocr_watch.recorder import NULL, Recorder
from ocr_watch.results.hooks import HookEvent, HookFacts, HookRunner
from ocr_watch.watch import InboxWatcher, keep_watching

if TYPE_CHECKING:
    from ocr_watch.admission import Admission

__all__ = ["RETIRED_REPORTS", "SHARED_KEY", "HookDispatch", "Watches", "build_pools", "fix_legacy", "pool_settings",
           "reconfigure_pools", "row_options"]

log = structlog.get_logger("ocr_watch.daemon")

SHARED_KEY = "api"  # the pool of the jobs that use the configuration's api.key
# In state_dir: the reports of files moved back from quarantine to be run again.
RETIRED_REPORTS = "retired-reports"


def place(job: cfgmod.Job) -> JobPlace:
    return JobPlace(name=job.name, inbox=job.folders.inbox, outbox=job.folders.outbox,
                    quarantine=job.folders.quarantine, archive=job.folders.archive, on_success=job.on_success)


def pool_settings(config: cfgmod.Config, jobs: Sequence[cfgmod.Job] | None = None,
                  url: str | None = None) -> PoolSettings:
    """The settings of the pool serving `jobs` (None: every job). `url`: the callback URL given
    to the service, token included; None: callbacks off."""
    return PoolSettings(
        places={job.name: place(job) for job in (config.jobs if jobs is None else jobs)},
        callback_url=url,
        max_in_flight=config.pool.max_in_flight,
        max_uploads=config.pool.max_uploads,
        queue_size=config.pool.queue_size,
        poll_min_interval_s=config.poll.interval_seconds,
        task_timeout_s=config.poll.timeout_seconds,
        max_attempts=config.retry.max_attempts,
        ambiguous_creates=config.retry.ambiguous_creates,
        backoff_initial_s=config.retry.backoff_initial_seconds,
        backoff_max_s=config.retry.backoff_max_seconds,
        callback_fallback_s=config.callback.fallback_seconds if url else None,
        retired_reports=config.state_dir / RETIRED_REPORTS,
    )


def row_options(job: cfgmod.Job, rel: str) -> list[RowOptions]:
    """A file's options, one per format, as its rows keep them (see options.py)."""
    found = cfgmod.resolve_options(job, rel)
    password = found.password.reveal() if found.password else None
    return [RowOptions(fmt, found.language, password, found.rule) for fmt in found.formats]


def _keys(config: cfgmod.Config) -> dict[str, tuple[str, list[cfgmod.Job]]]:
    """The jobs by the pool of their key: the shared api.key's, and one per key of a job's own
    (two jobs with the same own key share one)."""
    pools: dict[str, tuple[str, list[cfgmod.Job]]] = {}
    by_secret: dict[str, str] = {config.api.key.reveal(): SHARED_KEY}
    for job in config.jobs:
        secret = job.api_key.reveal() if job.api_key else config.api.key.reveal()
        name = by_secret.setdefault(secret, f"{job.prefix}api")
        pools.setdefault(name, (secret, []))[1].append(job)
    return pools


def build_pools(config: cfgmod.Config, journal: Journal, url: str | None, planner: PollPlanner, *,
                on_change: Callable[[], None], on_released: Callable[[Row, Ended | None], None],
                recorder: Recorder = NULL) -> tuple[PoolGroup, dict[str, PicWishClient]]:
    """A client and a pool per key (by the pool's name); the caller closes the clients."""
    pools: dict[str, Pool] = {}
    of_job: dict[str, str] = {}
    clients: dict[str, PicWishClient] = {}
    for name, (secret, jobs) in _keys(config).items():
        client = PicWishClient(config.api.base_url, secret, requests_per_second=config.api.requests_per_second,
                               margin=config.api.rate_margin, answer_timeout_s=config.api.answer_timeout_seconds,
                               download_min_bps=config.api.download_min_bytes_per_second, recorder=recorder)
        clients[name] = client
        pools[name] = Pool(journal, client, pool_settings(config, jobs, url), planner=planner,
                           on_change=on_change, on_released=on_released, recorder=recorder)
        of_job.update((job.name, name) for job in jobs)
    return PoolGroup(pools, of_job), clients


def reconfigure_pools(group: PoolGroup, config: cfgmod.Config, url: str | None) -> None:
    """A reload: each key's pool takes its jobs' new settings (the keys and jobs are the same:
    a change of those needs a restart)."""
    for name, (_, jobs) in _keys(config).items():
        group.pools[name].reconfigure(pool_settings(config, jobs, url))


def fix_legacy(config: cfgmod.Config, journal: Journal, rows: list[Row]) -> list[Row]:
    """The live rows the configured jobs serve, each with its options fixed. A row of an older
    journal (no options) gets what that version sent (`_legacy_options`). Rows of a job no
    longer configured are left in the journal, said once a job: add the job back to finish them."""
    jobs = {job.name: job for job in config.jobs}
    served: list[Row] = []
    orphans: dict[str, int] = {}
    for row in rows:
        job = jobs.get(row.job)
        if job is None:
            orphans[row.job] = orphans.get(row.job, 0) + 1
            continue
        if row.format is None:
            row = journal.fix_options(row.id, _legacy_options(job, row))
        served.append(row)
    for name, count in orphans.items():
        log.warning("job_not_configured", job=name, files=count,
                    action="left in the journal; add the job back to the configuration to finish them")
    return served


def _legacy_options(job: cfgmod.Job, row: Row) -> RowOptions:
    """What an older version sent a row with: the format and language of its options key
    (kept at its admission), and its job's password (read at each upload then)."""
    now = row_options(job, row.rel)[0]
    fmt, sep, language = row.options_key.partition("|")
    if not (sep and fmt and language):
        return now
    return RowOptions(fmt, language, now.password, None)


class HookDispatch:
    """Submits a job's hook for a file whose state is final; see the module docstring."""

    def __init__(self, config: cfgmod.Config, journal: Journal, runner: HookRunner) -> None:
        self._jobs = {job.name: job for job in config.jobs}
        self._journal = journal
        self._runner = runner

    def ended(self, row: Row, ended: Ended | None) -> None:
        """`row` left flight; a file in several formats runs its hook once, when its last row ends."""
        job = self._jobs.get(row.job)
        if job is None or ended is None or not (job.hooks.on_done or job.hooks.on_quarantine):
            return
        rows = [row, *self._journal.siblings(row)]
        if any(r.state not in (FileState.DONE, FileState.QUARANTINED) for r in rows):
            return
        failed = [r for r in rows if r.state is FileState.QUARANTINED]
        event = HookEvent.QUARANTINED if failed else HookEvent.DONE
        argv = job.hooks.on_quarantine if failed else job.hooks.on_done
        if not argv:
            return
        outbox = job.folders.outbox
        outputs = [outbox / r.output_rel for r in sorted(rows, key=lambda r: r.id)
                   if r.output_rel and r.state is FileState.DONE]
        facts = HookFacts(event=event, job=job.name, source=_source_now(job, rows), outputs=outputs,
                          reason="; ".join(f"{r.format}: {r.last_error}" if len(rows) > 1 else r.last_error or ""
                                           for r in failed),
                          task_ids=list(dict.fromkeys(r.task_id for r in rows if r.task_id)))
        self._runner.submit(argv, facts, timeout_s=job.hooks.timeout_seconds)


def _source_now(job: cfgmod.Job, rows: list[Row]) -> Path | None:
    """Where the source lies now, from the journal (no disk access on the loop): where a row
    moved it; else deleted (`delete`, done without a note); else still in the inbox (`keep`, or
    a source that could not be moved, or was gone already)."""
    for row in rows:
        if row.final_path:
            return Path(row.final_path)
    deleted = job.on_success is OnSuccess.DELETE and all(
        r.state is FileState.DONE and not r.last_error for r in rows)
    return None if deleted else job.folders.inbox / rows[0].rel


class Watches:
    """Every job's inbox watched (a watcher and its supervisor each) and rescanned."""

    def __init__(self, config: cfgmod.Config, admissions: Mapping[str, Admission]) -> None:
        self._config = config
        self._admissions = admissions
        self._watchers: list[InboxWatcher] = []
        self._rescan_s = config.watch.rescan_seconds
        self._rescan_changed = asyncio.Event()

    @property
    def idle(self) -> bool:
        return all(a.idle for a in self._admissions.values())

    @property
    def waiting(self) -> int:
        """Files seen, not yet admitted, in every inbox."""
        return sum(a.waiting for a in self._admissions.values())

    def healthy(self) -> bool:
        """For the systemd watchdog, from its thread: no watcher's thread died unnoticed."""
        return all(w.thread_alive() for w in list(self._watchers))

    async def start(self, stages: contextlib.AsyncExitStack, loop: asyncio.AbstractEventLoop
                    ) -> list[asyncio.Task[None]]:
        """Watch every inbox (each stop on the stack); the tasks that keep them watched."""
        tasks = []
        watch = self._config.watch
        for admission in self._admissions.values():
            trouble = asyncio.Event()  # the inbox itself was deleted: check the watch at once
            watcher = InboxWatcher(admission.inbox, admission.report, loop=loop, mode=watch.mode,
                                   poll_interval_s=watch.poll_interval_seconds, on_trouble=trouble.set,
                                   on_overflow=admission.spawn_scan)
            await asyncio.to_thread(watcher.start)
            self._watchers.append(watcher)
            stages.push_async_callback(asyncio.to_thread, watcher.stop)
            tasks.append(asyncio.create_task(keep_watching(watcher, admission.spawn_scan, wake=trouble),
                                             name=f"watch {admission.job}"))
        return tasks

    async def set_poll_interval(self, seconds: float) -> None:
        """A reload: polling observers list their inbox every `seconds` (restarted for it, and
        their inbox scanned for what came meanwhile)."""
        for watcher, admission in zip(self._watchers, self._admissions.values(), strict=False):
            if watcher.set_poll_interval(seconds) and await asyncio.to_thread(watcher.restart):
                admission.spawn_scan()

    def set_rescan(self, every_s: float) -> None:
        """A reload: a rescan every `every_s` from now on (0: none), counted from the last."""
        self._rescan_s = every_s
        self._rescan_changed.set()

    async def rescans(self, every_s: float) -> None:
        """Scan every inbox every `every_s` (0: none) until cancelled."""
        self._rescan_s = every_s
        last = time.monotonic()
        while True:
            self._rescan_changed.clear()
            wait = last + self._rescan_s - time.monotonic() if self._rescan_s > 0 else None
            if wait is None or wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._rescan_changed.wait(), wait)
                    continue  # a new interval: count it from the last scan
            await asyncio.gather(*(a.spawn_scan() for a in self._admissions.values()))
            last = time.monotonic()

"""The composition root: builds the stages, runs them, and stops them in order.

Start: open the journal, recall what the poll planner learnt last time, resume every live
row (polling known tasks, finishing moves), start the watcher *before* the first scan (so
nothing dropped in between is missed), scan.
Stop (SIGTERM, SIGINT, `once` finding nothing left to do, or a stage that crashed): stop the
watcher, stop taking new work, let uploads, downloads and moves under way finish within a
grace period, cancel the rest (their state is in the journal), save what the planner learnt,
close the client and the journal. The order is declared once: each stage registers its stop
on an exit stack where it starts, and the stack stops them in reverse.

`run` and `once` share this code; `once` only adds a condition to stop on.

Every job is served by this one process (issue 18): an admission and a watcher per job's
inbox, a pool per API key over the one journal, one callback receiver, one hook runner
(served.py builds the parts per job and per key).

Under systemd (`NOTIFY_SOCKET`) it says READY=1 once the journal is open, the resumed tasks
are tracked and the watcher runs; keeps a STATUS= line current; pings the watchdog while the
loop and the watcher's thread are healthy (notify/pinger.py); says STOPPING=1 when a stop
begins. `run` reloads its configuration on SIGHUP (reload.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from ocr_watch import config as cfgmod
from ocr_watch import logs
from ocr_watch import metrics as metrics_mod
from ocr_watch.admission import Admission
from ocr_watch.api.callbacks import CallbackReceiver, callback_token, callback_url
from ocr_watch.balance import BalanceWatch
from ocr_watch.config.folders import JOURNAL_FILE
from ocr_watch.fsops import remove_stale_temps
from ocr_watch.intake.source import ignore_lease_breaks
from ocr_watch.journal import Journal, Row
from ocr_watch.notify import Notifier, StatusReporter, WatchdogPinger, watchdog_interval
from ocr_watch.pool import PollPlanner
from ocr_watch.pool.flight import Ended
from ocr_watch.pool.group import PoolGroup
from ocr_watch.pool.memory import FILE_NAME as PLANNER_MEMORY
from ocr_watch.pool.memory import PlannerMemory
from ocr_watch.recorder import NULL
from ocr_watch.reload import Reloader
from ocr_watch.results.hooks import HookRunner
from ocr_watch.served import (
    SHARED_KEY,
    HookDispatch,
    Watches,
    build_pools,
    fix_legacy,
    pool_settings,
    reconfigure_pools,
    row_options,
)
from ocr_watch.version import version

__all__ = ["Outcome", "pool_settings", "serve"]

log = structlog.get_logger("ocr_watch.daemon")

SHUTDOWN_GRACE_S = 20.0
EXIT_OK, EXIT_QUARANTINED, EXIT_ACCOUNT, EXIT_UNFINISHED = 0, 1, 3, 75


@dataclass
class Outcome:
    """What a run did, for the exit code and the progress bar."""

    admitted: int = 0
    done: int = 0
    quarantined: int = 0
    in_flight: int = 0
    account_problem: str | None = None
    # Why the run stopped before it was done ("signal", "timeout"), and the files it left
    # unfinished (in the journal, resumed by the next run; or seen but not yet admitted).
    stopped_early: str | None = None
    unfinished: int = 0

    @property
    def exit_code(self) -> int:
        """`once`'s exit code: an account refusal, then an early stop with work left, wins."""
        if self.account_problem:
            return EXIT_ACCOUNT
        if self.stopped_early and self.unfinished:
            return EXIT_UNFINISHED
        return EXIT_QUARANTINED if self.quarantined else EXIT_OK


async def serve(
    config: cfgmod.Config,
    *,
    once: bool = False,
    on_progress: Callable[[Outcome], None] | None = None,
    handle_signals: bool = True,
    stop: asyncio.Event | None = None,
    timeout_s: float | None = None,
) -> Outcome:
    """Run until stopped (or, with `once`, until the inbox is empty and nothing is in flight).

    `timeout_s` (once): stop as a signal does once that long has passed. On an account
    refusal `once` first lets the tasks already paid for finish (unless the key itself is
    refused, when nothing can), then stops.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    outcome = Outcome()

    def stop_because(why: str) -> None:
        if not stop.is_set():
            outcome.stopped_early = why
            stop.set()

    ignore_lease_breaks()  # admission's writer check takes a read lease for an instant
    callback = _callback(config)
    started = time.monotonic()
    notifier = Notifier()
    watches: Watches | None = None
    # Each stage is started next to the line that registers how it stops: the stack stops
    # them in the reverse order, on any exit (a crash of one stage included).
    async with contextlib.AsyncExitStack() as stages:
        stages.callback(notifier.close)
        interval = watchdog_interval()
        if notifier.enabled and interval is not None:
            # First on the stack, so it pings until the very end of a stop (the loop still answers).
            pinger = WatchdogPinger(notifier, interval, loop,
                                    healthy=lambda: watches is None or watches.healthy()).start()
            stages.callback(pinger.stop)
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop_because, "signal")
                stages.callback(loop.remove_signal_handler, sig)
        # SIGHUP: while starting, noted and reloaded once ready (never our death); then a reload;
        # while stopping, nothing. One handler throughout, calling what on_hup[0] is now: a
        # signal's callback may run a step after it arrived, when the target has changed.
        early_hup = asyncio.Event()
        on_hup: list[Callable[[], object]] = [early_hup.set]
        if handle_signals and not once:
            loop.add_signal_handler(signal.SIGHUP, lambda: on_hup[0]())
            stages.callback(loop.remove_signal_handler, signal.SIGHUP)
        if timeout_s is not None:
            stages.callback(loop.call_later(timeout_s, stop_because, "timeout").cancel)
        journal = Journal(config.state_dir / JOURNAL_FILE)
        stages.callback(journal.close)
        metrics = metrics_mod.start(config.metrics.listen, journal.path, tuple(job.name for job in config.jobs))
        if metrics is not None:
            stages.callback(metrics.stop)
        recorder = metrics or NULL
        hooks = HookRunner(secrets=secrets(config))
        hooks.start()
        stages.push_async_callback(hooks.aclose)
        dispatch = HookDispatch(config, journal, hooks)
        defaults = pool_settings(config)
        planner = PollPlanner(min_interval_s=defaults.poll_min_interval_s,
                              max_interval_s=defaults.poll_max_interval_s)
        activity = asyncio.Event()

        def released(row: Row, ended: Ended | None) -> None:
            # A newer version of a file seen while its row was in flight is admitted when it
            # leaves; a file whose state is final runs its job's hook.
            if row.job in admissions:
                admissions[row.job].released(row.rel)
            dispatch.ended(row, ended)

        pool, clients = build_pools(config, journal, callback[1] if callback else None, planner,
                                    on_change=activity.set, on_released=released, recorder=recorder)
        for client in clients.values():
            stages.push_async_callback(client.aclose)
        if metrics is not None:
            metrics.watch_account(lambda: pool.account_problem is not None)
        admissions = {
            job.name: Admission(job.folders.inbox, journal, functools.partial(pool.enqueue, job=job.name),
                                functools.partial(row_options, job), job=job.name,
                                settle_s=config.watch.settle_seconds, activity=activity)
            for job in config.jobs}
        watches = Watches(config, admissions)

        def count_unfinished() -> None:  # while the journal is still open
            outcome.unfinished = len(journal.live_rows()) + sum(a.waiting for a in admissions.values())
        stages.callback(count_unfinished)
        memory = PlannerMemory(config.state_dir / PLANNER_MEMORY, planner)
        stages.callback(memory.save)

        def snapshot() -> Outcome:
            stats = pool.stats
            outcome.admitted = sum(a.admitted for a in admissions.values())
            outcome.done = stats.done
            outcome.quarantined = stats.quarantined
            outcome.in_flight = stats.in_flight
            outcome.account_problem = pool.account_problem
            return outcome

        for folder in (*dict.fromkeys(job.folders.outbox for job in config.jobs), config.state_dir):
            for stale in await asyncio.to_thread(remove_stale_temps, folder):
                log.info("stale_temp_removed", path=str(stale))
        memory.load()
        live = fix_legacy(config, journal, journal.live_rows())
        for job in config.jobs:
            log.info("starting", mode="once" if once else "run", version=version(), pid=os.getpid(), job=job.name,
                     inbox=str(job.folders.inbox), resuming=sum(1 for row in live if row.job == job.name),
                     requests_per_second=config.api.requests_per_second, max_in_flight=config.pool.max_in_flight,
                     format=",".join(job.ocr.formats), rules=len(job.rules))
        pool.resume(live)
        tasks: list[asyncio.Task[None]] = [
            asyncio.create_task(pool.run(), name="pool"),
            *(asyncio.create_task(a.run(), name=f"admission {name}") for name, a in admissions.items()),
            asyncio.create_task(memory.keep(), name="planner-memory"),
            # The credits of the shared key's account (or, when every job has its own, the first's).
            asyncio.create_task(BalanceWatch(clients.get(SHARED_KEY, next(iter(clients.values()))).credits_left,
                                             journal, recorder=recorder,
                                             low_warning=config.account.low_credits_warning).keep(), name="balance"),
        ]
        stages.push_async_callback(_stop_stages, pool, tasks)
        if callback is not None:
            receiver = CallbackReceiver(config.callback.listen_host, config.callback.listen_port, callback[0],
                                        pool.deliver, loop)
            _listen(receiver)
            # Callbacks from now on are lost; a restart queries those tasks.
            stages.push_async_callback(asyncio.to_thread, receiver.stop)
        if not once:
            tasks += await watches.start(stages, loop)
        stages.callback(lambda: log.info("stopping", in_flight=pool.stats.in_flight, queued=pool.stats.queued))
        for admission in admissions.values():
            admission.spawn_scan()
        if not once:
            tasks.append(asyncio.create_task(watches.rescans(config.watch.rescan_seconds), name="rescan"))

        async def apply(new: cfgmod.Config, keys: list[str]) -> None:
            """A reload's keys, to the running parts (reload.py says which keys come here)."""
            logs.set_level(new.log_level)
            logs.add_secrets(secrets(new))
            for client in clients.values():
                client.set_rate(new.api.requests_per_second)
            reconfigure_pools(pool, new, callback[1] if callback else None)
            for job in new.jobs:  # the same jobs (others need a restart): their new options
                admissions[job.name].reconfigure(functools.partial(row_options, job),
                                                 settle_s=new.watch.settle_seconds)
            watches.set_rescan(new.watch.rescan_seconds)
            await watches.set_poll_interval(new.watch.poll_interval_seconds)

        if handle_signals and not once:
            reloader = Reloader(config, apply, notifier)
            on_hup[0] = reloader.spawn
            if early_hup.is_set():
                reloader.spawn()
            stages.push_async_callback(reloader.aclose)
            stages.callback(on_hup.__setitem__, 0, lambda: None)  # stopping: no new reload
        status = StatusReporter(notifier)
        stages.callback(status.close)
        notifier.ready()
        status.offer(_status_line(snapshot(), watches.waiting, pool.stats.queued))  # counts from the first
        stages.callback(notifier.stopping)  # last registered: the first thing a stop does
        stopper = asyncio.create_task(stop.wait())
        stages.callback(stopper.cancel)
        while not stop.is_set():
            activity.clear()
            if on_progress:
                on_progress(snapshot())
            if notifier.enabled:
                status.offer(_status_line(snapshot(), watches.waiting, pool.stats.queued))
            if once and watches.idle and pool.idle:
                await hooks.drain()  # `once` exits after its files' hooks have run
                break
            if once and pool.account_problem and (pool.key_refused or not pool.paid_in_flight):
                break
            waiter = asyncio.create_task(activity.wait())
            crashed = [t for t in tasks if t.done()]
            if crashed:
                crashed[0].result()  # a stage died: surface its error
            await asyncio.wait([waiter, stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
    snapshot()
    if on_progress:
        on_progress(outcome)
    log.info("stopped", done=outcome.done, quarantined=outcome.quarantined, unfinished=outcome.unfinished,
             stopped_early=outcome.stopped_early, seconds=round(time.monotonic() - started, 3),
             account_problem=outcome.account_problem)
    return outcome


def secrets(config: cfgmod.Config) -> list[str]:
    """Every secret a log line must never show: the keys, the OCR passwords (every job's and
    rule's), the callback token."""
    found = [secret.reveal() for secret in cfgmod.secrets_in(config)]
    callback = _callback(config)
    return found + ([callback[0]] if callback else [])


def _callback(config: cfgmod.Config) -> tuple[str, str] | None:
    """The callback token and the URL the service is given, derived here only; None: off."""
    if not config.callback.url:
        return None
    token = callback_token(config.api.key.reveal())
    return token, callback_url(config.callback.url, token)


async def _stop_stages(pool: PoolGroup, tasks: list[asyncio.Task[None]]) -> None:
    """Let uploads, downloads and moves under way finish within the grace, then end the stages."""
    await pool.shutdown(SHUTDOWN_GRACE_S)
    for task in tasks:
        task.cancel()
    # Not `await task`: a stage that crashed would raise again here and skip the rest.
    await asyncio.gather(*tasks, return_exceptions=True)


def _listen(receiver: CallbackReceiver) -> None:
    """Start the callback receiver; a port that cannot be had is a configuration problem."""
    host, port = receiver.address
    try:
        receiver.start()
    except OSError as exc:
        raise cfgmod.ConfigError(
            [f"callback.listen: cannot listen on {cfgmod.listen_text(host, port)}: {exc.strerror or exc}"]) from None
    host, port = receiver.address
    log.info("callbacks_listening", host=host, port=port)


def _status_line(outcome: Outcome, settling: int, queued: int) -> str:
    """systemd's STATUS=: what `systemctl status` shows under the unit."""
    return (f"{outcome.in_flight} in flight, {settling + queued} waiting, {outcome.done} done, "
            f"{outcome.quarantined} quarantined")

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

Under systemd (`NOTIFY_SOCKET`) it says READY=1 once the journal is open, the resumed tasks
are tracked and the watcher runs; keeps a STATUS= line current; pings the watchdog while the
loop and the watcher's thread are healthy (notify/pinger.py); says STOPPING=1 when a stop
begins. `run` reloads its configuration on SIGHUP (reload.py).
"""

from __future__ import annotations

import asyncio
import contextlib
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
from ocr_watch.api import CreateOptions, PicWishClient
from ocr_watch.api.callbacks import CallbackReceiver, callback_token, callback_url
from ocr_watch.balance import BalanceWatch
from ocr_watch.config.folders import JOURNAL_FILE
from ocr_watch.fsops import remove_stale_temps
from ocr_watch.intake.source import ignore_lease_breaks
from ocr_watch.journal import Journal
from ocr_watch.notify import Notifier, StatusReporter, WatchdogPinger, watchdog_interval
from ocr_watch.pool import PollPlanner, Pool, PoolSettings
from ocr_watch.pool.memory import FILE_NAME as PLANNER_MEMORY
from ocr_watch.pool.memory import PlannerMemory
from ocr_watch.recorder import NULL
from ocr_watch.reload import Reloader
from ocr_watch.version import version
from ocr_watch.watch import InboxWatcher, keep_watching

__all__ = ["Outcome", "pool_settings", "serve"]

log = structlog.get_logger("ocr_watch.daemon")

SHUTDOWN_GRACE_S = 20.0
# In state_dir: the reports of files moved back from quarantine to be run again.
RETIRED_REPORTS = "retired-reports"
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


def pool_settings(config: cfgmod.Config, url: str | None = None) -> PoolSettings:
    """`url`: the callback URL given to the service, token included; None: callbacks off."""
    password = config.ocr.password.reveal() if config.ocr.password else None
    return PoolSettings(
        inbox=config.folders.inbox,
        outbox=config.folders.outbox,
        quarantine=config.folders.quarantine,
        archive=config.folders.archive,
        on_success=config.on_success,
        create_options=CreateOptions(format=config.ocr.format, language=config.ocr.language, password=password,
                                     callback_url=url),
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
    settings = pool_settings(config, callback[1] if callback else None)
    started = time.monotonic()
    notifier = Notifier()
    watcher: InboxWatcher | None = None
    # Each stage is started next to the line that registers how it stops: the stack stops
    # them in the reverse order, on any exit (a crash of one stage included).
    async with contextlib.AsyncExitStack() as stages:
        stages.callback(notifier.close)
        interval = watchdog_interval()
        if notifier.enabled and interval is not None:
            # First on the stack, so it pings until the very end of a stop (the loop still answers).
            pinger = WatchdogPinger(notifier, interval, loop,
                                    healthy=lambda: watcher is None or watcher.thread_alive()).start()
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
        metrics = metrics_mod.start(config.metrics.listen, journal.path)
        if metrics is not None:
            stages.callback(metrics.stop)
        recorder = metrics or NULL
        client = PicWishClient(config.api.base_url, config.api.key.reveal(),
                               requests_per_second=config.api.requests_per_second,
                               margin=config.api.rate_margin,
                               answer_timeout_s=config.api.answer_timeout_seconds,
                               download_min_bps=config.api.download_min_bytes_per_second, recorder=recorder)
        stages.push_async_callback(client.aclose)
        planner = PollPlanner(min_interval_s=settings.poll_min_interval_s,
                              max_interval_s=settings.poll_max_interval_s)
        activity = asyncio.Event()
        # A newer version of a file seen while its row was in flight is admitted when it leaves.
        pool = Pool(journal, client, settings, planner=planner, on_change=activity.set,
                    on_released=lambda rel: admission.released(rel), recorder=recorder)
        if metrics is not None:
            metrics.watch_account(lambda: pool.account_problem is not None)
        admission = Admission(config.folders.inbox, journal, pool.enqueue, settings.options_key,
                              settle_s=config.watch.settle_seconds, activity=activity)

        def count_unfinished() -> None:  # while the journal is still open
            outcome.unfinished = len(journal.live_rows()) + admission.waiting
        stages.callback(count_unfinished)
        memory = PlannerMemory(config.state_dir / PLANNER_MEMORY, planner)
        stages.callback(memory.save)

        def snapshot() -> Outcome:
            stats = pool.stats
            outcome.admitted = admission.admitted
            outcome.done = stats.done
            outcome.quarantined = stats.quarantined
            outcome.in_flight = stats.in_flight
            outcome.account_problem = pool.account_problem
            return outcome

        for folder in (config.folders.outbox, config.state_dir):
            for stale in await asyncio.to_thread(remove_stale_temps, folder):
                log.info("stale_temp_removed", path=str(stale))
        memory.load()
        live = journal.live_rows()
        log.info("starting", mode="once" if once else "run", version=version(), pid=os.getpid(),
                 inbox=str(config.folders.inbox), resuming=len(live),
                 requests_per_second=config.api.requests_per_second, max_in_flight=config.pool.max_in_flight,
                 format=config.ocr.format)
        pool.resume(live)
        tasks: list[asyncio.Task[None]] = [
            asyncio.create_task(pool.run(), name="pool"),
            asyncio.create_task(admission.run(), name="admission"),
            asyncio.create_task(memory.keep(), name="planner-memory"),
            asyncio.create_task(BalanceWatch(client.credits_left, journal, recorder=recorder,
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
            watch_trouble = asyncio.Event()  # the inbox itself was deleted: check the watch at once
            watcher = InboxWatcher(config.folders.inbox, admission.report, loop=loop,
                                   mode=config.watch.mode, poll_interval_s=config.watch.poll_interval_seconds,
                                   on_trouble=watch_trouble.set, on_overflow=admission.spawn_scan)
            await asyncio.to_thread(watcher.start)
            stages.push_async_callback(asyncio.to_thread, watcher.stop)
            tasks.append(asyncio.create_task(keep_watching(watcher, admission.spawn_scan, wake=watch_trouble),
                                             name="watch"))
        stages.callback(lambda: log.info("stopping", in_flight=pool.stats.in_flight, queued=pool.stats.queued))
        admission.spawn_scan()
        rescans = _Rescans(admission, config.watch.rescan_seconds)
        if not once:
            tasks.append(asyncio.create_task(rescans.run(), name="rescan"))

        async def apply(new: cfgmod.Config, keys: list[str]) -> None:
            """A reload's keys, to the running parts (reload.py says which keys come here)."""
            logs.set_level(new.log_level)
            logs.add_secrets(secrets(new))
            client.set_rate(new.api.requests_per_second)
            pool.reconfigure(pool_settings(new, callback[1] if callback else None))
            # `settings` is the pool's own instance, just updated in place: the new options key.
            admission.reconfigure(settings.options_key, settle_s=new.watch.settle_seconds)
            rescans.set(new.watch.rescan_seconds)
            if watcher is not None and watcher.set_poll_interval(new.watch.poll_interval_seconds) \
                    and await asyncio.to_thread(watcher.restart):
                admission.spawn_scan()  # what came while the polling observer was restarted

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
        status.offer(_status_line(snapshot(), admission.waiting, pool.stats.queued))  # counts from the first
        stages.callback(notifier.stopping)  # last registered: the first thing a stop does
        stopper = asyncio.create_task(stop.wait())
        stages.callback(stopper.cancel)
        while not stop.is_set():
            activity.clear()
            if on_progress:
                on_progress(snapshot())
            if notifier.enabled:
                status.offer(_status_line(snapshot(), admission.waiting, pool.stats.queued))
            if once and (admission.idle and pool.idle):
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
    """Every secret a log line must never show: the key, the OCR password, the callback token."""
    found = [config.api.key.reveal()] + ([config.ocr.password.reveal()] if config.ocr.password else [])
    callback = _callback(config)
    return found + ([callback[0]] if callback else [])


def _callback(config: cfgmod.Config) -> tuple[str, str] | None:
    """The callback token and the URL the service is given, derived here only; None: off."""
    if not config.callback.url:
        return None
    token = callback_token(config.api.key.reveal())
    return token, callback_url(config.callback.url, token)


async def _stop_stages(pool: Pool, tasks: list[asyncio.Task[None]]) -> None:
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


class _Rescans:
    """A scan of the inbox every `every_s` (0: none); `set` changes it at once (a reload)."""

    def __init__(self, admission: Admission, every_s: float) -> None:
        self._admission = admission
        self._every_s = every_s
        self._changed = asyncio.Event()

    def set(self, every_s: float) -> None:
        self._every_s = every_s
        self._changed.set()

    async def run(self) -> None:
        last = time.monotonic()
        while True:
            self._changed.clear()
            wait = last + self._every_s - time.monotonic() if self._every_s > 0 else None
            if wait is None or wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait)
                    continue  # a new interval: count it from the last scan
            await self._admission.spawn_scan()
            last = time.monotonic()

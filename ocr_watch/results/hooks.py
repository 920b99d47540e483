"""Run a job's hooks: a program told about one file after it is done or quarantined.

The contract (for the README's "Hooks" section):

- A hook is an argv list from the config (``hooks.on_done``, ``hooks.on_quarantine``), run
  without a shell. It starts after the file's state is final: every output complete and the
  source moved (done), or the source and its ``.error.json`` in quarantine. It tells about the
  file; it cannot change it: its exit code, output and duration are logged, nothing else.
- The file's facts are in environment variables, as bytes: a name that is not UTF-8 reaches the
  hook exactly as it lies on disk.

  ==================  =========================================================================
  ``OCRW_EVENT``      ``done`` or ``quarantined``
  ``OCRW_JOB``        the job's name
  ``OCRW_SOURCE``     the source's path as it now lies (archive, quarantine, or the inbox with
                      ``on_success: keep``); empty when it was deleted
  ``OCRW_OUTPUTS``    the output files' paths, one a line (none: empty)
  ``OCRW_REASON``     why it was quarantined, in plain words; empty when done
  ``OCRW_TASK_IDS``   the API task ids it cost, one a line, like ``OCRW_OUTPUTS``
  ==================  =========================================================================

  A name with a newline in it (legal, if rare, and an output's name follows its source's) is
  ambiguous in a one-a-line list.
- The rest of the environment is small and clean: ``PATH``, ``HOME``, ``LANG``, ``LC_*``, ``TZ``
  and ``TMPDIR`` from the daemon's, and none of those if its value holds a secret. Never the API
  key, ``PICWISH_API_KEY``, ``CREDENTIALS_DIRECTORY`` or anything else of the daemon's.
- stdin is ``/dev/null``; no other open file of the daemon's (journal, run lock, sockets) is
  inherited; the working directory is the daemon's, so use the absolute paths given. stdout and
  stderr are read as the hook writes them, and only the last few KiB of each are kept; the last
  lines of stderr go into the log line of a failure, redacted like every log line.
- At most ``max_running`` hooks run at once (4); up to ``max_queued`` more wait (1,000). A hook
  beyond that is not run, and ``hook_dropped`` says so: a flood of files must not grow the
  daemon's memory, and the file's own state is already final.
- A hook has ``timeout_s`` (``hooks.timeout_seconds``, 60 s). It runs in a session of its own, so
  that on timeout its whole process group, children too, gets SIGTERM, and SIGKILL
  ``kill_grace_s`` later (``hook_timeout``). Exit not 0 is ``hook_failed`` with the code;
  a hook that cannot be started (not found, not executable) is ``hook_not_started``. None of
  these is raised, retried, or changes the file.
- At shutdown, queued hooks are dropped (``hook_dropped``, ``reason: shutdown``); running ones
  get ``shutdown_grace_s`` to finish, then their groups are stopped as on timeout
  (``hook_stopped``).

The SIGKILL after the grace goes to the group even when its leader has exited, for the children
that ignored SIGTERM; the leader's pid (the group's id) is not reused within a grace of seconds.
A process that leaves the group (``setsid``) is beyond reach, and so may keep a pipe open: its
reader is given up after the grace.
"""

from __future__ import annotations

import asyncio
import errno as errnos
import os
import signal
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Self

import structlog

__all__ = ["DEFAULT_LIMITS", "HookEvent", "HookFacts", "HookLimits", "HookRunner", "hook_environment"]

log = structlog.get_logger("ocr_watch.hooks")

KEPT_VARIABLES = frozenset({"PATH", "HOME", "LANG", "TZ", "TMPDIR"})  # and every LC_*
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
STDERR_LINES = 10  # in a failure's log line


class HookEvent(StrEnum):
    """What became of the file; the value is ``OCRW_EVENT``."""

    DONE = "done"
    QUARANTINED = "quarantined"

    @property
    def key(self) -> str:
        """The config key of this event's hook."""
        return "on_done" if self is HookEvent.DONE else "on_quarantine"


@dataclass(frozen=True)
class HookFacts:
    """One file's facts, as its hook is told them. Paths may be ``str`` (with surrogate escapes
    for bytes that are not UTF-8), ``bytes`` or path objects: they reach the hook as the bytes."""

    event: HookEvent
    job: str
    source: str | bytes | os.PathLike[str] | None
    outputs: Sequence[str | bytes | os.PathLike[str]] = ()
    reason: str = ""
    task_ids: Sequence[str] = ()

    def variables(self) -> dict[bytes, bytes]:
        """The ``OCRW_*`` variables. No path holds a NUL byte; a reason that did (an API's
        message) loses it, since no environment can carry one."""
        facts = {
            b"OCRW_EVENT": self.event.value.encode(),
            b"OCRW_JOB": os.fsencode(self.job),
            b"OCRW_SOURCE": b"" if self.source is None else os.fsencode(self.source),
            b"OCRW_OUTPUTS": b"\n".join(os.fsencode(p) for p in self.outputs),
            b"OCRW_REASON": os.fsencode(self.reason),
            b"OCRW_TASK_IDS": b"\n".join(os.fsencode(t) for t in self.task_ids),
        }
        return {name: value.replace(b"\0", b"") for name, value in facts.items()}


@dataclass(frozen=True)
class HookLimits:
    """How many hooks, how long, how much output. ``timeout_s`` is ``hooks.timeout_seconds``."""

    timeout_s: float = 60.0
    max_running: int = 4
    max_queued: int = 1000
    kill_grace_s: float = 2.0  # SIGTERM to SIGKILL; also how long a closed hook's output may lag
    shutdown_grace_s: float = 5.0
    output_tail_bytes: int = 8192  # of stdout and of stderr, each


DEFAULT_LIMITS = HookLimits()


def hook_environment(environ: Mapping[str, str], secrets: Iterable[str] = ()) -> dict[bytes, bytes]:
    """The few variables a hook inherits from ``environ``: locale, PATH, HOME, TZ, TMPDIR; none
    whose value holds one of ``secrets``. Everything else, the key first, stays behind."""
    hidden = [s for s in secrets if len(s) >= 4]  # as the log's Redactor: short strings are words
    kept = {name: value for name, value in environ.items()
            if (name in KEPT_VARIABLES or name.startswith("LC_")) and not any(s in value for s in hidden)}
    kept.setdefault("PATH", DEFAULT_PATH)
    return {os.fsencode(name): os.fsencode(value) for name, value in kept.items()}


@dataclass(frozen=True)
class _Call:
    argv: tuple[str, ...]
    facts: HookFacts
    timeout_s: float


class HookRunner:
    """Runs hooks off the event loop, a few at a time, each within its timeout; see the module
    docstring. `submit` never blocks and never raises for a hook's sake; `aclose` (or leaving
    ``async with``) stops them."""

    def __init__(self, limits: HookLimits = DEFAULT_LIMITS, *, environ: Mapping[str, str] | None = None,
                 secrets: Iterable[str] = ()) -> None:
        if limits.max_running < 1 or limits.max_queued < 0:
            raise ValueError("a hook runner needs max_running >= 1 and max_queued >= 0")
        self._limits = limits
        self._environ = hook_environment(os.environ if environ is None else environ, secrets)
        self._queue: asyncio.Queue[_Call] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._running: set[asyncio.subprocess.Process] = set()
        self._stopped: set[int] = set()  # pids stopped by the shutdown, not by their timeout
        self._busy: set[asyncio.Task[None]] = set()  # workers in the middle of a hook
        self._closing = False
        self._counts: Counter[str] = Counter()

    @property
    def counts(self) -> dict[str, int]:
        """How many hooks ended how (done, failed, timed_out, not_started, stopped, dropped,
        crashed): a copy, for status and tests."""
        return dict(self._counts)

    @property
    def busy(self) -> int:
        """How many hooks run now."""
        return len(self._busy)

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    def start(self) -> None:
        """Start the workers (on the running loop). Calls submitted before wait for them."""
        if self._closing:
            raise RuntimeError("this hook runner is closed")
        if not self._workers:
            self._workers = [asyncio.create_task(self._work(), name=f"hook-worker-{n}")
                             for n in range(self._limits.max_running)]

    def submit(self, argv: Sequence[str], facts: HookFacts, *, timeout_s: float | None = None) -> bool:
        """Queue one hook for `facts`; False (and ``hook_dropped``) when it will not run.
        `timeout_s`: this hook's (its job's ``hooks.timeout_seconds``); None: the limits'."""
        reason = "shutdown" if self._closing else "queue_full" if self._queue.qsize() >= self._limits.max_queued \
            else None
        if reason is not None:
            self._counts["dropped"] += 1
            log.warning("hook_dropped", reason=reason, **_fields(argv, facts), queued=self._queue.qsize())
            return False
        self._queue.put_nowait(_Call(tuple(argv), facts, self._limits.timeout_s if timeout_s is None else timeout_s))
        return True

    async def drain(self) -> None:
        """Wait until every queued hook has run (`once` before it exits, and tests)."""
        await self._queue.join()

    async def aclose(self) -> None:
        """Drop what waits, give what runs `shutdown_grace_s`, then stop it; idempotent."""
        if self._closing:
            return
        self._closing = True
        while not self._queue.empty():
            call = self._queue.get_nowait()
            self._queue.task_done()
            self._counts["dropped"] += 1
            log.warning("hook_dropped", reason="shutdown", **_fields(call.argv, call.facts))
        busy = set(self._busy)
        if busy:
            _, late = await asyncio.wait(busy, timeout=self._limits.shutdown_grace_s)
            if late:
                left = list(self._running)
                self._stopped.update(p.pid for p in left)
                await asyncio.gather(*(self._stop_group(p) for p in left))
                # their workers log the outcome; a pipe held open elsewhere waits at most a grace
                await asyncio.wait(late, timeout=self._limits.kill_grace_s + 1.0)
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def _work(self) -> None:
        """Run queued hooks one after another; after the run in hand once closing."""
        me = asyncio.current_task()
        assert me is not None
        while not self._closing:
            call = await self._queue.get()
            self._busy.add(me)
            try:
                await self._run(call)
            except Exception:  # a bug of ours; it must not cost the other hooks their worker
                self._counts["crashed"] += 1
                log.exception("hook_crashed", **_fields(call.argv, call.facts))
            finally:
                self._busy.discard(me)
                self._queue.task_done()

    async def _run(self, call: _Call) -> None:
        fields = _fields(call.argv, call.facts)
        env = {**self._environ, **call.facts.variables()}
        started = time.monotonic()
        try:
            if not call.argv:
                raise OSError(errnos.ENOENT, "the hook's argv is empty")
            proc = await asyncio.create_subprocess_exec(
                *call.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True)
        except (OSError, ValueError) as exc:
            self._counts["not_started"] += 1
            name = errnos.errorcode.get(exc.errno or 0) if isinstance(exc, OSError) else None
            log.error("hook_not_started", **fields, errno=name, error=getattr(exc, "strerror", None) or str(exc))
            return
        assert proc.stdout is not None and proc.stderr is not None
        self._running.add(proc)
        readers = [asyncio.create_task(_tail(s, self._limits.output_tail_bytes)) for s in (proc.stdout, proc.stderr)]
        timed_out = False
        try:
            try:
                async with asyncio.timeout(call.timeout_s):
                    await proc.wait()
            except TimeoutError:
                timed_out = True
                await self._stop_group(proc)
            _, stderr = await _outputs(readers, self._limits.kill_grace_s)
        except BaseException:  # cancelled past every grace: leave nothing running behind us
            _signal_group(proc.pid, signal.SIGKILL)
            for reader in readers:
                reader.cancel()
            raise
        finally:
            self._running.discard(proc)
        code = proc.returncode
        duration_s = round(time.monotonic() - started, 3)
        tail = _last_lines(stderr)
        if proc.pid in self._stopped:
            self._counts["stopped"] += 1
            log.warning("hook_stopped", **fields, reason="shutdown", duration_s=duration_s, stderr=tail)
        elif timed_out:
            self._counts["timed_out"] += 1
            log.warning("hook_timeout", **fields, timeout_s=call.timeout_s, duration_s=duration_s,
                        stderr=tail)
        elif code != 0:
            self._counts["failed"] += 1
            log.warning("hook_failed", **fields, code=code, duration_s=duration_s, stderr=tail)
        else:
            self._counts["done"] += 1
            log.info("hook_done", **fields, duration_s=duration_s)

    async def _stop_group(self, proc: asyncio.subprocess.Process) -> None:
        """SIGTERM to the hook's process group, SIGKILL after the grace; returns once the hook
        itself has exited."""
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(self._limits.kill_grace_s):
                await proc.wait()
        except TimeoutError:
            pass
        _signal_group(proc.pid, signal.SIGKILL)  # children that ignored SIGTERM, or outlive the leader
        await proc.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone (a zombie leader may still answer EPERM on some systems)


async def _tail(stream: asyncio.StreamReader, limit: int) -> bytes:
    """Read `stream` to its end, keeping only its last `limit` bytes."""
    kept = bytearray()
    while chunk := await stream.read(65536):
        kept += chunk
        if len(kept) > limit:
            del kept[:-limit]
    return bytes(kept)


async def _outputs(readers: list[asyncio.Task[bytes]], grace_s: float) -> tuple[bytes, bytes]:
    """stdout's and stderr's tails; a pipe still held open after the grace (by a process that
    left the group) is given up as empty."""
    await asyncio.wait(readers, timeout=grace_s)
    tails = []
    for reader in readers:
        if reader.done() and not reader.cancelled() and reader.exception() is None:
            tails.append(reader.result())
        else:
            reader.cancel()
            tails.append(b"")
    return tails[0], tails[1]


def _last_lines(data: bytes) -> list[str]:
    text = data.decode("utf-8", "backslashreplace")
    return [line for line in text.splitlines() if line.strip()][-STDERR_LINES:]


def _fields(argv: Sequence[str], facts: HookFacts) -> dict[str, object]:
    source = None if facts.source is None else os.fsdecode(facts.source)
    return {"job": facts.job, "hook": facts.event.key, "command": argv[0] if argv else "", "path": source}

"""ocr_watch.results.hooks: real hook processes, their environment, their limits and their end."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ocr_watch.results.hooks import HookEvent, HookFacts, HookLimits, HookRunner, hook_environment
from ocr_watch.testing import json_log as json_log_into
from ocr_watch.testing import wait_for

pytestmark = pytest.mark.timeout(30)

KEY = "sk-live-0123456789abcdef"
FAST = HookLimits(timeout_s=10.0, kill_grace_s=0.5, shutdown_grace_s=0.5)
# Each variable the hook sees becomes a file of that name holding the exact bytes.
DUMP_ENV = ("import os, sys\n"
            "for k, v in os.environb.items():\n"
            "    open(os.path.join(os.fsencode(sys.argv[1]), k), 'wb').write(v)\n")


def facts(event: HookEvent = HookEvent.DONE, **kw: Any) -> HookFacts:
    return HookFacts(event=event, job=kw.pop("job", "invoices"), source=kw.pop("source", "/srv/arch/a.pdf"), **kw)


def sh(script: str, *args: object) -> list[str]:
    """An argv running `script` in sh, its arguments as $1..."""
    return ["sh", "-c", script, "hook", *map(str, args)]


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie nobody reaps, as in a container without init, counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def run(body: Callable[[HookRunner], Awaitable[None]], limits: HookLimits = FAST, **kw: Any) -> HookRunner:
    """`body` with a started runner on a fresh loop; the runner is closed after it."""
    async def main() -> HookRunner:
        async with HookRunner(limits, **kw) as runner:
            await body(runner)
        return runner
    return asyncio.run(main())


async def until(predicate: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Poll on the loop (the hooks are other processes: there is no event to wait on)."""
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


def events(logged: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logged if e["event"] == name]


class TestFacts:
    def test_a_hook_gets_its_facts_as_the_exact_bytes_and_a_clean_environment(self, tmp_path: Path) -> None:
        """Every OCRW_ variable arrives, non-UTF-8 names intact; of the daemon's, only PATH and LANG."""
        dump = tmp_path / "env"
        dump.mkdir()
        source = os.fsdecode(b"/srv/q/caf\xe9 \xff.pdf")
        outputs = [os.fsdecode(b"/srv/out/caf\xe9 \xff.pdf"), "/srv/out/caf.txt"]
        environ = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "PICWISH_API_KEY": KEY,
                   "CREDENTIALS_DIRECTORY": "/run/credentials/ocr-watch", "HOME": f"/home/{KEY}",
                   "AWS_SECRET_ACCESS_KEY": "other-secret"}

        async def body(runner: HookRunner) -> None:
            assert runner.submit([sys.executable, "-c", DUMP_ENV, str(dump)], facts(
                HookEvent.QUARANTINED, job="contracts", source=source, outputs=outputs,
                reason="the API refused the file: unsupported format", task_ids=["t-1", "t-2"]))
            await runner.drain()

        runner = run(body, environ=environ, secrets=[KEY])
        seen = {p.name: p.read_bytes() for p in dump.iterdir()}
        assert seen == {
            "PATH": os.environ["PATH"].encode(), "LANG": b"C.UTF-8",
            "OCRW_EVENT": b"quarantined", "OCRW_JOB": b"contracts",
            "OCRW_SOURCE": b"/srv/q/caf\xe9 \xff.pdf",
            "OCRW_OUTPUTS": b"/srv/out/caf\xe9 \xff.pdf\n/srv/out/caf.txt",
            "OCRW_REASON": b"the API refused the file: unsupported format",
            "OCRW_TASK_IDS": b"t-1\nt-2",
        }
        assert runner.counts == {"done": 1}

    def test_the_daemons_own_environment_stays_behind(self, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
        """By default the runner reads os.environ: the key and the credentials folder are not passed."""
        monkeypatch.setenv("PICWISH_API_KEY", KEY)
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/ocr-watch")
        monkeypatch.setenv("LC_ALL", "C.UTF-8")
        out = tmp_path / "env.txt"

        async def body(runner: HookRunner) -> None:
            runner.submit(sh('env > "$1"', out), facts(source=None))
            await runner.drain()

        run(body, secrets=[KEY])
        names = {line.split(b"=", 1)[0] for line in out.read_bytes().splitlines()}
        assert b"PICWISH_API_KEY" not in names and b"CREDENTIALS_DIRECTORY" not in names
        assert KEY.encode() not in out.read_bytes()
        assert {b"PATH", b"LC_ALL", b"OCRW_SOURCE"} <= names


class TestEndings:
    @pytest.mark.parametrize("trap", ["", "trap '' TERM; "], ids=["sigterm", "sigterm_ignored"])
    def test_a_hook_past_its_timeout_is_killed_with_its_children(self, tmp_path: Path, trap: str) -> None:
        """The whole group goes: SIGTERM, and SIGKILL for what ignores it; hook_timeout is logged."""
        script = trap + 'sleep 30 & echo $! > "$1/child"; echo $$ > "$1/leader"; wait'
        limits = HookLimits(timeout_s=1.0, kill_grace_s=0.3)

        async def body(runner: HookRunner) -> None:
            runner.submit(sh(script, tmp_path), facts())
            await runner.drain()

        with capture_logs() as logged:
            runner = run(body, limits)
        (timeout,) = events(logged, "hook_timeout")
        assert timeout["timeout_s"] == 1.0 and timeout["hook"] == "on_done" and timeout["job"] == "invoices"
        assert runner.counts == {"timed_out": 1}
        pids = [int((tmp_path / who).read_text()) for who in ("leader", "child")]
        wait_for(lambda: not any(map(alive, pids)), timeout=5, what="the hook and its child to be gone")

    def test_a_failing_hook_is_logged_with_the_last_lines_of_its_stderr(self, tmp_path: Path) -> None:
        """Exit 3 is hook_failed with the code and stderr's last ten lines; the next hook still runs."""
        chatty = sh('i=0; while [ $i -lt 50 ]; do echo "line $i" >&2; i=$((i+1)); done; exit 3')

        async def body(runner: HookRunner) -> None:
            runner.submit(chatty, facts())
            runner.submit(sh('touch "$1"', tmp_path / "next"), facts())
            await runner.drain()

        with capture_logs() as logged:
            runner = run(body, HookLimits(max_running=1))
        (failed,) = events(logged, "hook_failed")
        assert failed["code"] == 3 and failed["stderr"] == [f"line {i}" for i in range(40, 50)]
        assert failed["command"] == "sh" and failed["path"] == "/srv/arch/a.pdf"
        assert (tmp_path / "next").exists() and runner.counts == {"failed": 1, "done": 1}

    def test_a_chatty_hook_is_drained_and_only_its_tail_kept(self) -> None:
        """8 MB on stdout and stderr neither blocks the hook on a full pipe nor lands in the log."""
        flood = sh("head -c 8000000 /dev/zero; head -c 8000000 /dev/zero >&2; echo >&2; echo last >&2; exit 1")

        async def body(runner: HookRunner) -> None:
            runner.submit(flood, facts())
            await runner.drain()

        with capture_logs() as logged:
            run(body, HookLimits(output_tail_bytes=4096))
        (failed,) = events(logged, "hook_failed")
        assert failed["stderr"][-1] == "last" and len("".join(failed["stderr"])) <= 4096 * 4

    def test_a_hook_that_cannot_start_is_logged_not_raised(self, tmp_path: Path) -> None:
        """A missing program and one that is not executable are hook_not_started, by errno."""
        not_executable = tmp_path / "hook.sh"
        not_executable.write_text("#!/bin/sh\nexit 0\n")

        async def body(runner: HookRunner) -> None:
            assert runner.submit([str(tmp_path / "missing")], facts())
            assert runner.submit([str(not_executable)], facts())
            await runner.drain()

        with capture_logs() as logged:
            runner = run(body)
        assert [e["errno"] for e in events(logged, "hook_not_started")] == ["ENOENT", "EACCES"]
        assert runner.counts == {"not_started": 2}

    def test_a_secret_a_hook_prints_is_redacted_in_the_log(self, json_log: io.StringIO) -> None:
        """A hook's stderr goes through the log's redaction like any other field."""
        async def body(runner: HookRunner) -> None:
            runner.submit(sh(f'echo "bad token {KEY}" >&2; exit 1'), facts())
            await runner.drain()

        run(body)
        assert KEY not in json_log.getvalue()
        failed = [json.loads(line) for line in json_log.getvalue().splitlines()]
        assert [e["stderr"] for e in failed if e["event"] == "hook_failed"] == [["bad token ***"]]


class TestLimits:
    def test_no_more_than_max_running_at_once(self, tmp_path: Path) -> None:
        """Each hook records how many were running when it started; never more than two."""
        script = ('touch "$1/run.$2"; ls "$1" | grep -c "^run\\." > "$1/seen.$2"; '
                  'while [ ! -e "$1/go.$2" ]; do sleep 0.01; done; rm "$1/run.$2"')

        def started() -> set[str]:
            return {p.name.split(".")[1] for p in tmp_path.glob("seen.*")}

        async def body(runner: HookRunner) -> None:
            for n in range(5):
                runner.submit(sh(script, tmp_path, n), facts())
            released: set[str] = set()
            while len(released) < 5:
                await until(lambda: len(started() - released) == min(2, 5 - len(released)), "two running")
                first = min(started() - released)
                (tmp_path / f"go.{first}").touch()
                released.add(first)
            await runner.drain()

        runner = run(body, HookLimits(max_running=2))
        assert max(int((tmp_path / f"seen.{n}").read_text()) for n in range(5)) == 2
        assert runner.counts == {"done": 5}

    def test_a_full_queue_drops_the_newest_and_says_so(self, tmp_path: Path) -> None:
        """One running and two waiting: the fourth is not run, and hook_dropped names it."""
        async def body(runner: HookRunner) -> None:
            accepted = [runner.submit(sh('while [ ! -e "$1/go" ]; do sleep 0.01; done', tmp_path), facts())]
            await until(lambda: runner.counts == {} and runner.busy == 1, "the first hook to run")
            accepted += [runner.submit(sh('touch "$1/$2"', tmp_path, n), facts(source=f"/in/{n}")) for n in (2, 3, 4)]
            assert accepted == [True, True, True, False]
            (tmp_path / "go").touch()
            await runner.drain()

        with capture_logs() as logged:
            runner = run(body, HookLimits(max_running=1, max_queued=2))
        (dropped,) = events(logged, "hook_dropped")
        assert dropped["reason"] == "queue_full" and dropped["path"] == "/in/4"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["2", "3", "go"]
        assert runner.counts == {"done": 3, "dropped": 1}

    def test_the_loop_runs_while_a_hook_does(self, tmp_path: Path) -> None:
        """The hook waits for a file only the loop writes: a runner that blocked the loop would
        let it time out instead."""
        async def body(runner: HookRunner) -> None:
            runner.submit(sh('touch "$1/ready"; while [ ! -e "$1/go" ]; do sleep 0.01; done; touch "$1/went"',
                             tmp_path), facts())
            await until(lambda: (tmp_path / "ready").exists(), "the hook to start")
            (tmp_path / "go").touch()
            await runner.drain()

        runner = run(body, HookLimits(timeout_s=5.0))
        assert (tmp_path / "went").exists() and runner.counts == {"done": 1}


class TestShutdown:
    def test_closing_stops_running_hooks_after_a_grace_and_drops_queued_ones(self, tmp_path: Path) -> None:
        """aclose gives the running hook its grace, then stops its group; the queued one never runs."""
        async def body(runner: HookRunner) -> None:
            runner.submit(sh('sleep 30 & echo $! > "$1/child"; wait', tmp_path), facts(source="/in/a"))
            runner.submit(sh('touch "$1/never"', tmp_path), facts(source="/in/b"))
            await until(lambda: (tmp_path / "child").exists(), "the hook to start")

        limits = HookLimits(max_running=1, shutdown_grace_s=0.2, kill_grace_s=0.2)
        with capture_logs() as logged:
            runner = run(body, limits)
        assert [(e["path"], e["reason"]) for e in events(logged, "hook_dropped")] == [("/in/b", "shutdown")]
        assert [(e["path"], e["reason"]) for e in events(logged, "hook_stopped")] == [("/in/a", "shutdown")]
        assert runner.counts == {"stopped": 1, "dropped": 1}
        assert not (tmp_path / "never").exists()
        child = int((tmp_path / "child").read_text())
        wait_for(lambda: not alive(child), timeout=5, what="the hook's child to be gone")
        assert runner.submit(sh("true"), facts()) is False

    def test_a_hook_that_ends_within_the_grace_finishes(self, tmp_path: Path) -> None:
        """A hook near its end when the daemon stops is let finish and logged as done."""
        async def body(runner: HookRunner) -> None:
            runner.submit(sh('touch "$1/ready"; while [ ! -e "$1/go" ]; do sleep 0.01; done', tmp_path), facts())
            await until(lambda: (tmp_path / "ready").exists(), "the hook to start")
            closing = asyncio.create_task(runner.aclose())
            await asyncio.sleep(0)  # one turn: aclose has begun its grace
            assert runner.submit(sh("true"), facts()) is False
            (tmp_path / "go").touch()
            await closing

        runner = run(body, HookLimits(shutdown_grace_s=5.0))
        assert runner.counts == {"done": 1, "dropped": 1}


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The daemon's JSON log configured with KEY as a secret; put back afterwards."""
    with json_log_into([KEY]) as out:
        yield out


class TestPureParts:
    def test_the_environment_keeps_locale_path_and_home_unless_they_hold_a_secret(self) -> None:
        """LC_* and the few named variables pass; one whose value holds the key does not; PATH has a default."""
        env = hook_environment({"LC_TIME": "de_DE.UTF-8", "HOME": f"/home/{KEY}", "TZ": "UTC",
                                "PICWISH_API_KEY": KEY, "SSH_AUTH_SOCK": "/run/ssh"}, secrets=[KEY])
        assert env == {b"LC_TIME": b"de_DE.UTF-8", b"TZ": b"UTC", b"PATH": b"/usr/local/bin:/usr/bin:/bin"}

    def test_a_nul_in_a_reason_is_dropped_not_fatal(self) -> None:
        """No environment carries a NUL byte; a reason that had one still reaches the hook."""
        variables = facts(HookEvent.QUARANTINED, reason="bad\x00answer").variables()
        assert variables[b"OCRW_REASON"] == b"badanswer" and variables[b"OCRW_OUTPUTS"] == b""

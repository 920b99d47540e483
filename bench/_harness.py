"""Shared plumbing of the benchmarks: emulator subprocess, workspace and config, daemon
subprocess, percentiles, and the report printed at the end of every run.

The emulator always runs in its own process so its CPU is never billed to the daemon
(or to a baseline running in the bench process). Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml

KEY = "bench-key"
PNG = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parent.parent
# A bench that imports ocr_watch itself (planner_sim, client_cpu, throughput's baselines)
# measures this tree, as its subprocesses do (cwd=ROOT), not whatever copy pip installed.
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))
CLK_TCK = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


def png_bytes(n: int, size: int = 200) -> bytes:
    """A distinct small 'PNG' per n (the emulator sniffs the magic; the rest is payload)."""
    body = f"bench image number {n}\n".encode() * (size // 20 + 1)
    return PNG + body[:size]


def command_line() -> str:
    """The exact command that produced this run."""
    return shlex.join(["python", os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])


def free_port() -> int:
    """A loopback port nobody listens on now (for the daemon's callback receiver)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def callback_section() -> dict[str, Any]:
    """The daemon's ``callback:`` config for an emulator on this machine, on a free port."""
    port = free_port()
    return {"url": f"http://127.0.0.1:{port}/ocr-watch/callback", "listen": f"127.0.0.1:{port}",
            "fallback_seconds": 60}


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.05, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def percentile(values: Iterable[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]; NaN for no values."""
    data = sorted(values)
    if not data:
        return math.nan
    pos = (len(data) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


# -- emulator ---------------------------------------------------------------------------------


class EmulatorProc:
    """`python -m ocr_watch.emulator` in its own process, inspected over its control routes."""

    def __init__(self, *, rps: float, processing_seconds: float, jitter: float = 0.0,
                 max_upload_mb: float | None = None, seed: int = 0, extra: Iterable[str] = ()) -> None:
        self.cmd = [sys.executable, "-m", "ocr_watch.emulator", "--host", "127.0.0.1", "--port", "0",
                    "--key", KEY, "--rps", str(rps), "--processing-seconds", str(processing_seconds),
                    "--jitter", str(jitter), "--seed", str(seed), *extra]
        if max_upload_mb is not None:
            self.cmd += ["--max-upload-mb", str(max_upload_mb)]
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        self.result_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http://127.0.0.1:"):
            self.proc.kill()
            raise RuntimeError(f"emulator did not start: {shlex.join(self.cmd)} printed {self.base_url!r}")

    def get(self, route: str) -> Any:
        with urllib.request.urlopen(f"{self.base_url}/_emulator/{route}", timeout=60) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        return self.get("stats")  # type: ignore[no-any-return]

    def requests(self) -> list[dict[str, Any]]:
        return self.get("requests")  # type: ignore[no-any-return]

    def tasks(self) -> list[dict[str, Any]]:
        return self.get("tasks")  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> EmulatorProc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def api_figures(emu: EmulatorProc, files: int) -> dict[str, Any]:
    """Rate, API calls per file, 429s and done-to-downloaded latency, all from the emulator's logs."""
    reqs = emu.requests()
    api = [r for r in reqs if r["host"] == "api"]
    downloads = [r for r in reqs if r["host"] == "result"]
    tasks = emu.tasks()
    lat = [t["first_download_t"] - t["done_t"] for t in tasks
           if t.get("done_t") is not None and t.get("first_download_t") is not None]
    start = min(r["t"] for r in api) if api else math.nan
    end = max(r["t"] for r in downloads) if downloads else math.nan
    span = end - start
    return {
        "files": files,
        "span_s": span,
        "files_per_min": files / span * 60 if span > 0 else math.nan,
        "api_calls": len(api),
        "calls_per_file": len(api) / files if files else math.nan,
        "creates": sum(1 for r in api if r["method"] == "POST"),
        "status_429": sum(1 for r in api if r["status"] == 429),
        "statuses": dict(Counter(str(r["status"]) for r in api)),
        "downloads": len(downloads),
        "done_to_dl_p50": percentile(lat, 50),
        "done_to_dl_p95": percentile(lat, 95),
        "tasks_done": sum(1 for t in tasks if t.get("state") == 1),
    }


# -- workspace and daemon ---------------------------------------------------------------------


class Workspace:
    """inbox/outbox/quarantine/archive under one temporary root, and the daemon's config."""

    def __init__(self, root: Path | None = None, prefix: str = "ocr-bench-") -> None:
        self._tmp = None
        if root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=prefix)
            root = Path(self._tmp.name)
        self.root = root
        for name in ("inbox", "outbox", "quarantine", "archive", "staging"):
            (root / name).mkdir(parents=True, exist_ok=True)

    inbox = property(lambda self: self.root / "inbox")
    outbox = property(lambda self: self.root / "outbox")
    archive = property(lambda self: self.root / "archive")
    quarantine = property(lambda self: self.root / "quarantine")
    staging = property(lambda self: self.root / "staging")
    config_path = property(lambda self: self.root / "config.yaml")

    def write_config(self, base_url: str, **sections: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            "folders": {"inbox": "inbox", "outbox": "outbox", "quarantine": "quarantine", "archive": "archive"},
            "api": {"base_url": base_url, "key": KEY, "requests_per_second": 2},
            "watch": {"rescan_seconds": 0},
        }
        for key, value in sections.items():
            if isinstance(value, dict):
                config.setdefault(key, {}).update(value)
            else:
                config[key] = value
        self.config_path.write_text(yaml.safe_dump(config))
        return config

    def count(self, folder: Path) -> int:
        n = 0
        stack = [folder]
        while stack:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif not entry.name.endswith(".error.json"):
                        n += 1
        return n

    def finished(self) -> int:
        """Sources that reached the archive or quarantine."""
        return self.count(self.archive) + self.count(self.quarantine)

    def cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


class Daemon:
    """`python -m ocr_watch run --config FILE`, its JSON log lines tailed from a file."""

    def __init__(self, ws: Workspace, log_name: str = "daemon.log") -> None:
        self.ws = ws
        self.log_path = ws.root / log_name
        self.proc: subprocess.Popen[bytes] | None = None
        self._offset = 0
        self._partial = b""
        self.counts: Counter[str] = Counter()
        self.kept: list[dict[str, Any]] = []
        self.keep: set[str] = set()

    def start(self, keep: Iterable[str] = ()) -> Daemon:
        self.keep = set(keep)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ocr_watch", "run", "--config", str(self.ws.config_path)],
                stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def poll_log(self) -> Counter[str]:
        """Read new log lines; count events and keep those named in `keep`."""
        with self.log_path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            name = event.get("event", "?")
            self.counts[name] += 1
            if name in self.keep:
                self.kept.append(event)
        return self.counts

    def wait_event(self, name: str, count: int = 1, timeout: float = 60.0, interval: float = 0.05) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}; see {self.log_path}")
            return self.poll_log()[name] >= count
        wait_until(ready, timeout, interval, what=f"{count} x {name}")

    def cpu_seconds(self) -> float:
        """utime + stime of the daemon process so far (from /proc/<pid>/stat)."""
        return proc_cpu_seconds(self.pid)

    def status_kib(self, key: str = "VmHWM") -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def stop(self, timeout: float = 40.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def proc_cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of a live process, its threads included, from /proc/<pid>/stat.

    The split says whether a cost is Python's (user) or the kernel's: fsyncs, renames, sockets.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (its threads included)."""
    return sum(proc_cpu_split(pid))


def log_time(event: dict[str, Any]) -> float:
    """The wall time of a daemon log event (structlog's ISO timestamp)."""
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def code_version() -> str:
    """Which ocr_watch the daemon ran: the git commit of ROOT and whether ocr_watch/ was edited."""
    snapshot = ROOT / "SNAPSHOT"
    if snapshot.exists():
        return snapshot.read_text().strip()
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "ocr_watch"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return f"{ROOT} (no git)"
    return f"{ROOT} at {head or '?'}" + (" with uncommitted changes in ocr_watch/" if dirty else "")


# -- report ------------------------------------------------------------------------------------


class Report:
    """Figures with their targets, printed as one block with the command that produced them."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.command = command_line()
        self.started = time.monotonic()
        self.rows: list[tuple[str, str, str, bool | None]] = []
        self.notes: list[str] = []

    def figure(self, name: str, value: float | int | str, fmt: str = "{:.2f}", unit: str = "",
               target: str = "", ok: bool | None = None) -> None:
        text = value if isinstance(value, str) else fmt.format(value)
        self.rows.append((name, f"{text} {unit}".strip(), target, ok))

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  .. {text}", flush=True)

    @property
    def missed(self) -> list[str]:
        return [name for name, _, _, ok in self.rows if ok is False]

    def print(self) -> None:
        width = max((len(r[0]) for r in self.rows), default=10)
        vwidth = max((len(r[1]) for r in self.rows), default=10)
        print()
        print(f"== {self.title} ==")
        print(f"command: {self.command}")
        print(f"code: {code_version()}")
        print(f"wall time of the run: {time.monotonic() - self.started:.1f} s")
        for name, value, target, ok in self.rows:
            verdict = "" if ok is None else ("PASS" if ok else "MISS")
            tgt = f"target {target}" if target else ""
            print(f"  {name:<{width}}  {value:>{vwidth}}   {tgt:<22} {verdict}".rstrip())
        for note in self.notes:
            print(f"  note: {note}")
        print(f"targets missed: {', '.join(self.missed) if self.missed else 'none'}", flush=True)

"""Plumbing of the benchmarks: emulator subprocess, workspace and config, daemon subprocess,
percentiles, and the report printed at the end of every run. What the end-to-end tests need
too (folders, the daemon process, waits, test files) comes from `ocr_watch.testing`.

The emulator always runs in its own process so its CPU is never billed to the daemon
(or to a baseline running in the bench process). Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

KEY = "bench-key"
ROOT = Path(__file__).resolve().parent.parent
# A bench that imports ocr_watch itself (planner_sim, client_cpu, throughput's baselines)
# measures this tree, as its subprocesses do (cwd=ROOT), not whatever copy pip installed.
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))
CLK_TCK = os.sysconf("SC_CLK_TCK")

from ocr_watch.emulator.server import CREDITS_PATH  # noqa: E402
from ocr_watch.testing import PNG, DaemonProcess, Folders, free_port, png_bytes  # noqa: E402
from ocr_watch.testing import wait_for as wait_until  # noqa: E402

__all__ = ["KEY", "PNG", "Daemon", "EmulatorProc", "Report", "Workspace", "api_figures", "api_gaps_ms",
           "callback_section", "code_version", "command_line", "free_port", "log_time", "percentile", "png_bytes",
           "proc_cpu_seconds", "proc_cpu_split", "wait_until"]


def command_line() -> str:
    """The exact command that produced this run."""
    return shlex.join(["python", os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])


def callback_section() -> dict[str, Any]:
    """The daemon's ``callback:`` config for an emulator on this machine, on a free port."""
    port = free_port()
    return {"url": f"http://127.0.0.1:{port}/ocr-watch/callback", "listen": f"127.0.0.1:{port}",
            "fallback_seconds": 60}


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
    # The balance is asked at start and every 5 minutes whatever the files (balance.py): it is
    # counted apart, not as a file's call, and does not open the span.
    balance = [r for r in reqs if r["host"] == "api" and r["path"] == CREDITS_PATH]
    api = [r for r in reqs if r["host"] == "api" and r["path"] != CREDITS_PATH]
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
        "credit_queries": len(balance),
    }


def api_gaps_ms(requests: list[dict[str, Any]], spacing_s: float) -> dict[str, Any]:
    """Gaps between consecutive API requests as the emulator logged their arrival (ms): what a
    strict gateway measures. ``below``: how many were closer than ``spacing_s``."""
    times = sorted(float(r["t"]) for r in requests if r["host"] == "api")
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(times)]
    if not gaps:
        return {}
    return {"min": min(gaps), "p1": percentile(gaps, 1), "p50": percentile(gaps, 50),
            "below": sum(1 for g in gaps if g < spacing_s * 1000)}


# -- workspace and daemon ---------------------------------------------------------------------


class Workspace(Folders):
    """The shared folders under one temporary root (and `staging`, to write files whole before
    moving them in), with the benchmarks' config: the quota of 2 req/s, no rescans."""

    def __init__(self, root: Path | None = None, prefix: str = "ocr-bench-") -> None:
        self._tmp = None
        if root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=prefix)
            root = Path(self._tmp.name)
        super().__init__(root)
        for name in ("inbox", "outbox", "quarantine", "archive", "staging"):
            (root / name).mkdir(parents=True, exist_ok=True)

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    def write_config(self, base_url: str, **sections: Any) -> dict[str, Any]:
        return self.write_yaml({
            "folders": {"inbox": "inbox", "outbox": "outbox", "quarantine": "quarantine", "archive": "archive"},
            "api": {"base_url": base_url, "key": KEY, "requests_per_second": 2},
            "watch": {"rescan_seconds": 0},
        }, sections)

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


class Daemon(DaemonProcess):
    """The shared daemon process (run from ROOT), its JSON log tailed incrementally: a
    benchmark's log has hundreds of thousands of lines, too many to re-read at each look."""

    def __init__(self, ws: Workspace, log_name: str = "daemon.log") -> None:
        super().__init__(ws.config_path, ws.root / log_name, cwd=ROOT)
        self.ws = ws
        self._offset = 0
        self._partial = b""
        self.counts: Counter[str] = Counter()
        self.kept: list[dict[str, Any]] = []
        self.keep: set[str] = set()

    def start(self, keep: Iterable[str] = ()) -> Daemon:
        self.keep = set(keep)
        super().start()
        return self

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

    def wait_event(self, name: str, timeout: float = 60.0, count: int = 1, *,
                   interval: float = 0.05) -> list[dict[str, Any]]:
        """Like the shared one, from the tailed counts; the kept events of that name."""
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}; see {self.log_path}")
            return self.poll_log()[name] >= count
        wait_until(ready, timeout, interval, what=f"{count} x {name}")
        return [e for e in self.kept if e.get("event") == name]

    def cpu_seconds(self) -> float:
        """utime + stime of the daemon process so far (from /proc/<pid>/stat)."""
        return proc_cpu_seconds(self.pid)

    def status_kib(self, key: str = "VmHWM") -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)


def run_workloads(workloads: dict[str, Callable[[], None]], emulators: Iterable[EmulatorProc], *,
                  sequential: bool = False) -> bool:
    """Run each workload (side by side in threads, or one after another), then stop every
    emulator; a workload that raised is printed on stderr. True when all finished."""
    errors: dict[str, BaseException] = {}

    def guarded(name: str) -> None:
        try:
            workloads[name]()
        except BaseException as exc:  # reported below
            errors[name] = exc

    try:
        if sequential:
            for name in workloads:
                guarded(name)
        else:
            threads = [threading.Thread(target=guarded, args=(name,), name=name) for name in workloads]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        for emu in emulators:
            emu.stop()
    for name, exc in errors.items():
        print(f"{name} failed: {exc!r}", file=sys.stderr)
    return not errors


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

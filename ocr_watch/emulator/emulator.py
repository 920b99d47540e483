"""The ``Emulator``: owns the shared state and the two listeners, and runs the scheduler.

Handlers (``server.py``) call the underscore methods here; tests and the CLI use
the public ones. All shared state sits behind locks (``TaskStore.lock`` for
tasks and credits, ``self._lock`` for counters and the request log).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from .callbacks import CallbackSender
from .faults import FaultBook, parse_triggers
from .ratelimit import make_limiter
from .results import render_result, sniff_kind
from .server import ApiHandler, EmulatorHTTPServer, ResultHandler
from .settings import EmulatorSettings
from .signing import UrlSigner, result_path
from .tasks import Event, Task, TaskStore, expires_at
from .uplink import Uplink
from .validation import CreateRequest

_COUNTERS = ("create_requests", "creates", "queries", "credit_queries", "downloads", "rate_limited", "faults_fired",
             "downloads_with_api_key", "callbacks_sent", "callbacks_failed")


class Emulator:
    """An in-process PicWish Document OCR emulator on loopback (see the package docstring)."""

    def __init__(self, settings: EmulatorSettings | None = None, host: str = "127.0.0.1",
                 port: int = 0, result_port: int = 0) -> None:
        self.settings = settings or EmulatorSettings()
        self._host, self._port, self._result_port = host, port, result_port
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._counters: Counter[str] = Counter()
        self._log: list[dict[str, Any]] = []
        self._results: dict[tuple[str, str], bytes] = {}
        s = self.settings
        self.limiter = make_limiter(s.limiter, s.requests_per_second, s.effective_burst)
        self.uplink = Uplink(self.settings.upload_bytes_per_second, sleep=self._sleep)
        self.faults = FaultBook()
        self.signer = UrlSigner(self.settings.seed)
        self.store = TaskStore(self.settings.seed, self.settings.credits, issue_url=self._issue_url,
                               render_size=lambda t: len(self._render(t)), on_events=self._on_events)
        self._callbacks = CallbackSender(self._callback_done)
        self._api: EmulatorHTTPServer | None = None
        self._result: EmulatorHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self.base_url = ""
        self.result_base_url = ""

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind both listeners and start serving; returns once they accept connections."""
        if self._api is not None:
            return self
        self._stop.clear()
        self._api = EmulatorHTTPServer((self._host, self._port), ApiHandler, self, "api")
        self._result = EmulatorHTTPServer((self._host, self._result_port), ResultHandler, self, "result")
        self.base_url = f"http://{self._host}:{self._api.server_address[1]}"
        self.result_base_url = f"http://{self._host}:{self._result.server_address[1]}"
        self._callbacks.start()
        self._threads = [
            threading.Thread(target=self._api.serve_forever, kwargs={"poll_interval": 0.05},
                             name="emulator-api-listener", daemon=True),
            threading.Thread(target=self._result.serve_forever, kwargs={"poll_interval": 0.05},
                             name="emulator-result-listener", daemon=True),
            threading.Thread(target=self._scheduler, name="emulator-scheduler", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Close both listeners and every connection, join all threads. Idempotent."""
        if self._api is None or self._result is None:
            return
        self._stop.set()
        self._wake.set()
        for server in (self._api, self._result):
            server.shutdown()
            server.server_close()
            server.close_all()
        for thread in self._threads:
            thread.join(5.0)
        self._callbacks.stop()
        self._api = self._result = None
        self._threads = []

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- public inspection and control ------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters (the JSON of ``GET /_emulator/stats``)."""
        self.store.settle()
        with self.store.lock, self._lock:
            out: dict[str, Any] = {name: self._counters[name] for name in _COUNTERS}
            out.update({
                "credits_spent": self.store.credits_spent,
                "credits_left": self.store.credits_left,
                "credits_overdrawn": self.store.credits_overdrawn,
                "tasks_by_sha256": dict(self.store.by_sha256),
                "requests_total": len(self._log),
                "status_counts": dict(Counter(str(r["status"]) for r in self._log)),
                "tasks_active": sum(1 for t in self.store.tasks.values() if not t.terminal),
            })
            return out

    def requests(self) -> list[dict[str, Any]]:
        """The request log (control routes excluded; failed callbacks included, host "callback")."""
        with self._lock:
            return sorted((dict(r) for r in self._log), key=lambda r: float(r["t"]))

    def tasks(self) -> list[dict[str, Any]]:
        """Every task, forgotten ones flagged."""
        self.store.settle()
        return self.store.describe(self.settings.task_retention_seconds)

    def add_fault(self, kind: str, *, route: str = "any", count: int = 1, **params: Any) -> dict[str, Any]:
        """Arm a fault rule (see ``faults.py``); returns it as a dict. ``ValueError`` if invalid."""
        return self.faults.add(kind, route=route, count=count, **params).as_dict()

    def update(self, **changes: Any) -> EmulatorSettings:
        """Change settings live. Processing times apply to tasks created afterwards."""
        with self.store.lock, self._lock:  # lock order everywhere: store, then self
            new = self.settings.replace(**changes)
            old, self.settings = self.settings, new
            if new.limiter != old.limiter:
                self.limiter = make_limiter(new.limiter, new.requests_per_second, new.effective_burst)
            elif (new.requests_per_second, new.effective_burst) != (old.requests_per_second, old.effective_burst):
                self.limiter.configure(new.requests_per_second, new.effective_burst)
            if new.upload_bytes_per_second != old.upload_bytes_per_second:
                self.uplink.configure(new.upload_bytes_per_second)
            if "credits" in changes:
                self.store.credits_left = new.credits
            return new

    def reset(self) -> None:
        """Forget tasks, counters, the request log and faults; refill buckets and credits."""
        with self.store.lock, self._lock:
            self.store.reset(self.settings.credits)
            self._counters.clear()
            self._log.clear()
            self._results.clear()
            self.faults.clear()
            self.limiter.reset()

    # --- used by the handlers ---------------------------------------------------------------

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counters[name] += n

    def _count_fault(self) -> None:
        self._count("faults_fired")

    def _log_request(self, **entry: Any) -> None:
        with self._lock:
            self._log.append(entry)

    def _sleep(self, seconds: float) -> None:
        """A delay that ``stop`` interrupts."""
        self._stop.wait(seconds)

    def _credits_left(self) -> int | None:
        """The balance as the balance route gives it (None: unlimited)."""
        with self.store.lock:
            self.store.settle()
            return self.store.credits_left

    def _has_credit(self) -> bool:
        with self.store.lock:
            self.store.settle()
            return self.store.credits_left is None or self.store.credits_left > 0

    def _create_task(self, req: CreateRequest) -> Task:
        s = self.settings
        if req.file is not None:
            name = req.file.filename
            sha, size = req.file.sha256, req.file.size
            supported = sniff_kind(req.file.head) is not None
        else:
            name = (req.image_url or "").rstrip("/").rsplit("/", 1)[-1]
            sha, size, supported = "", 0, False
        trig = parse_triggers(name)
        failure: int | None = trig.state
        if failure is None and not supported:
            failure = -7 if req.file is not None else -3  # image_url: the emulator fetches nothing
        if failure is None:
            rule = self.faults.take(frozenset({"state"}), fmt=req.fmt)
            if rule is not None:
                failure = int(rule.params["state"])
                self._count_fault()
        task = self.store.create(
            sha256=sha, source_name=name, size=size, fmt=req.fmt, callback_url=req.callback_url,
            base_seconds=s.processing_seconds, per_mb=s.processing_seconds_per_mb, jitter=s.processing_jitter,
            override_seconds=trig.seconds, failure_state=failure, force_expired_url=trig.expired,
            broken_download=trig.broken_download,
        )
        # What the client asked for, for tests of per-file options (a job's, a rule's).
        task.extra.update(language=",".join(req.languages), password=req.password)
        self._count("creates")
        self._wake.set()
        return task

    def _query_envelope(self, task_id: str) -> dict[str, Any] | None:
        with self.store.lock:
            task = self.store.lookup(task_id, self.settings.task_retention_seconds)
            if task is None:
                return None
            task.queries += 1
            envelope = self.store.envelope(task)
            url = envelope["data"].get("file")
            if url is not None and self.settings.fresh_url_per_query:
                if task.extra.get("url_served"):
                    envelope["data"]["file"] = task.result_url = self.signer.sign(
                        self.result_base_url, result_path(task.task_id, task.fmt),
                        expires_at(time.time(), self.settings.result_ttl_seconds, False))
                task.extra["url_served"] = True
            return envelope

    def _render(self, task: Task) -> bytes:
        key = (task.task_id, task.fmt)
        with self._lock:
            body = self._results.get(key)
            if body is None:
                body = self._results[key] = render_result(task.sha256, task.source_name, task.fmt)
            return body

    def _result_for_download(self, task_id: str, fmt: str) -> tuple[bytes, str | None] | None:
        """(body, broken-download reason or None) for a signed download, or None if forgotten."""
        with self.store.lock:
            task = self.store.lookup(task_id, self.settings.task_retention_seconds)
            if task is None or task.result_url is None or task.fmt != fmt:
                return None
            task.downloads += 1
            if task.first_download_t is None:
                task.first_download_t = time.time()
            broken: str | None = None
            if task.broken_download_pending:
                task.broken_download_pending = False
                broken = "brokendl_trigger"
            elif self.faults.take(frozenset({"broken_download"})) is not None:
                self._count_fault()
                broken = "broken_download"
        return self._render(task), broken

    def _issue_url(self, task: Task, done_wall: float) -> str:
        expired = task.force_expired_url
        if not expired and self.faults.take(frozenset({"expired_url"})) is not None:
            self._count_fault()
            task.extra["fault"] = "expired_url"
            expired = True
        expires = expires_at(done_wall, self.settings.result_ttl_seconds, expired)
        return self.signer.sign(self.result_base_url, result_path(task.task_id, task.fmt), expires)

    def _on_events(self, events: list[Event]) -> None:
        for event in events:
            if event.task.callback_url:
                self._callbacks.submit(event.task.callback_url, event.task.task_id, event.envelope)

    def _callback_done(self, url: str, task_id: str, status: int | None, error: str | None) -> None:
        if error is None:
            self._count("callbacks_sent")
            return
        self._count("callbacks_failed")
        self._log_request(t=time.time(), host="callback", method="POST", path=url, api_key_present=False,
                          status=status or 0, task_id=task_id, fault=None, error=error)

    def _scheduler(self) -> None:
        """Settle transitions as they fall due, so callbacks go out on time."""
        while not self._stop.is_set():
            due = self.store.next_due()
            timeout = 1.0 if due is None else min(1.0, max(0.0, due - self.store.now()) + 0.001)
            self._wake.wait(timeout)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.store.settle()
            except Exception:  # keep the scheduler alive
                pass

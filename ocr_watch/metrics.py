"""Prometheus metrics at `metrics.listen` (off unless set): what a monitoring stack scrapes.

Why prometheus_client: it is the reference implementation of the text format, its counters
are thread-safe, and it brings the process metrics (memory, CPU, open files) for free.

Everything lives in a registry of its own, never the library's global one, so two daemons in
one process (the tests) or an embedding never mix their numbers. The daemon's parts report
through the :class:`ocr_watch.recorder.Recorder` protocol they are given; this module
implements it and imports none of them. Two families are read at each scrape instead:
`ocr_watch_files_in_state` from the journal (read-only, as `status` reads it) and
`ocr_watch_account_paused` from a function the daemon gives.

Counters count from this process's start (a restart starts them at 0, which Prometheus'
`rate()` and `increase()` expect); the journal's totals over its life are in `status`.

    ocr_watch_files_total{job, outcome="done"|"quarantined"}   a file in several formats: one a format
    ocr_watch_files_in_state{job, state=...}           gauge, live journal states
    ocr_watch_api_requests_total{kind, code}           kind create|query|download|credits;
                                                       code the HTTP status, "error": no answer
    ocr_watch_credits_spent_total                      our tasks that ended done (billed)
    ocr_watch_possible_double_charges_total            lost create answers sent again
    ocr_watch_account_paused                           1 while the service refuses the account
    ocr_watch_credits_left                             the balance last read; absent: unknown
    ocr_watch_file_seconds                             histogram, admitted to finished
    ocr_watch_result_lag_seconds                       histogram, done at the service to result on disk
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ocr_watch.config import ConfigError, Listen, listen_text
from ocr_watch.journal.reader import read_job_counts
from ocr_watch.journal.states import TERMINAL, FileState
from ocr_watch.recorder import ApiKind, Outcome

__all__ = ["Metrics", "start"]

log = structlog.get_logger("ocr_watch.metrics")

FILE_BUCKETS_S = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
LAG_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)
# Done times kept for tasks whose results are not on disk yet (shared tasks: several results).
_DONE_KEPT = 4096
_LIVE_STATES = [s for s in FileState if s not in TERMINAL]


class _JournalStates(Collector):
    """`ocr_watch_files_in_state`, read from the journal at each scrape (a thread of the
    HTTP server; a read-only connection of its own, never the daemon's)."""

    def __init__(self, journal: Path, jobs: tuple[str, ...]) -> None:
        self._journal = journal
        self._jobs = jobs

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("ocr_watch_files_in_state", "Files in each live journal state, by job.",
                                   labels=["job", "state"])
        by_job = read_job_counts(self._journal)
        for job in dict.fromkeys([*self._jobs, *by_job]):
            counts = by_job.get(job, {})
            for state in _LIVE_STATES:
                family.add_metric([job, state.value], counts.get(state.value, 0))
        yield family


class _CreditsLeft(Collector):
    """`ocr_watch_credits_left`, present only while the figure is known."""

    def __init__(self) -> None:
        self.figure: int | None = None

    def collect(self) -> Iterator[Metric]:
        if self.figure is not None:
            yield GaugeMetricFamily("ocr_watch_credits_left", "Credits left on the account, as the service "
                                    "last said.", value=self.figure)


class Metrics:
    """The daemon's metrics: a :class:`~ocr_watch.recorder.Recorder`, and the HTTP endpoint."""

    def __init__(self, journal: Path | None = None, jobs: tuple[str, ...] = ("default",)) -> None:
        """`jobs`: the configured jobs' names, shown at 0 before their first file."""
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._files = Counter("ocr_watch_files", "Files finished, by job and outcome.", ["job", "outcome"],
                              registry=r)
        for job in jobs:
            for outcome in ("done", "quarantined"):
                self._files.labels(job, outcome)
        self._requests = Counter("ocr_watch_api_requests", "Requests to the service, by kind and HTTP status.",
                                 ["kind", "code"], registry=r)
        self._credits = Counter("ocr_watch_credits_spent", "Tasks of ours that ended done: one credit each.",
                                registry=r)
        self._doubles = Counter("ocr_watch_possible_double_charges",
                                "Uploads sent again after their answer was lost (may be billed twice).", registry=r)
        self._paused: Callable[[], bool] = lambda: False
        paused = Gauge("ocr_watch_account_paused", "1 while the service refuses the account.", registry=r)
        paused.set_function(lambda: 1.0 if self._paused() else 0.0)
        self._file_seconds = Histogram("ocr_watch_file_seconds", "Seconds from a file's admission to its end.",
                                       buckets=FILE_BUCKETS_S, registry=r)
        self._lag = Histogram("ocr_watch_result_lag_seconds",
                              "Seconds from a task done at the service to its result on disk.",
                              buckets=LAG_BUCKETS_S, registry=r)
        self._left = _CreditsLeft()
        r.register(self._left)
        if journal is not None:
            r.register(_JournalStates(journal, jobs))
        ProcessCollector(registry=r)
        self._done_at: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- the Recorder protocol (called on the event loop) -------------------------------------

    def api_request(self, kind: ApiKind, code: str) -> None:
        self._requests.labels(kind, code).inc()

    def file_finished(self, outcome: Outcome, seconds: float | None, job: str = "default") -> None:
        self._files.labels(job, outcome).inc()
        if seconds is not None:
            self._file_seconds.observe(seconds)

    def task_done(self, task_id: str, done_at: float) -> None:
        self._credits.inc()
        with self._lock:
            self._done_at[task_id] = done_at
            while len(self._done_at) > _DONE_KEPT:
                self._done_at.popitem(last=False)

    def result_stored(self, task_id: str | None, at: float) -> None:
        with self._lock:
            done = self._done_at.get(task_id) if task_id is not None else None
        if done is not None:
            self._lag.observe(max(0.0, at - done))

    def possible_double_charge(self) -> None:
        self._doubles.inc()

    def credits_left(self, figure: int | None) -> None:
        self._left.figure = figure

    def watch_account(self, paused: Callable[[], bool]) -> None:
        """Read `ocr_watch_account_paused` from `paused()` at each scrape (0 until given)."""
        self._paused = paused

    # -- the endpoint --------------------------------------------------------------------------

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Serve the text format at `/metrics` on a thread; where it listens. OSError if the
        address cannot be had."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        bound = self._server.server_address
        return str(bound[0]), int(bound[1])

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)
        self._server = self._thread = None


def start(listen: Listen | None, journal: Path, jobs: tuple[str, ...] = ("default",)) -> Metrics | None:
    """The daemon's metrics served at `metrics.listen`, or None when that is not set. A port
    that cannot be had is a configuration problem naming the key, as for `callback.listen`."""
    if listen is None:
        return None
    metrics = Metrics(journal, jobs)
    try:
        host, port = metrics.serve(listen.host, listen.port)
    except OSError as exc:
        raise ConfigError([f"metrics.listen: cannot listen on {listen_text(listen.host, listen.port)}: "
                           f"{exc.strerror or exc}"]) from None
    log.info("metrics_listening", host=host, port=port, path="/metrics")
    return metrics

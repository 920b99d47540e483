"""Delivery of ``callback_url`` notifications on a worker thread.

The reference leaves the payload undocumented; assumed: a POST of the same JSON
envelope as the query response. One worker keeps the order of a task's states.
Delivery failures are reported through ``on_result`` and never raise.
"""

from __future__ import annotations

import http.client
import json
import queue
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

#: (url, task_id, status or None, error or None)
ResultHook = Callable[[str, str, "int | None", "str | None"], None]


def post_json(url: str, payload: dict[str, Any], timeout: float = 5.0) -> int:
    """POST ``payload`` to ``url`` (http or https, certificates verified); return the HTTP status."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("callback_url must be an absolute http(s) URL")
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(parts.hostname, parts.port, timeout=timeout)
    body = json.dumps(payload).encode()
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


class CallbackSender:
    """A queue and one daemon thread posting notifications in order."""

    def __init__(self, on_result: ResultHook) -> None:
        self._queue: queue.Queue[tuple[str, str, dict[str, Any]] | None] = queue.Queue()
        self._on_result = on_result
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._run, name="emulator-callbacks", daemon=True)
        self._thread.start()

    def submit(self, url: str, task_id: str, payload: dict[str, Any]) -> None:
        """Queue one notification."""
        self._queue.put((url, task_id, payload))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the queued notifications; join the thread."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            url, task_id, payload = item
            try:
                status = post_json(url, payload)
                self._on_result(url, task_id, status, None if status < 400 else f"HTTP {status}")
            except Exception as exc:  # a callback must never crash the emulator
                self._on_result(url, task_id, None, f"{type(exc).__name__}: {exc}")

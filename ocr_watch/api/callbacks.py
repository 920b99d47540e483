"""The receiver of the service's callbacks: where it POSTs a task's news, so nobody has to ask.

Why: a query spends one request of the key's quota; a callback spends none. With callbacks a
file costs one API call (its create) instead of two or more, so the same key finishes about
twice the files per minute, and a result is fetched the moment it is ready. It needs the
daemon to be reachable from the service (usually a reverse proxy in front of ``listen``), so it
is off unless ``callback.url`` is set.

Trust: anyone who can reach the port can POST. Every callback URL the daemon hands out carries
a token derived from the API key; a POST without it is refused and changes nothing. An
accepted callback can only finish a task the daemon is waiting for, and a lost or unreadable
one costs nothing but time: the task is queried anyway after ``callback.fallback_seconds``.

The standard library's ``http.server`` on threads of its own: its parsing is well worn, a slow
sender never blocks the event loop, and each accepted callback reaches the loop through
``call_soon_threadsafe``. The request line carries the token, so the server's own access log
is silenced; the daemon logs what it does with a callback instead. A thread per connection is
bounded (``MAX_CONNECTIONS``), an idle one is dropped after ``READ_TIMEOUT_S``, and one whose
request is not whole within ``REQUEST_DEADLINE_S`` is dropped too (a sender trickling a byte
every few seconds would reset the idle timeout for ever): the port faces the internet, and a
flood of connections, fast or slow, must not cost the daemon its memory or its callbacks.

Refusals are logged at a bounded rate (`_Refusals`): a reason's first at once, then at most a
line a minute with how many there were, so a flood costs the log a line a minute, not a line
a request. A refused request's connection is closed (``Connection: close``): its body may be
unread, and on a kept-alive connection it would be read as the next request.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

import structlog

from .models import Task

__all__ = ["CallbackReceiver", "callback_token", "callback_url"]

log = structlog.get_logger("ocr_watch.callbacks")

TOKEN_PARAM = "ocrw"
MAX_BODY_BYTES = 64 * 1024
# A sender that stops mid-request loses its thread after this long, not forever.
READ_TIMEOUT_S = 10.0
# Reading one request, the idle wait before it included, may take at most this long. A
# callback is a few hundred bytes; only a sender holding a connection on purpose is this slow.
REQUEST_DEADLINE_S = 30.0
# The port faces the internet: past this many open connections (a thread each) a new one is
# answered 503 and closed at once, so a flood costs a refusal, not a thread per connection.
MAX_CONNECTIONS = 64
_BUSY_BODY = b'{"status": 503, "message": "busy"}'
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
         b"Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))
# At most one warning a minute per reason for refusing, with the count since the last one.
_WARN_EVERY_S = 60.0


def callback_token(api_key: str) -> str:
    """The secret every callback URL carries: stable across restarts (a task created before a
    restart still calls back with it), and useless for learning the key."""
    return hmac.new(api_key.encode(), b"ocr-watch callback v1", hashlib.sha256).hexdigest()[:32]


def callback_url(public_url: str, token: str) -> str:
    """``public_url`` with the token added to its query (a proxy passes a query on untouched)."""
    parts = urlsplit(public_url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), (TOKEN_PARAM, token)]
    return urlunsplit(parts._replace(query=urlencode(query)))


class _Refusals:
    """Logs ``callback_refused`` at a bounded rate, per reason: the first at once, then at most
    one line every ``_WARN_EVERY_S`` with ``count``, the refusals since the last line. The
    server's threads note refusals; the accepting thread flushes counts that fell due, so a
    count is logged even when the flood has stopped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count: dict[str, int] = {}
        self._fields: dict[str, dict[str, Any]] = {}
        self._logged_at: dict[str, float] = {}

    def note(self, reason: str, **fields: Any) -> None:
        """One refusal for ``reason``; ``fields`` (the peer, say) of the latest are logged."""
        with self._lock:
            self._count[reason] = self._count.get(reason, 0) + 1
            self._fields[reason] = fields
        self.flush()

    def flush(self, *, all_due: bool = False) -> None:
        """Log each reason whose line is due (every reason with a count, if ``all_due``)."""
        now = time.monotonic()
        due: list[tuple[str, int, dict[str, Any]]] = []
        with self._lock:
            for reason, count in self._count.items():
                last = self._logged_at.get(reason)
                if count and (all_due or last is None or now - last >= _WARN_EVERY_S):
                    due.append((reason, count, self._fields[reason]))
                    self._count[reason], self._logged_at[reason] = 0, now
        for reason, count, fields in due:
            log.warning("callback_refused", reason=reason, count=count, **fields)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Not SO_REUSEPORT: a second daemon on the same port must fail to start, not share it.
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], token: str, hand_over: Callable[[Task], None]) -> None:
        self.token = token
        self.hand_over = hand_over
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.refusals = _Refusals()
        # Each connection reading a request, and when that began. Its serving thread adds and
        # removes it; the accepting thread removes it when overdue, and shuts it down under
        # the lock, before its serving thread can have closed it (and its fd been reused).
        self._reading: dict[socket.socket, float] = {}
        self._reading_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Hand the connection to a thread of its own, if one of the slots is free."""
        if not self._slots.acquire(blocking=False):
            self._turn_away(request, client_address)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def reading(self, connection: socket.socket, since: float | None) -> None:
        """Note that ``connection`` began reading a request at ``since`` (None: it is done)."""
        with self._reading_lock:
            if since is None:
                self._reading.pop(connection, None)
            else:
                self._reading[connection] = since

    def service_actions(self) -> None:
        """On the accepting thread, at least every poll_interval: drop connections whose
        request is overdue (a shutdown makes their blocked read see the end, so their
        threads finish and give back their slots), and log refusal counts that fell due."""
        now = time.monotonic()
        with self._reading_lock:
            late = [conn for conn, since in self._reading.items() if now - since > REQUEST_DEADLINE_S]
            for conn in late:
                del self._reading[conn]
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # the peer is gone already
        for _ in late:
            self.refusals.note(f"request not whole within {REQUEST_DEADLINE_S:g} s")
        self.refusals.flush()

    def _turn_away(self, request: socket.socket, client_address: Any) -> None:
        # On the accepting thread: a short timeout, so a peer that reads nothing cannot hold it.
        try:
            request.settimeout(1.0)
            request.sendall(_BUSY)
        except OSError:
            pass
        self.shutdown_request(request)
        self.refusals.note(f"over {MAX_CONNECTIONS} connections open", peer=str(client_address[0]))

    def handle_error(self, request: Any, client_address: Any) -> None:
        """socketserver would print a traceback to stderr; a log line, redacted, instead."""
        log.error("callback_failed", peer=str(client_address[0]), error=repr(sys.exc_info()[1]))


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = READ_TIMEOUT_S
    server_version = "ocr-watch"
    sys_version = ""
    _body_read = False  # this request's body: read already?

    def handle_one_request(self) -> None:
        self._body_read = False
        self.server.reading(self.connection, time.monotonic())
        try:
            super().handle_one_request()
        finally:
            self.server.reading(self.connection, None)

    def do_POST(self) -> None:  # http.server's naming
        given = parse_qs(urlsplit(self.path).query).get(TOKEN_PARAM, [""])[0]
        if not hmac.compare_digest(given.encode(), self.server.token.encode()):
            self._refuse(403, "forbidden", reason="missing or wrong token")
            return
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            self._answer(411, "a Content-Length is required")
            return
        if int(length) > MAX_BODY_BYTES:
            self._refuse(413, "too large", reason=f"body over {MAX_BODY_BYTES} bytes", size=int(length))
            return
        body = self.rfile.read(int(length))
        self._body_read = True
        task = _read_task(body)
        if task is None:
            self._refuse(400, "not a task envelope", reason="not a task envelope")
            return
        self.server.hand_over(task)
        self._answer(200, "success")

    def do_GET(self) -> None:
        self._answer(405, "POST only")

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def _refuse(self, status: int, message: str, *, reason: str, **fields: Any) -> None:
        self.server.refusals.note(reason, peer=str(self.client_address[0]), **fields)
        self._answer(status, message)

    def _answer(self, status: int, message: str) -> None:
        """Answer; anything but a success also closes the connection (its body may be unread,
        and a kept-alive connection would read it as the next request)."""
        body = json.dumps({"status": status, "message": message}).encode()
        close = status != 200
        if close:
            self._discard_body()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _discard_body(self) -> None:
        """Read and drop a small unread body before closing: a close with unread bytes resets
        the connection, and the sender might lose the answer. A large or unannounced one is
        left (the sender then may see a reset, which is its own doing); the read counts
        towards the request deadline."""
        length = self.headers.get("Content-Length", "")
        if not self._body_read and length.isdigit() and int(length) <= MAX_BODY_BYTES:
            self._body_read = True
            self.rfile.read(int(length))

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the request line holds the token."""


def _read_task(body: bytes) -> Task | None:
    """The task in a query-shaped envelope, or None if there is none to read."""
    try:
        envelope = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("data"), dict):
        return None
    message = envelope.get("message")
    task = Task.from_data(envelope["data"], message=message if isinstance(message, str) else "")
    return task if task.task_id else None


class CallbackReceiver:
    """Listens on ``host:port`` and hands each authentic callback's task to ``deliver`` on the loop."""

    def __init__(self, host: str, port: int, token: str, deliver: Callable[[Task], None],
                 loop: asyncio.AbstractEventLoop) -> None:
        self._address = (host, port)
        self._token = token
        self._deliver = deliver
        self._loop = loop
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """Where it listens (the real port once started, if 0 was asked for)."""
        if self._server is None:
            return self._address
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Bind (an OSError here means the address is unusable) and serve on a thread."""
        self._server = _Server(self._address, self._token, self._hand_over)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="callback-receiver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting; callbacks that come later are lost, which the fallback query covers."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server.refusals.flush(all_due=True)  # counts not logged yet are not lost
        if self._thread is not None:
            self._thread.join(5.0)
        self._server = self._thread = None

    def _hand_over(self, task: Task) -> None:  # on a server thread
        try:
            self._loop.call_soon_threadsafe(self._deliver, task)
        except RuntimeError:  # the loop is closing: the fallback query covers it after a restart
            pass

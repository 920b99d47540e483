"""The emulator's HTTP plumbing: a threading server that can end its connections, and the
handler base both listeners share (keep-alive responses with Content-Length, the JSON
envelope, the request log, and the faults that disturb a response: drop, trickle, slow).

Handlers only speak HTTP: they parse, ask the ``Emulator`` (``self.server.emulator``) for
decisions and state, and write responses (``protocol_version = "HTTP/1.1"``).

A request's time (``arrived``: the request log's ``t``, and what the rate limiter measures)
is when the kernel received its first bytes (``SO_TIMESTAMPNS`` on each read), not when a
handler thread got round to it: on a loaded machine that can be tens of milliseconds later,
which would make a gateway limiter see two well-spaced requests as too close.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .faults import FaultRule
from .ratelimit import retry_after_header

if TYPE_CHECKING:
    from .emulator import Emulator

__all__ = ["EmulatorHTTPServer", "Handler"]

log = logging.getLogger("ocr_watch.emulator")

UPLINK_RCVBUF = 64 * 1024


class EmulatorHTTPServer(ThreadingHTTPServer):
    """A threading server that tracks its connections so ``close_all`` can end them."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 emulator: Emulator, label: str) -> None:
        self.emulator = emulator
        self.label = label
        self._track_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._handler_threads: set[threading.Thread] = set()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.emulator.settings.upload_bytes_per_second > 0:
            # What the uplink has not carried yet must wait on the client's side, not in a
            # large kernel buffer here that the client counts as sent (see uplink.py).
            request.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UPLINK_RCVBUF)
        thread = threading.Thread(target=self._serve_one, args=(request, client_address),
                                  name=f"emulator-{self.label}", daemon=True)
        with self._track_lock:
            self._conns.add(request)
            self._handler_threads.add(thread)
        thread.start()

    def _serve_one(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._track_lock:
                self._conns.discard(request)
                self._handler_threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection error on %s listener", self.label, exc_info=True)

    def close_all(self, timeout: float = 5.0) -> None:
        """Shut down every open connection and join the handler threads."""
        with self._track_lock:
            conns = list(self._conns)
            threads = list(self._handler_threads)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; Python does not name it
_STAMP = struct.Struct("qq")  # struct timespec


class _StampedReader(io.RawIOBase):
    """A socket's reads, each with the kernel's receive time of its data (``last_arrival``,
    wall clock), or the time of the read where the kernel gives none."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.last_arrival = time.time()
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            self._stamped = True
        except OSError:
            self._stamped = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._stamped:
            n = self._sock.recv_into(buffer)
            self.last_arrival = time.time()
            return n
        n, ancillary, _, _ = self._sock.recvmsg_into([buffer], socket.CMSG_SPACE(_STAMP.size))
        arrival = time.time()
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _STAMP.size:
                sec, nsec = _STAMP.unpack_from(data)
                arrival = min(arrival, sec + nsec / 1e9)
        self.last_arrival = arrival
        return n


class Handler(BaseHTTPRequestHandler):
    """Shared response helpers and per-request bookkeeping."""

    protocol_version = "HTTP/1.1"
    server_version = "PicWishEmulator/1.0"
    sys_version = ""
    timeout = 30  # idle keep-alive connections are closed after this
    # Headers and body go out as two writes; with Nagle on, the body waits for the client's
    # delayed ACK (40 ms a request on a kept-alive connection). Real servers set TCP_NODELAY.
    disable_nagle_algorithm = True
    server: EmulatorHTTPServer

    _status_sent: int
    _task_id: str | None
    _fault: str | None
    _recorded: bool

    @property
    def emu(self) -> Emulator:
        return self.server.emulator

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # nothing read yet: read through the stamping reader instead
        self._reader = _StampedReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)

    @property
    def arrived(self) -> float:
        """Wall time the kernel received this request's headers (see the module docstring)."""
        return self._t0

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.server.label, format % args)  # request line only, never headers

    def _begin(self) -> None:
        self._status_sent = 0
        self._task_id = None
        self._fault = None
        self._recorded = False
        # The read that brought the headers is the latest one (a client sends the next request
        # only after the answer to the last).
        self._t0 = min(time.time(), self._reader.last_arrival)

    def _key(self) -> str | None:
        return self.headers.get("X-API-KEY")

    def _record(self) -> None:
        """Log this request once; done before the response goes out, so the log never lags the client."""
        if self._recorded:
            return
        self._recorded = True
        self.emu._log_request(
            t=self._t0, host=self.server.label, method=self.command, path=urlsplit(self.path).path,
            api_key_present=self._key() is not None, status=self._status_sent,
            task_id=self._task_id, fault=self._fault, answered_t=time.time(),
        )

    def send_bytes(self, status: int, body: bytes, content_type: str, *, headers: dict[str, str] | None = None,
                   close: bool = False, truncate_to: int | None = None, trickle_s: float | None = None) -> None:
        """Write a full response; ``truncate_to`` sends only that many body bytes, then closes;
        ``trickle_s`` sends the body a byte at a time, that many seconds apart (until the
        client hangs up)."""
        self._status_sent = status
        self._record()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close or truncate_to is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        try:
            if trickle_s is not None:
                self.wfile.flush()
                for i in range(len(body)):
                    self.emu._sleep(trickle_s)
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
            elif truncate_to is not None:
                self.wfile.write(body[:truncate_to])
                self.wfile.flush()
                self._abort()
            else:
                self.wfile.write(body)
                self.wfile.flush()
        except OSError:
            self.close_connection = True

    def send_envelope(self, status: int, message: str, data: Any = None, *, http_status: int | None = None,
                      headers: dict[str, str] | None = None, close: bool = False,
                      truncate: bool = False, trickle_s: float | None = None) -> None:
        """Write the JSON envelope ``{"status","message","data"}``."""
        body = json.dumps({"status": status, "message": message, "data": data}, separators=(",", ":")).encode()
        self.send_bytes(http_status if http_status is not None else status, body, "application/json",
                        headers=headers, close=close, truncate_to=max(1, len(body) // 2) if truncate else None,
                        trickle_s=trickle_s)

    def send_json(self, status: int, payload: Any) -> None:
        """Raw JSON (control routes)."""
        self.send_bytes(status, json.dumps(payload).encode(), "application/json")

    def _abort(self) -> None:
        """Close the socket now, mid-response (the "drop" faults)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _lingering_close(self, seconds: float = 2.0) -> None:
        """After an early answer: stop sending, discard what the client still sends, then close.

        Closing with unread data would reset the connection and could destroy the
        answer before the client reads it.
        """
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.5)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if not self.connection.recv(65536):
                    break
        except OSError:
            pass

    def _apply_fault(self, rule: FaultRule) -> bool:
        """Answer with an error-type fault; True if the response was sent."""
        self._fault = rule.kind
        self.emu._count_fault()
        if rule.kind == "http_500":
            self.send_envelope(500, "internal server error")
        elif rule.kind == "http_429":
            hdrs = {}
            if rule.params.get("retry_after") is not None:
                hdrs["Retry-After"] = retry_after_header(rule.params["retry_after"])
            self.send_envelope(429, "too many requests", headers=hdrs)
        elif rule.kind == "body_500":
            self.send_envelope(500, "internal server error", http_status=200)
        else:
            return False
        return True

    def _finish_with(self, rule: FaultRule | None, status: int, message: str, data: Any) -> None:
        """Send a success answer, disturbed by a ``slow``/``drop``/``malformed_json`` fault if any."""
        if rule is not None and rule.kind == "slow":
            self.emu._sleep(float(rule.params["delay_s"]))
        if rule is not None and rule.kind == "malformed_json":
            body = b'{"status":200,"message":"success","data":{"task_id":'
            self.send_bytes(200, body, "application/json")
            return
        trickle = float(rule.params["interval_s"]) if rule is not None and rule.kind == "trickle" else None
        self.send_envelope(status, message, data, truncate=rule is not None and rule.kind == "drop",
                           trickle_s=trickle)



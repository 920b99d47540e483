"""HTTP handlers for the two listeners: the API host and the result (object storage) host.

Handlers only speak HTTP: they parse, ask the ``Emulator`` (``self.server.emulator``)
for decisions and state, and write responses. Every response sends Content-Length,
so keep-alive works (``protocol_version = "HTTP/1.1"``).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from .faults import FaultRule
from .multipart import BodyError, BodyStream, read_form
from .ratelimit import retry_after_header
from .results import CONTENT_TYPES
from .validation import ValidationError, check_fields, validate_create

if TYPE_CHECKING:
    from .emulator import Emulator

log = logging.getLogger("ocr_watch.emulator")

CREATE_PATH = "/api/tasks/document/ocr"
QUERY_RE = re.compile(r"^/api/tasks/document/ocr/([^/]+)$")
RESULT_RE = re.compile(r"^/r/([^/]+)/([^/]+)\.([a-z]+)$")
#: Bodies up to this size are read and discarded after an early answer, keeping the connection.
DRAIN_LIMIT = 1024 * 1024
#: Request faults that make sense on each route.
API_FAULTS = frozenset({"http_500", "http_429", "slow", "drop", "malformed_json", "body_500", "trickle"})
DOWNLOAD_FAULTS = frozenset({"http_500", "http_429", "slow", "drop", "trickle"})


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


class _Handler(BaseHTTPRequestHandler):
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

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.server.label, format % args)  # request line only, never headers

    def _begin(self) -> None:
        self._status_sent = 0
        self._task_id = None
        self._fault = None
        self._recorded = False
        self._t0 = time.time()

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
            task_id=self._task_id, fault=self._fault,
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


class ApiHandler(_Handler):
    """The API host: create, query, and the ``/_emulator/`` control routes."""

    def do_GET(self) -> None:
        self._begin()
        path = urlsplit(self.path).path
        if path.startswith("/_emulator/"):
            self._recorded = True  # control routes are not logged
            self._control_get(path)
            return
        try:
            m = QUERY_RE.match(path)
            if m:
                self._query(unquote(m.group(1)))
            else:
                self.send_envelope(404, "not found")
        finally:
            self._record()

    def do_POST(self) -> None:
        self._begin()
        path = urlsplit(self.path).path
        if path.startswith("/_emulator/"):
            self._recorded = True  # control routes are not logged
            self._control_post(path)
            return
        try:
            if path == CREATE_PATH:
                self._create()
            else:
                self._early_answer(404, "not found")
        finally:
            self._record()

    # --- API routes -------------------------------------------------------------------------

    def _body(self) -> BodyStream:
        return BodyStream(self.rfile, self.headers.get("Content-Length"), self.headers.get("Transfer-Encoding"))

    def _early_answer(self, status: int, message: str, headers: dict[str, str] | None = None,
                      http_status: int | None = None) -> None:
        """Answer without using the body: drain a small one, else answer and close."""
        try:
            body = self._body()
        except (BodyError, ValueError):
            self.send_envelope(status, message, headers=headers, http_status=http_status, close=True)
            return
        if body.declared_length is not None and body.declared_length <= DRAIN_LIMIT and body.drain(DRAIN_LIMIT):
            self.send_envelope(status, message, headers=headers, http_status=http_status)
            return
        self.send_envelope(status, message, headers=headers, http_status=http_status, close=True)
        self._lingering_close()

    def _auth_and_rate(self, route: str) -> str | None:
        """401/429 checks; returns the key if the request may proceed."""
        key = self._key()
        if key is None or key not in self.emu.settings.api_keys:
            if route == "create":
                self._early_answer(401, "invalid api key")
            else:
                self.send_envelope(401, "invalid api key")
            return None
        if not self.emu.limiter.try_acquire(key):
            self.emu._count("rate_limited")
            headers = {}
            if self.emu.settings.retry_after_seconds is not None:
                headers["Retry-After"] = retry_after_header(self.emu.settings.retry_after_seconds)
            if route == "create":
                self._early_answer(429, "too many requests", headers)
            else:
                self.send_envelope(429, "too many requests", headers=headers)
            return None
        return key

    def _create(self) -> None:
        emu = self.emu
        emu._count("create_requests")
        if self._auth_and_rate("create") is None:
            return
        rule = emu.faults.take(API_FAULTS, "create")
        if rule is not None and rule.kind in ("http_500", "http_429", "body_500"):
            # the request is rejected before any work: no task is created
            try:
                drained = self._body().drain(emu.settings.max_upload_bytes + DRAIN_LIMIT)
            except (BodyError, ValueError):
                drained = False
            self._apply_fault(rule)
            if not drained:
                self._lingering_close()
            return
        settings = emu.settings
        try:
            form = read_form(self._body(), self.headers.get("Content-Type"), settings.max_upload_bytes)
        except (BodyError, ValueError) as exc:
            self.send_envelope(400, f"malformed request body: {exc}", close=True)
            return
        if form.too_large:
            try:
                check_fields(form)  # fields sent before the file still get their 400 first
            except ValidationError as exc:
                self.send_envelope(400, str(exc), close=True)
                self._lingering_close()
                return
            self.send_envelope(413, "file too large", close=True)
            self._lingering_close()
            return
        try:
            req = validate_create(form)
        except ValidationError as exc:
            self.send_envelope(400, str(exc))
            return
        if not emu._has_credit():
            self.send_envelope(402, "insufficient credits")
            return
        task = emu._create_task(req)
        self._task_id = task.task_id
        if rule is not None:
            self._fault = rule.kind
            emu._count_fault()
        self._finish_with(rule, 200, "success", {"task_id": task.task_id})

    def _query(self, task_id: str) -> None:
        emu = self.emu
        emu._count("queries")
        self._task_id = task_id
        if self._auth_and_rate("query") is None:
            return
        rule = emu.faults.take(API_FAULTS, "query")
        if rule is not None and self._apply_fault(rule):
            return
        envelope = emu._query_envelope(task_id)
        if rule is not None:
            self._fault = rule.kind
            emu._count_fault()
        if envelope is None:
            self._finish_with(rule, 404, "task not found", None)
        else:
            self._finish_with(rule, envelope["status"], envelope["message"], envelope["data"])

    # --- control routes ---------------------------------------------------------------------

    def _control_get(self, path: str) -> None:
        emu = self.emu
        routes = {
            "/_emulator/stats": emu.stats,
            "/_emulator/requests": emu.requests,
            "/_emulator/tasks": emu.tasks,
            "/_emulator/faults": emu.faults.snapshot,
            "/_emulator/settings": emu.settings.public_dict,
        }
        fn = routes.get(path)
        if fn is None:
            self.send_json(404, {"error": "unknown control route"})
        else:
            self.send_json(200, fn())

    def _control_post(self, path: str) -> None:
        emu = self.emu
        try:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            payload = json.loads(raw) if raw.strip() else {}
            if not isinstance(payload, dict):
                raise ValueError("expected a JSON object")
            if path == "/_emulator/faults":
                params = dict(payload)
                kind = params.pop("kind", None)
                route = params.pop("route", "any")
                count = params.pop("count", 1)
                rule = emu.add_fault(str(kind), route=route, count=count, **params)
                self.send_json(200, rule)
            elif path == "/_emulator/settings":
                emu.update(**payload)
                self.send_json(200, emu.settings.public_dict())
            elif path == "/_emulator/reset":
                emu.reset()
                self.send_json(200, {"reset": True})
            else:
                self.send_json(404, {"error": "unknown control route"})
        except (ValueError, TypeError) as exc:
            self.send_json(400, {"error": str(exc)})


class ResultHandler(_Handler):
    """The result host: pre-signed GETs of result files, no API key needed."""

    def do_GET(self) -> None:
        self._begin()
        try:
            self._download()
        finally:
            self._record()

    def _download(self) -> None:
        emu = self.emu
        emu._count("downloads")
        if self._key() is not None:
            emu._count("downloads_with_api_key")
        parts = urlsplit(self.path)
        m = RESULT_RE.match(parts.path)
        if m:
            self._task_id = unquote(m.group(1))
        rule = emu.faults.take(DOWNLOAD_FAULTS, "download")
        if rule is not None and self._apply_fault(rule):
            return
        if not m:
            self.send_bytes(404, b"NoSuchKey\n", "text/plain")
            return
        query = parse_qs(parts.query)
        expires = query.get("Expires", [""])[0]
        problem = emu.signer.check(parts.path, expires, query.get("Signature", [""])[0])
        if problem == "bad signature":
            self.send_bytes(403, b"SignatureDoesNotMatch\n", "text/plain")
            return
        found = emu._result_for_download(self._task_id or "", m.group(3))
        if found is None:
            self.send_bytes(404, b"NoSuchKey\n", "text/plain")
            return
        if problem == "expired":
            self.send_bytes(403, b"AccessDenied: Request has expired\n", "text/plain")
            return
        body, broken = found
        if rule is not None:  # slow or drop
            self._fault = rule.kind
            emu._count_fault()
            if rule.kind == "slow":
                emu._sleep(float(rule.params["delay_s"]))
            elif rule.kind == "drop":
                broken = "drop"
        if broken and self._fault is None:
            self._fault = broken
        trickle = float(rule.params["interval_s"]) if rule is not None and rule.kind == "trickle" else None
        self.send_bytes(200, body, CONTENT_TYPES.get(m.group(3), "application/octet-stream"),
                        truncate_to=len(body) // 2 if broken else None, trickle_s=trickle)

"""The two listeners' routes: the API host (create, query, and the ``/_emulator/`` control
routes) and the result host (pre-signed downloads). The HTTP plumbing they share is in
``http.py``.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, unquote, urlsplit

from .http import EmulatorHTTPServer, Handler
from .multipart import BodyError, BodyStream, read_form
from .ratelimit import retry_after_header
from .results import CONTENT_TYPES
from .validation import ValidationError, check_fields, validate_create

__all__ = ["ApiHandler", "EmulatorHTTPServer", "ResultHandler"]

CREATE_PATH = "/api/tasks/document/ocr"
QUERY_RE = re.compile(r"^/api/tasks/document/ocr/([^/]+)$")
# The balance route (seen in public client code). Its answer's shape is undocumented; the one
# served here, {"status": 200, "data": {"balance": N}}, is *assumed* (null: unlimited credits).
CREDITS_PATH = "/api/customers/package-credits"
RESULT_RE = re.compile(r"^/r/([^/]+)/([^/]+)\.([a-z]+)$")
#: Bodies up to this size are read and discarded after an early answer, keeping the connection.
DRAIN_LIMIT = 1024 * 1024
#: Request faults that make sense on each route.
API_FAULTS = frozenset({"http_500", "http_429", "slow", "drop", "malformed_json", "body_500", "trickle"})
DOWNLOAD_FAULTS = frozenset({"http_500", "http_429", "slow", "drop", "trickle"})


class ApiHandler(Handler):
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
            elif path == CREDITS_PATH:
                self._credits()
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
        return BodyStream(self.rfile, self.headers.get("Content-Length"), self.headers.get("Transfer-Encoding"),
                          pace=self.emu.uplink.take)

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
        if not self.emu.limiter.try_acquire(key, self.arrived):
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

    def _credits(self) -> None:
        emu = self.emu
        emu._count("credit_queries")
        if self._auth_and_rate("credits") is None:
            return
        self.send_envelope(200, "success", data={"balance": emu._credits_left()})

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


class ResultHandler(Handler):
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

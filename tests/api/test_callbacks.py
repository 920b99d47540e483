"""The callback receiver: a real server on 127.0.0.1, real HTTP requests, a real event loop."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
import structlog.testing

from ocr_watch.api import Task
from ocr_watch.api.callbacks import CallbackReceiver, callback_token, callback_url
from ocr_watch.testing import wait_for

pytestmark = pytest.mark.timeout(30)

TOKEN = callback_token("the-api-key")


class Running:
    """A receiver whose loop runs on a thread, collecting what it is handed."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.delivered: list[Task] = []
        self.arrived = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.receiver = CallbackReceiver("127.0.0.1", 0, TOKEN, self._deliver, self.loop)
        self.receiver.start()

    def _deliver(self, task: Task) -> None:
        assert threading.current_thread() is self.thread, "deliver must run on the loop's thread"
        self.delivered.append(task)
        self.arrived.set()

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None,
             method: str = "POST") -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection(*self.receiver.address, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            conn.close()

    def status_past_the_cap(self, task_id: str) -> int:
        """POST a callback near the connection cap: a connection turned away before its request
        was read may be reset by the close, which is the same answer as a 503."""
        try:
            return self.post(path_with(TOKEN), envelope(task_id))[0]
        except ConnectionError:
            return 503

    def sync(self) -> None:
        """Wait until everything handed to the loop so far has run."""
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), self.loop).result(5)

    def close(self) -> None:
        self.receiver.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def running() -> Iterator[Running]:
    r = Running()
    yield r
    r.close()


def logged(capfd: pytest.CaptureFixture[str], *texts: str) -> str:
    """Wait until the output holds every one of ``texts``: the server logs on its own thread,
    and may do so just after the client has seen the answer the line is about."""
    seen: list[str] = []

    def has_all() -> bool:
        seen.extend(capfd.readouterr())
        return all(text in "".join(seen) for text in texts)

    wait_for(has_all, timeout=5, what=f"log lines with {texts}")
    return "".join(seen)


def envelope(task_id: str = "t-1", state: int = 1, file: str | None = "https://results.test/r.txt?sig=1") -> bytes:
    data: dict[str, Any] = {"task_id": task_id, "state": state, "progress": 100 if state == 1 else 40}
    if file is not None:
        data["file"] = file
    return json.dumps({"status": 200, "message": "success", "data": data}).encode()


def path_with(token: str) -> str:
    return "/cb?" + callback_url("https://x.test/cb", token).split("?", 1)[1]


def test_an_authentic_callback_reaches_the_loop_as_a_task(running: Running) -> None:
    status, body = running.post(path_with(TOKEN), envelope("t-42"))
    assert (status, body["status"]) == (200, 200)
    assert running.arrived.wait(5)
    [task] = running.delivered
    assert (task.task_id, task.state, task.is_done, task.file_url) == ("t-42", 1, True,
                                                                         "https://results.test/r.txt?sig=1")


@pytest.mark.parametrize("path", ["/cb", "/cb?ocrw=", "/cb?ocrw=" + "0" * 32, "/cb?other=" + TOKEN])
def test_a_callback_without_the_token_is_refused_and_changes_nothing(running: Running, path: str) -> None:
    status, _ = running.post(path, envelope())
    assert status == 403
    running.sync()
    assert running.delivered == []


@pytest.mark.parametrize(("body", "status"), [
    (b"not json", 400),
    (b"[1, 2]", 400),
    (json.dumps({"status": 200, "data": {"state": 1}}).encode(), 400),  # no task id
    (b"x" * (64 * 1024 + 1), 413),
])
def test_an_unreadable_callback_is_refused(running: Running, body: bytes, status: int) -> None:
    assert running.post(path_with(TOKEN), body)[0] == status
    running.sync()
    assert running.delivered == []


def test_only_post_is_served(running: Running) -> None:
    assert running.post(path_with(TOKEN), b"", method="GET")[0] == 405
    running.sync()
    assert running.delivered == []


def test_the_token_never_reaches_the_output(running: Running, capfd: pytest.CaptureFixture[str]) -> None:
    """http.server would print each request line (which holds the token) to stderr."""
    running.post(path_with(TOKEN), envelope())
    running.post(path_with(TOKEN), b"not json")
    running.post("/cb?ocrw=wrong", envelope())
    running.sync()
    out, err = capfd.readouterr()
    assert TOKEN not in out + err


def test_stop_frees_the_port(running: Running) -> None:
    host, port = running.receiver.address
    running.receiver.stop()
    again = CallbackReceiver(host, port, TOKEN, lambda task: None, running.loop)
    again.start()  # would raise OSError (address in use) had stop left the socket open
    again.stop()


def test_a_taken_port_fails_at_start(running: Running) -> None:
    host, port = running.receiver.address
    with pytest.raises(OSError):
        CallbackReceiver(host, port, TOKEN, lambda task: None, running.loop).start()


def test_token_is_stable_per_key_and_hides_it() -> None:
    assert callback_token("key-a") == callback_token("key-a") != callback_token("key-b")
    assert "key-a" not in callback_token("key-a") and len(callback_token("key-a")) == 32


def test_callback_url_keeps_the_users_query() -> None:
    assert callback_url("https://h.test/p?a=1&b=", "tok") == "https://h.test/p?a=1&b=&ocrw=tok"
    assert callback_url("https://h.test/p", "tok") == "https://h.test/p?ocrw=tok"


def test_a_handler_crash_is_a_log_line_not_a_traceback(running: Running, capfd: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """socketserver prints a traceback to stderr for a crashed handler; ours logs one line."""
    import ocr_watch.api.callbacks as callbacks

    def crash(body: bytes) -> Task:
        raise RuntimeError("boom")

    monkeypatch.setattr(callbacks, "_read_task", crash)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        running.post(path_with(TOKEN), envelope())
    out, err = capfd.readouterr()
    assert "callback_failed" in out + err and "boom" in out + err
    assert "Traceback" not in out + err and TOKEN not in out + err
    running.sync()
    assert running.delivered == []


def test_connections_past_the_cap_are_turned_away_until_one_closes(
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    """The port faces the internet: idle connections hold their threads, but only up to the
    cap; the next one is answered 503 at once. Once they close, callbacks are served again."""
    import socket
    import time

    import ocr_watch.api.callbacks as callbacks

    monkeypatch.setattr(callbacks, "MAX_CONNECTIONS", 3)
    running = Running()
    try:
        idle = [socket.create_connection(running.receiver.address, timeout=5) for _ in range(3)]
        with socket.create_connection(running.receiver.address, timeout=5) as extra:
            answer = b""
            while chunk := extra.recv(4096):  # the server closes after its answer
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in answer
        logged(capfd, "callback_refused", "over 3 connections open")

        for conn in idle:
            conn.close()
        deadline = time.monotonic() + 5
        while True:  # the held threads see the close and give their slots back
            status = running.status_past_the_cap("t-after")
            if status != 503 or time.monotonic() > deadline:
                break
        assert status == 200
        assert running.arrived.wait(5) and [t.task_id for t in running.delivered] == ["t-after"]
    finally:
        running.close()


def test_senders_that_trickle_lose_their_slots_at_the_request_deadline(
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    """A sender that sends one byte every little while never trips the idle timeout; with
    every slot held that way, callbacks would be refused for as long as it likes. Past the
    request deadline its connections are dropped, and a callback is served again."""
    import socket
    import time

    import ocr_watch.api.callbacks as callbacks

    monkeypatch.setattr(callbacks, "MAX_CONNECTIONS", 3)
    monkeypatch.setattr(callbacks, "REQUEST_DEADLINE_S", 1.0)
    running = Running()
    try:
        started = time.monotonic()
        slow = [socket.create_connection(running.receiver.address, timeout=5) for _ in range(3)]
        statuses = []
        deadline = started + 8
        while slow and time.monotonic() < deadline:
            for conn in list(slow):
                try:
                    conn.send(b"P")  # a request line that never ends
                except OSError:
                    slow.remove(conn)  # the server hung up on it
                    conn.close()
            statuses.append(running.status_past_the_cap(f"t-{len(statuses)}"))
            time.sleep(0.2)  # the trickle itself, not a wait for something
        held_for = time.monotonic() - started
        assert slow == [], f"slow senders still connected after {held_for:.1f} s"
        assert held_for >= 1.0 and statuses[0] == 503 and statuses[-1] == 200
        logged(capfd, "request not whole within 1 s")
    finally:
        running.close()


def refused(logs: list[dict[str, Any]], reason: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "callback_refused" and e.get("reason") == reason]


def test_a_flood_of_refused_callbacks_is_logged_at_a_bounded_rate_with_a_count(
        running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """1,000 POSTs with a wrong token from one client: the first refusal is a line at once, the
    rest are counted into at most one line per interval (1 s here, a minute in the daemon)."""
    import time

    import ocr_watch.api.callbacks as callbacks

    monkeypatch.setattr(callbacks, "_WARN_EVERY_S", 1.0)
    with structlog.testing.capture_logs() as logs:
        conn = http.client.HTTPConnection(*running.receiver.address, timeout=10)
        started = time.monotonic()
        try:
            for _ in range(1000):  # http.client opens a new connection when the server closed one
                conn.request("POST", path_with("not-the-token"), body=envelope())
                response = conn.getresponse()
                assert response.status == 403 and response.getheader("Connection") == "close"
                response.read()
        finally:
            conn.close()
        took = time.monotonic() - started
        wait_for(lambda: sum(e["count"] for e in refused(logs, "missing or wrong token")) == 1000, 10,
                 what="every refusal counted in the log")
        lines = refused(logs, "missing or wrong token")
    assert lines[0]["count"] == 1 and lines[0]["peer"] == "127.0.0.1"
    assert len(lines) <= 2 + took / 1.0, f"{len(lines)} lines for {took:.1f} s of refusals"
    assert TOKEN not in repr(logs)
    running.sync()
    assert running.delivered == []


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_refused_requests_body_is_never_read_as_a_request(running: Running, method: str) -> None:
    """HTTP/1.1 keeps a connection open for the next request; a refusal answers before reading
    the body, so the body must not be taken for the next request: the server says
    `Connection: close`, closes, and answers once."""
    import socket

    inner = (f"POST {path_with(TOKEN)} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             f"Content-Length: {len(envelope('t-smuggled'))}\r\n\r\n").encode() + envelope("t-smuggled")
    outer = (f"{method} {path_with('wrong')} HTTP/1.1\r\nHost: x\r\n"
             f"Content-Length: {len(inner)}\r\n\r\n").encode() + inner
    with structlog.testing.capture_logs() as logs, \
            socket.create_connection(running.receiver.address, timeout=5) as sock:
        sock.sendall(outer)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            pytest.fail(f"the server kept the connection open after refusing; it answered {answer!r}")
        running.sync()
    assert answer.count(b"HTTP/1.1 ") == 1 and b"Connection: close" in answer
    assert answer.startswith(b"HTTP/1.1 403 " if method == "POST" else b"HTTP/1.1 405 ")
    assert running.delivered == []
    assert len([e for e in logs if e["event"] == "callback_refused"]) == (1 if method == "POST" else 0)

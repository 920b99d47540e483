"""Rate limit, URL TTL, task retention, callbacks, live settings and the control routes."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx

from ocr_watch.emulator import Emulator

CREATE = "/api/tasks/document/ocr"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 256


def client(emu: Emulator, key: str = "emu-key") -> httpx.Client:
    return httpx.Client(base_url=emu.base_url, headers={"X-API-KEY": key}, timeout=10)


def create(c: httpx.Client, name: str = "a.png", **data: str) -> httpx.Response:
    return c.post(CREATE, files={"image_file": (name, PNG)}, data=data)


def finish(c: httpx.Client, task_id: str, wait_for: Any) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        r = c.get(f"{CREATE}/{task_id}")
        d = r.json()["data"] if r.status_code == 200 else None
        return d if d and (d["state"] == 1 or d["state"] < 0) else None

    return wait_for(done, 10, what="terminal state")


def test_rate_limit_counts_creates_and_queries_per_key(make_emulator: Any) -> None:
    emu = make_emulator(api_keys=("k1", "k2"), requests_per_second=2.0, burst=3, retry_after_seconds=0.4)
    with client(emu, "k1") as c1, client(emu, "k2") as c2:
        task_id = create(c1).json()["data"]["task_id"]
        codes = [c1.get(f"{CREATE}/{task_id}").status_code for _ in range(4)]
        other = c2.get(f"{CREATE}/{task_id}")
        limited = create(c1)
    assert codes[:2] == [200, 200] and codes[2:] == [429, 429]  # burst 3, create took one
    assert other.status_code == 200  # buckets are per key
    assert (limited.status_code, limited.json()["status"]) == (429, 429)
    assert limited.headers["retry-after"] == "1"
    stats = emu.stats()
    assert stats["rate_limited"] == 3 and stats["creates"] == 1
    assert [r["status"] for r in emu.requests()].count(429) == 3
    # control routes are not rate limited
    for _ in range(5):
        assert httpx.get(f"{emu.base_url}/_emulator/stats").status_code == 200


def test_rate_limit_refills(make_emulator: Any, wait_for: Any) -> None:
    emu = make_emulator(requests_per_second=20.0, burst=1)
    with client(emu) as c:
        assert c.get(f"{CREATE}/x").status_code == 404
        assert c.get(f"{CREATE}/x").status_code == 429
        wait_for(lambda: c.get(f"{CREATE}/x").status_code == 404, 2, what="a refilled token")
    assert emu.stats()["rate_limited"] >= 1


def test_result_host_ignores_rate_limit(make_emulator: Any, wait_for: Any) -> None:
    emu = make_emulator(requests_per_second=1000.0)
    with client(emu) as c:
        url = finish(c, create(c).json()["data"]["task_id"], wait_for)["file"]
    emu.update(requests_per_second=0.001, burst=1)
    with client(emu) as c:
        assert c.get(f"{CREATE}/x").status_code == 404
        assert c.get(f"{CREATE}/x").status_code == 429
    assert all(httpx.get(url).status_code == 200 for _ in range(3))


def test_result_url_expires_after_ttl(make_emulator: Any, wait_for: Any) -> None:
    emu = make_emulator(result_ttl_seconds=0.5)
    with client(emu) as c:
        url = finish(c, create(c).json()["data"]["task_id"], wait_for)["file"]
    assert httpx.get(url).status_code == 200
    wait_for(lambda: httpx.get(url).status_code == 403, 5, interval=0.1, what="URL expiry")


def test_tampered_or_trimmed_url_is_403(emulator: Emulator, wait_for: Any) -> None:
    with client(emulator) as c:
        url = finish(c, create(c).json()["data"]["task_id"], wait_for)["file"]
    assert httpx.get(url.split("?")[0]).status_code == 403
    assert httpx.get(url[:-1] + ("0" if url[-1] != "0" else "1")).status_code == 403
    assert httpx.get(url.replace("Expires=", "Expires=9")).status_code == 403


def test_retention_forgets_task(make_emulator: Any, wait_for: Any) -> None:
    emu = make_emulator(task_retention_seconds=0.3)
    with client(emu) as c:
        task_id = create(c).json()["data"]["task_id"]
        url = finish(c, task_id, wait_for)["file"]
        wait_for(lambda: c.get(f"{CREATE}/{task_id}").status_code == 404, 5, what="task forgotten")
    assert httpx.get(url).status_code == 404
    assert emu.tasks()[0]["forgotten"] is True


class _Sink(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []  # shared by the handler instances of one test

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append({"ctype": self.headers["Content-Type"], "body": json.loads(body)})
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_callbacks_follow_each_state(emulator: Emulator, wait_for: Any) -> None:
    received: ClassVar[list[dict[str, Any]]] = []  # shared by the handler instances of one test
    handler = type("Sink", (_Sink,), {"received": received})
    sink = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    try:
        cb = f"http://127.0.0.1:{sink.server_address[1]}/hook?x=1"
        with client(emulator) as c:
            task_id = create(c, callback_url=cb).json()["data"]["task_id"]
            final = finish(c, task_id, wait_for)
        wait_for(lambda: any(r["body"]["data"]["state"] == 1 for r in received), 5, what="final callback")
    finally:
        sink.shutdown()
        sink.server_close()
    states = [r["body"]["data"]["state"] for r in received]
    assert states == [2, 3, 4, 1]
    last = received[-1]
    assert last["ctype"] == "application/json"
    assert last["body"]["status"] == 200 and last["body"]["data"]["task_id"] == task_id
    assert last["body"]["data"]["file"] == final["file"]
    assert emulator.stats()["callbacks_sent"] == 4


def test_failed_callbacks_are_logged_not_fatal(emulator: Emulator, wait_for: Any) -> None:
    dead = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    port = dead.server_address[1]
    dead.server_close()  # nothing listens there now
    with client(emulator) as c:
        task_id = create(c, callback_url=f"http://127.0.0.1:{port}/").json()["data"]["task_id"]
        assert finish(c, task_id, wait_for)["state"] == 1
    wait_for(lambda: emulator.stats()["callbacks_failed"] == 4, 5, what="4 failed callbacks")
    failures = [r for r in emulator.requests() if r["host"] == "callback"]
    assert len(failures) == 4 and all(f["task_id"] == task_id and f["error"] for f in failures)


def test_update_and_reset(emulator: Emulator, wait_for: Any) -> None:
    emulator.add_fault("http_500", count=5)
    with client(emulator) as c:
        assert create(c).status_code == 500
    emulator.reset()
    assert emulator.stats()["requests_total"] == 0 and emulator.tasks() == []
    emulator.update(processing_seconds=0.05, credits=1)
    with client(emulator) as c:
        task_id = create(c).json()["data"]["task_id"]
        finish(c, task_id, wait_for)
        assert create(c).status_code == 402
    assert emulator.stats()["credits_left"] == 0


def test_control_routes_over_http(emulator: Emulator) -> None:
    base = f"{emulator.base_url}/_emulator"
    r = httpx.post(f"{base}/faults", json={"kind": "http_500", "route": "query", "count": 2})
    assert r.status_code == 200 and r.json()["count"] == 2
    assert httpx.get(f"{base}/faults").json()[0]["kind"] == "http_500"
    r = httpx.post(f"{base}/settings", json={"processing_seconds": 1.5})
    assert r.status_code == 200 and emulator.settings.processing_seconds == 1.5
    assert "emu-key" not in r.text  # keys are never echoed
    assert httpx.post(f"{base}/settings", json={"nope": 1}).status_code == 400
    with client(emulator) as c:
        c.get(f"{CREATE}/x")
    stats = httpx.get(f"{base}/stats").json()
    assert stats == emulator.stats()
    assert {"create_requests", "creates", "queries", "downloads", "rate_limited", "faults_fired",
            "credits_spent", "credits_left", "tasks_by_sha256", "requests_total"} <= set(stats)
    assert httpx.get(f"{base}/requests").json() == emulator.requests()
    assert httpx.get(f"{base}/tasks").json() == emulator.tasks()
    assert httpx.post(f"{base}/reset").status_code == 200
    assert emulator.requests() == [] and emulator.faults.snapshot() == []


def test_stop_is_idempotent_and_closes_keepalive(make_emulator: Any) -> None:
    emu = make_emulator()
    c = client(emu)
    assert c.get(f"{CREATE}/x").status_code == 404  # leaves a kept-alive connection open
    emu.stop()
    emu.stop()
    try:
        with httpx.Client(timeout=2) as fresh:
            try:
                fresh.get(f"{emu.base_url}/_emulator/stats")
                raise AssertionError("listener still accepting")
            except httpx.ConnectError:
                pass
    finally:
        c.close()


def test_early_answer_to_big_upload_still_readable(emulator: Emulator) -> None:
    """A 401 sent before a 4 MB body is read reaches the client (drained or lingering close)."""
    with httpx.Client(base_url=emulator.base_url, headers={"X-API-KEY": "wrong"}, timeout=10) as c:
        r = c.post(CREATE, files={"image_file": ("big.png", PNG + b"\0" * (4 * 1024 * 1024))})
    assert r.status_code == 401


def test_durations_follow_size_and_seeded_jitter(make_emulator: Any) -> None:
    settings = {"processing_seconds": 10.0, "processing_seconds_per_mb": 4.0, "processing_jitter": 0.3, "seed": 7}
    durations = []
    for _ in range(2):
        emu = make_emulator(**settings)
        with client(emu) as c:
            for size in (0, 1024 * 1024):
                c.post(CREATE, files={"image_file": ("a.png", PNG[:8] + b"\0" * size)})
        durations.append([t["duration"] for t in emu.tasks()])
    assert durations[0] == durations[1]  # same seed, same sequence
    small, large = durations[0]
    assert 7.0 <= small <= 13.0 and 9.8 <= large <= 18.2
    emu.update(processing_jitter=0.0)
    with client(emu) as c:
        c.post(CREATE, files={"image_file": ("a.png", PNG[:8] + b"\0" * (512 * 1024))})
    assert emu.tasks()[-1]["duration"] == 10.0 + 4.0 * (512 * 1024 + 8) / (1024 * 1024)

"""Create and query: status codes, validation order and rules, lifecycle, keep-alive."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from ocr_watch.emulator import Emulator

CREATE = "/api/tasks/document/ocr"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
PDF = b"%PDF-1.4\n" + b"x" * 64


def client(emu: Emulator, key: str | None = "emu-key") -> httpx.Client:
    headers = {"X-API-KEY": key} if key else {}
    return httpx.Client(base_url=emu.base_url, headers=headers, timeout=10)


def create(c: httpx.Client, name: str = "a.png", content: bytes = PNG, **data: str) -> httpx.Response:
    return c.post(CREATE, files={"image_file": (name, content)}, data=data)


def poll_done(c: httpx.Client, task_id: str, wait_for: Any, timeout: float = 10) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    def done() -> dict[str, Any] | None:
        body = c.get(f"{CREATE}/{task_id}").json()
        seen.append(body)
        state = body["data"]["state"]
        return body if state == 1 or state < 0 else None

    return wait_for(done, timeout, what=f"task {task_id} terminal")


def test_create_success_envelope(emulator: Emulator) -> None:
    with client(emulator) as c:
        r = create(c)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == 200 and body["message"] == "success"
    assert len(body["data"]["task_id"]) == 36
    assert int(r.headers["content-length"]) == len(r.content)
    assert emulator.stats()["creates"] == 1


def test_lifecycle_reaches_done_with_progress_and_file(emulator: Emulator, wait_for: Any) -> None:
    emulator.update(processing_seconds=0.4)
    with client(emulator) as c:
        task_id = create(c, format="pdf").json()["data"]["task_id"]
        states, progresses = [], []

        def done() -> bool:
            d = c.get(f"{CREATE}/{task_id}").json()["data"]
            states.append(d["state"])
            progresses.append(d["progress"])
            assert ("file" in d) == (d["state"] == 1)
            return d["state"] == 1

        wait_for(done, 10, interval=0.01)
        final = c.get(f"{CREATE}/{task_id}").json()["data"]
    assert states[0] in (0, 2)
    assert set(states) <= {0, 2, 3, 4, 1}
    assert 4 in states
    assert progresses == sorted(progresses) and progresses[-1] == 100
    assert final["file"].startswith(emulator.result_base_url + "/r/")
    assert "Expires=" in final["file"] and "Signature=" in final["file"]
    for field in ("task_id", "created_at", "processed_at", "completed_at", "type", "file_pages",
                  "ocr_pages", "input_size", "output_size", "next"):
        assert field in final
    assert final["created_at"] <= final["processed_at"] <= final["completed_at"]
    assert final["input_size"] == len(PNG)
    assert emulator.stats()["credits_spent"] == 1


def test_keep_alive_reuses_one_connection(emulator: Emulator) -> None:
    with client(emulator) as c:
        task_id = create(c).json()["data"]["task_id"]
        for _ in range(5):
            assert c.get(f"{CREATE}/{task_id}").status_code == 200
    # one connection served them all: the API listener saw a single peer port
    assert emulator.stats()["queries"] == 5


@pytest.mark.parametrize("key", [None, "wrong"])
def test_bad_key_is_401_before_anything(emulator: Emulator, key: str | None) -> None:
    with client(emulator, key) as c:
        r = create(c, format="bogus")
        q = c.get(f"{CREATE}/whatever")
    assert (r.status_code, r.json()["status"]) == (401, 401)
    assert (q.status_code, q.json()["status"]) == (401, 401)
    assert emulator.stats()["creates"] == 0


def test_unknown_task_and_unknown_route_are_404(emulator: Emulator) -> None:
    with client(emulator) as c:
        assert c.get(f"{CREATE}/no-such-task").json()["status"] == 404
        r = c.get("/api/tasks/visual/document/ocr/x")  # the typo in one vendor sample
        assert r.status_code == 404 and r.json()["status"] == 404


@pytest.mark.parametrize(
    ("files", "data", "reason"),
    [
        (None, {"format": "txt"}, "required"),
        ({"image_file": ("a.png", PNG)}, {"image_url": "http://example.invalid/a.png"}, "exactly one"),
        ({"image_file": ("a.png", PNG)}, {"format": "doc"}, "format"),
        ({"image_file": ("a.png", PNG)}, {"format": ""}, "format"),
        ({"image_file": ("a.png", PNG)}, {"language": "english"}, "language"),
        ({"image_file": ("a.png", PNG)}, {"language": ",".join(["English"] * 11)}, "languages"),
        ({"image_file": ("a.png", PNG)}, {"password": "p" * 33}, "password"),
        (None, {"image_url": "ftp://example.invalid/a.png"}, "image_url"),
    ],
)
def test_validation_400(emulator: Emulator, files: Any, data: dict[str, str], reason: str) -> None:
    with client(emulator) as c:
        r = c.post(CREATE, files=files, data=data) if files else c.post(CREATE, data=data)
    assert r.status_code == 400
    assert r.json()["status"] == 400 and reason in r.json()["message"]
    assert emulator.stats()["creates"] == 0


def test_valid_edge_values_accepted(emulator: Emulator) -> None:
    with client(emulator) as c:
        langs = ",".join(["English", "Digits", "ChinesePRC", "French", "German", "Japanese", "Korean",
                          "Polish", "Turkish", "Greek"])
        for fmt in ("txt", "pdf", "docx", "xlsx", "pptx"):
            assert create(c, format=fmt, language=langs, password="p" * 32, sync="0").status_code == 200
        assert c.post(CREATE, files={"image_file": ("a.png", PNG)}).status_code == 200  # format defaults


def test_unsupported_content_ends_in_minus_7(emulator: Emulator, wait_for: Any) -> None:
    with client(emulator) as c:
        task_id = create(c, "notes.txt", b"just text").json()["data"]["task_id"]
        body = poll_done(c, task_id, wait_for)
    assert body["data"]["state"] == -7 and "file" not in body["data"]
    assert body["message"] != "success"
    assert emulator.stats()["credits_spent"] == 0


@pytest.mark.parametrize("magic", [b"%PDF", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF87a", b"GIF89a",
                                   b"BM", b"PK\x03\x04", b"\xd0\xcf\x11\xe0"])
def test_supported_kinds_succeed(emulator: Emulator, wait_for: Any, magic: bytes) -> None:
    emulator.update(processing_seconds=0.05)
    with client(emulator) as c:
        task_id = create(c, "x.bin", magic + b"rest").json()["data"]["task_id"]
        assert poll_done(c, task_id, wait_for)["data"]["state"] == 1


def test_image_url_is_accepted_and_ends_in_minus_3(emulator: Emulator, wait_for: Any) -> None:
    with client(emulator) as c:
        r = c.post(CREATE, data={"image_url": "https://example.invalid/scan.png", "format": "txt"})
        assert r.status_code == 200
        body = poll_done(c, r.json()["data"]["task_id"], wait_for)
    assert body["data"]["state"] == -3


def test_upload_over_limit_is_413_and_at_limit_is_fine(make_emulator: Any) -> None:
    emu = make_emulator(max_upload_bytes=1024 * 1024)
    with client(emu) as c:
        exact = PDF + b"\0" * (1024 * 1024 - len(PDF))
        assert create(c, "exact.pdf", exact).status_code == 200
    with client(emu) as c:
        r = create(c, "big.pdf", exact + b"\0")
        assert (r.status_code, r.json()["status"]) == (413, 413)
    with client(emu) as c:  # a big over-limit body is cut off, answered and closed
        r = create(c, "huge.pdf", PDF + b"\0" * (8 * 1024 * 1024))
        assert r.status_code == 413
        assert r.headers.get("connection") == "close"
    assert emu.stats()["creates"] == 1


def test_credits_402_and_spent_only_on_success(make_emulator: Any, wait_for: Any) -> None:
    emu = make_emulator(credits=1)
    with client(emu) as c:
        bad = create(c, "bad.txt", b"nope").json()["data"]["task_id"]
        assert poll_done(c, bad, wait_for)["data"]["state"] == -7
        assert emu.stats()["credits_left"] == 1  # failures are free
        good = create(c).json()["data"]["task_id"]
        assert poll_done(c, good, wait_for)["data"]["state"] == 1
        r = create(c)
    assert (r.status_code, r.json()["status"], r.json()["message"]) == (402, 402, "insufficient credits")
    stats = emu.stats()
    assert stats["credits_spent"] == 1 and stats["credits_left"] == 0


def test_same_content_counted_by_sha256(emulator: Emulator) -> None:
    with client(emulator) as c:
        create(c, "one.png")
        create(c, "two.png")
        create(c, "three.pdf", PDF)
    stats = emulator.stats()
    assert stats["tasks_by_sha256"][hashlib.sha256(PNG).hexdigest()] == 2
    assert stats["tasks_by_sha256"][hashlib.sha256(PDF).hexdigest()] == 1


def test_chunked_upload_is_parsed(emulator: Emulator, wait_for: Any) -> None:
    boundary = "b0undary"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"format\"\r\n\r\ntxt\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"image_file\"; filename=\"c.png\"\r\n"
        f"Content-Type: image/png\r\n\r\n"
    ).encode() + PNG + f"\r\n--{boundary}--\r\n".encode()

    def gen() -> Any:
        for i in range(0, len(body), 7):
            yield body[i : i + 7]

    with client(emulator) as c:
        r = c.post(CREATE, content=gen(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 200, r.text
    assert emulator.tasks()[0]["sha256"] == hashlib.sha256(PNG).hexdigest()


def test_request_log_and_tasks_listing(emulator: Emulator, wait_for: Any) -> None:
    with client(emulator) as c:
        task_id = create(c, "log.png").json()["data"]["task_id"]
        body = poll_done(c, task_id, wait_for)
    assert httpx.get(body["data"]["file"]).status_code == 200
    log = emulator.requests()
    assert log[0]["host"] == "api" and log[-1]["host"] == "result"
    assert all(set(e) >= {"t", "host", "method", "path", "api_key_present", "status", "task_id", "fault"} for e in log)
    assert log[0]["task_id"] == task_id and log[0]["status"] == 200 and log[0]["api_key_present"]
    assert log[-1]["api_key_present"] is False
    (task,) = emulator.tasks()
    assert task["task_id"] == task_id and task["source_name"] == "log.png" and task["state"] == 1
    assert task["downloads"] == 1 and task["first_download_t"] >= task["done_t"] >= task["created_t"]
    assert task["queries"] >= 1

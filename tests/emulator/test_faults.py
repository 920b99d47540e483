"""Every fault kind and every per-file trigger, each firing exactly ``count`` times."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from ocr_watch.emulator import Emulator

CREATE = "/api/tasks/document/ocr"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 4096


def client(emu: Emulator) -> httpx.Client:
    return httpx.Client(base_url=emu.base_url, headers={"X-API-KEY": "emu-key"}, timeout=10)


def create(c: httpx.Client, name: str = "a.png") -> httpx.Response:
    return c.post(CREATE, files={"image_file": (name, PNG)}, data={"format": "txt"})


def finish(c: httpx.Client, task_id: str, wait_for: Any) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        d = c.get(f"{CREATE}/{task_id}").json()["data"]
        return d if d["state"] == 1 or d["state"] < 0 else None

    return wait_for(done, 10, what="terminal state")


def test_http_500_on_create_makes_no_task(emulator: Emulator) -> None:
    emulator.add_fault("http_500", route="create", count=2)
    with client(emulator) as c:
        codes = [create(c).status_code for _ in range(3)]
        r500 = emulator.requests()[0]
    assert codes == [500, 500, 200]
    assert r500["fault"] == "http_500" and r500["status"] == 500
    stats = emulator.stats()
    assert stats["creates"] == 1 and stats["faults_fired"] == 2


def test_http_429_burst_with_retry_after(emulator: Emulator) -> None:
    emulator.add_fault("http_429", route="query", count=3, retry_after=2)
    with client(emulator) as c:
        task_id = create(c).json()["data"]["task_id"]
        answers = [c.get(f"{CREATE}/{task_id}") for _ in range(4)]
    assert [a.status_code for a in answers] == [429, 429, 429, 200]
    assert answers[0].json()["status"] == 429 and answers[0].headers["retry-after"] == "2"
    assert emulator.stats()["rate_limited"] == 0  # fault 429s are faults, not the rate limit


def test_slow_answers_after_delay(emulator: Emulator) -> None:
    emulator.add_fault("slow", route="query", delay_s=0.5)
    with client(emulator) as c:
        task_id = create(c).json()["data"]["task_id"]
        r = c.get(f"{CREATE}/{task_id}")
        assert r.status_code == 200 and r.elapsed.total_seconds() >= 0.45
        with pytest.raises(httpx.ReadTimeout):  # a client that gives up early sees a timeout
            emulator.add_fault("slow", route="create", delay_s=1.0)
            create(c).raise_for_status() if False else c.post(
                CREATE, files={"image_file": ("b.png", PNG)}, timeout=0.3)
    assert emulator.stats()["creates"] == 2  # the slow create still made its task


def test_drop_on_create_creates_the_task(emulator: Emulator) -> None:
    emulator.add_fault("drop", route="create")
    with client(emulator) as c:
        with pytest.raises(httpx.HTTPError):
            create(c).json()
        assert create(c).status_code == 200  # the next request works again
    stats = emulator.stats()
    assert stats["creates"] == 2 and stats["faults_fired"] == 1
    assert emulator.requests()[0]["fault"] == "drop" and emulator.requests()[0]["task_id"]


def test_drop_on_query(emulator: Emulator) -> None:
    with client(emulator) as c:
        task_id = create(c).json()["data"]["task_id"]
        emulator.add_fault("drop", route="query")
        with pytest.raises(httpx.HTTPError):
            c.get(f"{CREATE}/{task_id}")
        assert c.get(f"{CREATE}/{task_id}").status_code == 200


def test_malformed_json_on_create_still_creates(emulator: Emulator) -> None:
    emulator.add_fault("malformed_json", route="create")
    with client(emulator) as c:
        r = create(c)
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)
    assert emulator.stats()["creates"] == 1


def test_body_500_is_http_200(emulator: Emulator) -> None:
    emulator.add_fault("body_500", route="any")
    with client(emulator) as c:
        r = create(c)
    assert r.status_code == 200 and r.json()["status"] == 500
    assert emulator.stats()["creates"] == 0


def test_route_filter(emulator: Emulator) -> None:
    emulator.add_fault("http_500", route="query")
    with client(emulator) as c:
        assert create(c).status_code == 200  # create does not consume a query fault
        assert c.get(f"{CREATE}/x").status_code == 500
        assert c.get(f"{CREATE}/x").status_code == 404


@pytest.mark.parametrize("state", [-1, -2, -5, -7, -8])
def test_state_fault(emulator: Emulator, wait_for: Any, state: int) -> None:
    emulator.add_fault("state", state=state, count=1)
    with client(emulator) as c:
        first = create(c).json()["data"]["task_id"]
        second = create(c, "b.png").json()["data"]["task_id"]
        assert finish(c, first, wait_for)["state"] == state
        assert finish(c, second, wait_for)["state"] == 1
    assert emulator.stats()["credits_spent"] == 1


def test_expired_url_fault(emulator: Emulator, wait_for: Any) -> None:
    emulator.add_fault("expired_url")
    with client(emulator) as c:
        url = finish(c, create(c).json()["data"]["task_id"], wait_for)["file"]
        url2 = finish(c, create(c, "b.png").json()["data"]["task_id"], wait_for)["file"]
    assert httpx.get(url).status_code == 403
    assert httpx.get(url2).status_code == 200


def test_broken_download_fault(emulator: Emulator, wait_for: Any) -> None:
    with client(emulator) as c:
        url = finish(c, create(c).json()["data"]["task_id"], wait_for)["file"]
    emulator.add_fault("broken_download", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url)
    assert httpx.get(url).status_code == 200
    assert emulator.requests()[-2]["fault"] == "broken_download"


def test_download_route_faults(emulator: Emulator, wait_for: Any) -> None:
    with client(emulator) as c:
        url = finish(c, create(c).json()["data"]["task_id"], wait_for)["file"]
    emulator.add_fault("http_500", route="download")
    emulator.add_fault("drop", route="download")
    assert httpx.get(url).status_code == 500
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url)
    assert httpx.get(url).status_code == 200


def test_invalid_faults_rejected(emulator: Emulator) -> None:
    for kwargs in ({"kind": "nope"}, {"kind": "state", "state": 1}, {"kind": "http_500", "route": "x"},
                   {"kind": "http_500", "count": 0}):
        kind = kwargs.pop("kind")
        with pytest.raises(ValueError):
            emulator.add_fault(kind, **kwargs)
    r = httpx.post(f"{emulator.base_url}/_emulator/faults", json={"kind": "nope"})
    assert r.status_code == 400


@pytest.mark.parametrize("state", [-1, -7, -8])
def test_trigger_state(emulator: Emulator, wait_for: Any, state: int) -> None:
    with client(emulator) as c:
        task_id = create(c, f"scan__state_{state}__.png").json()["data"]["task_id"]
        assert finish(c, task_id, wait_for)["state"] == state


def test_trigger_expired_and_brokendl(emulator: Emulator, wait_for: Any) -> None:
    with client(emulator) as c:
        expired = finish(c, create(c, "a__expired__.png").json()["data"]["task_id"], wait_for)["file"]
        broken = finish(c, create(c, "b__brokendl__.png").json()["data"]["task_id"], wait_for)["file"]
    assert httpx.get(expired).status_code == 403
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(broken)
    assert httpx.get(broken).status_code == 200  # only the first download breaks


def test_trigger_seconds(emulator: Emulator, wait_for: Any) -> None:
    emulator.update(processing_seconds=30)
    with client(emulator) as c:
        task_id = create(c, "quick__seconds_0.3__.png").json()["data"]["task_id"]
        assert finish(c, task_id, wait_for)["state"] == 1
    (task,) = emulator.tasks()
    assert task["duration"] == pytest.approx(0.3)
    assert task["done_t"] - task["created_t"] == pytest.approx(0.3, abs=0.01)

"""`metrics.listen`: the real daemon's /metrics agree with what the emulator counted (issue 17)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from collections import Counter
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ocr_watch.emulator import Emulator
from ocr_watch.testing import Workspace, free_port, png_bytes, wait_for

N_FILES = 5


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _kind(request: dict[str, Any]) -> str:
    if request["host"] == "result":
        return "download"
    path = request["path"]
    if path == "/api/tasks/document/ocr":
        return "create"
    if path.startswith("/api/tasks/document/ocr/"):
        return "query"
    assert path == "/api/customers/package-credits", path
    return "credits"


@pytest.mark.slow
def test_metrics_after_n_files_equal_the_emulators_counts(
    workspace: Workspace, make_emulator: Any, daemon_factory: Any
) -> None:
    emulator: Emulator = make_emulator(credits=1000, requests_per_second=0.0)
    workspace.base_url = emulator.base_url
    port = free_port()
    workspace.write_config(metrics={"listen": f"127.0.0.1:{port}"})
    for n in range(N_FILES):
        workspace.drop(f"m{n}.png", png_bytes(n))
    daemon = daemon_factory(workspace.config_path).start()
    daemon.wait_event("metrics_listening")
    done = ("ocr_watch_files_total", (("job", "default"), ("outcome", "done")))
    wait_for(lambda: _scrape(port).get(done) == N_FILES, 30, what=f"{N_FILES} files done in /metrics")
    scraped = _scrape(port)

    assert scraped[("ocr_watch_files_total", (("job", "default"), ("outcome", "quarantined")))] == 0
    emulated = Counter((_kind(r), str(r["status"])) for r in emulator.requests())
    ours = {(dict(labels)["kind"], dict(labels)["code"]): value
            for (name, labels), value in scraped.items() if name == "ocr_watch_api_requests_total"}
    assert ours == dict(emulated)
    assert ours[("create", "200")] == emulator.stats()["creates"] == N_FILES
    assert ours[("credits", "200")] == emulator.stats()["credit_queries"] == 1
    stats = emulator.stats()
    assert scraped[("ocr_watch_credits_spent_total", ())] == stats["credits_spent"] == N_FILES
    assert scraped[("ocr_watch_credits_left", ())] == 1000  # asked at start, before any task was done
    assert scraped[("ocr_watch_possible_double_charges_total", ())] == 0
    assert scraped[("ocr_watch_account_paused", ())] == 0
    assert {value for (name, _), value in scraped.items() if name == "ocr_watch_files_in_state"} == {0}
    assert scraped[("ocr_watch_file_seconds_count", ())] == N_FILES
    assert scraped[("ocr_watch_result_lag_seconds_count", ())] == N_FILES
    assert scraped[("process_resident_memory_bytes", ())] > 0

    status = subprocess.run([sys.executable, "-m", "ocr_watch", "status", "--json", "--config",
                             str(workspace.config_path)], capture_output=True, text=True, timeout=30)
    assert json.loads(status.stdout)["credits_left"] == 1000
    assert daemon.terminate() == 0


def test_a_metrics_port_already_taken_stops_start_up_naming_the_key(workspace: Workspace) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        workspace.write_config(metrics={"listen": f"127.0.0.1:{port}"})
        result = subprocess.run([sys.executable, "-m", "ocr_watch", "once", "--config", str(workspace.config_path)],
                                capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"metrics.listen: cannot listen on 127.0.0.1:{port}" in result.stderr

"""What a person or a journal sees on stderr: on a terminal the progress bar stays below the
log lines; elsewhere every line is JSON; nowhere a key."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ocr_watch.api.callbacks import callback_token
from ocr_watch.testing import EMU_KEY, Daemon, Workspace, free_port, once_on_a_terminal, png_bytes, wait_for

pytestmark = pytest.mark.timeout(90)

BAR = re.compile(r"\[[#.]{30}\] \d+/\d+ finished: ")
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[.\d]*Z \[(debug|info|warning|error|critical) *\] ")


def screen_lines(output: bytes) -> list[str]:
    """The lines a terminal shows for ``output``: `\\r` goes back to the line's start, a
    character overwrites the one under the cursor, `ESC [K` clears to the end of the line."""
    lines: list[list[str]] = [[]]
    row = col = 0
    text = output.decode("utf-8", errors="replace")
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\x1b":
            match = re.match(r"\x1b\[[0-9;?]*([A-Za-z])", text[i:])
            if match:
                if match.group(1) == "K":
                    del lines[row][col:]
                i += match.end()
                continue
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row += 1
            if row == len(lines):
                lines.append([])
        else:
            line = lines[row]
            line.extend(" " * (col + 1 - len(line)))
            line[col] = ch
            col += 1
        i += 1
    return ["".join(line).rstrip() for line in lines]


def test_on_a_terminal_log_lines_print_above_the_progress_bar_never_on_it(workspace: Workspace) -> None:
    """log_level info: events arrive while the bar is shown. Each starts a line of its own,
    no line holds both a bar and an event, and the final bar is left on the screen."""
    workspace.write_config(log_level="info")
    for n in range(4):
        workspace.drop(f"p{n}.png", png_bytes(n))
    code, output = once_on_a_terminal(workspace.config_path)
    assert code == 0, output[-2000:]
    lines = screen_lines(output)
    events = [ln for ln in lines if LOG_LINE.search(ln)]
    bars = [ln for ln in lines if BAR.search(ln)]
    assert len(events) >= 8, lines  # file_done and friends, printed while the bar was up
    glued = [ln for ln in lines if BAR.search(ln) and LOG_LINE.search(ln)]
    assert glued == []
    assert all(LOG_LINE.match(ln) for ln in events), [ln for ln in events if not LOG_LINE.match(ln)]
    # Each bar drawn was cleared before a log line took its place: one is left, the final one, last.
    assert lines[-1] == "" and bars == [lines[-2]]
    assert bars[0] == "[" + "#" * 30 + "] 4/4 finished: 4 done, 0 quarantined, 0 in flight"


def json_lines(stderr: bytes) -> list[dict[str, Any]]:
    """Every line of ``stderr`` as a JSON object; the lines that are not, in the failure."""
    events, bad = [], []
    for line in stderr.decode(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            event = None
        if isinstance(event, dict):
            events.append(event)
        else:
            bad.append(line)
    assert bad == [], "lines on stderr that are not JSON objects"
    return events


# A library that logs badly, inside the real daemon: once logging is configured, a record whose
# arguments (the key among them) do not fit its format, and an exception in a `__del__`.
MISBEHAVING_LIBRARY = """
import logging, runpy, sys
from ocr_watch import logs
configure = logs.configure
def configured(*args, **kwargs):
    out = configure(*args, **kwargs)
    logging.getLogger("somelib").warning("connecting with %s to %s", KEY)
    class Handle:
        def __del__(self):
            raise OSError("closing a handle with " + KEY)
    Handle()
    return out
logs.configure = configured
KEY = sys.argv.pop()
sys.argv[0] = "ocr-watch"
runpy.run_module("ocr_watch", run_name="__main__")
"""


def test_every_stderr_line_of_a_run_with_library_warnings_is_json_without_the_key(workspace: Workspace) -> None:
    """asyncio's debug mode and `-X dev` make the libraries talk (asyncio's records, resource
    warnings); a library record that cannot be formatted and an exception Python cannot raise
    are JSON lines too, redacted, where `logging` and Python would print bare text with the key."""
    workspace.write_config(log_level="debug")
    workspace.drop("a.png", png_bytes(1))
    workspace.drop("bad.png", b"not an image")
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-c", MISBEHAVING_LIBRARY, "once", "--config", str(workspace.config_path),
         EMU_KEY], capture_output=True, timeout=60, env={**os.environ, "PYTHONASYNCIODEBUG": "1"})
    assert result.returncode == 1, result.stderr[-3000:]  # bad.png went to quarantine
    events = json_lines(result.stderr)
    assert EMU_KEY.encode() not in result.stderr
    assert [e for e in events if e.get("logger") == "asyncio"], "asyncio's debug records"
    (odd,) = [e for e in events if e.get("logger") == "somelib"]
    assert odd["level"] == "warning" and odd["event"].startswith("connecting with %s to %s % ('***',)")
    (ignored,) = [e for e in events if e["event"] == "exception_ignored"]
    assert "OSError: closing a handle with ***" in ignored["exception"]
    assert {e["event"] for e in events} >= {"file_done", "file_quarantined"}


def test_a_flood_of_refused_callbacks_costs_the_daemons_log_a_line_or_two(
    workspace: Workspace, daemon_factory: Callable[[Path], Daemon],
) -> None:
    """300 POSTs with a wrong token at a real `ocr-watch run`: one `callback_refused` line at
    once, the rest counted and logged at the stop; every line JSON, no key, no token."""
    port = free_port()
    daemon = daemon_factory(workspace.write_config(callback={
        "url": f"http://127.0.0.1:{port}/cb", "listen": f"127.0.0.1:{port}", "fallback_seconds": 30})).start()
    daemon.wait_event("callbacks_listening", 60)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for n in range(300):
            conn.request("POST", "/cb?ocrw=guess" + str(n), body=b'{"status": 200, "data": {"task_id": "x"}}')
            response = conn.getresponse()
            assert response.status == 403
            response.read()
    finally:
        conn.close()
    workspace.drop("after.png", png_bytes(3))
    wait_for(lambda: (workspace.outbox / "after.txt").exists(), 60, what="a file done after the flood")
    assert daemon.terminate() == 0
    log = daemon.log_path.read_bytes()
    events = json_lines(log)
    assert EMU_KEY.encode() not in log and callback_token(EMU_KEY).encode() not in log
    refused = [e for e in events if e["event"] == "callback_refused"]
    assert {e["reason"] for e in refused} == {"missing or wrong token"}
    assert refused[0]["count"] == 1 and 2 <= len(refused) <= 3
    assert sum(e["count"] for e in refused) == 300


def test_a_refusal_to_start_is_a_json_line_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    """Config errors come before logging is set up; they are JSON all the same."""
    config = tmp_path / "config.yaml"
    config.write_text("folders: {inbox: in, outbox: out, quarantine: q}\n"
                      "api: {key: abcdefgh, requests_per_second: x}\n")
    result = subprocess.run([sys.executable, "-m", "ocr_watch", "run", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert [e["event"] for e in events] == ["config_error"]
    assert "api.requests_per_second" in events[0]["message"] and "abcdefgh" not in result.stderr

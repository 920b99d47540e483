"""What a person or a journal sees on stderr: on a terminal the progress bar stays below the
log lines; elsewhere every line is JSON; nowhere a key."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys

import pytest

from tests.e2e.conftest import Workspace, png_bytes

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


def run_once_on_a_terminal(workspace: Workspace) -> tuple[int, bytes]:
    """`ocr-watch once` with stderr on a pty: its exit code and everything it drew there."""
    leader, follower = pty.openpty()
    try:
        result = subprocess.run([sys.executable, "-m", "ocr_watch", "once", "--config", str(workspace.config_path)],
                                stderr=follower, stdout=subprocess.DEVNULL, timeout=60)
        os.close(follower)
        follower = -1
        screen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every writer has closed the pty
                break
            if not chunk:
                break
            screen += chunk
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    return result.returncode, screen


def test_on_a_terminal_log_lines_print_above_the_progress_bar_never_on_it(workspace: Workspace) -> None:
    """log_level info: events arrive while the bar is shown. Each starts a line of its own,
    no line holds both a bar and an event, and the final bar is left on the screen."""
    workspace.write_config(log_level="info")
    for n in range(4):
        workspace.drop(f"p{n}.png", png_bytes(n))
    code, output = run_once_on_a_terminal(workspace)
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

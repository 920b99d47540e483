"""ocr_watch.statusline: log lines go above the status line, never onto it."""

from __future__ import annotations

import io
import threading

import pytest

from ocr_watch.statusline import StatusLine

pytestmark = pytest.mark.timeout(30)


def test_a_line_written_while_a_status_is_shown_clears_it_then_draws_it_again() -> None:
    out = io.StringIO()
    line = StatusLine(out)
    line.info("before")
    line.show("[#...] 1/4")
    line.show("[#...] 1/4")  # unchanged: nothing drawn
    line.warning("during")
    line.show("[##..] 2/4")
    line.end()
    line.error("after")
    assert out.getvalue() == ("before\n"
                              "\r\x1b[K[#...] 1/4"
                              "\r\x1b[Kduring\n[#...] 1/4"
                              "\r\x1b[K[##..] 2/4"
                              "\n"
                              "after\n")


def test_lines_from_many_threads_are_never_cut() -> None:
    out = io.StringIO()
    line = StatusLine(out)
    line.show("BAR")

    def write(n: int) -> None:
        for i in range(200):
            line.msg(f"thread {n} line {i}")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    chunks = out.getvalue().split("\r\x1b[K")[2:]  # after the first bar, one chunk per log line
    assert len(chunks) == 800
    assert all(c.endswith("\nBAR") and c.startswith("thread ") and c.count("\n") == 1 for c in chunks)

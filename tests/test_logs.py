"""ocr_watch.logs: library records, warnings and thread crashes are JSON lines, redacted like ours."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from ocr_watch import logs
from ocr_watch.testing import json_log as json_log_into

pytestmark = pytest.mark.timeout(30)

KEY = "sk-live-0123456789abcdef"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """A JSON-configured stream; the process-wide logging state is put back afterwards."""
    with json_log_into([KEY]) as out:
        yield out


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]  # every line must parse


def test_a_library_warning_is_one_redacted_json_line_naming_its_logger(stream: io.StringIO) -> None:
    logging.getLogger("watchdog.observers.inotify_c").warning("cannot read %s with key %s", "/in", KEY)
    structlog.get_logger("ocr_watch").info("ours", key_used=KEY)
    found = lines(stream)
    assert [e["event"] for e in found] == ["cannot read /in with key ***", "ours"]
    assert found[0]["logger"] == "watchdog.observers.inotify_c"
    assert found[0]["level"] == "warning" and found[0]["timestamp"]
    assert found[1]["key_used"] == "***"
    assert KEY not in stream.getvalue()


def test_a_library_exception_keeps_its_traceback_redacted(stream: io.StringIO) -> None:
    try:
        raise OSError(f"refused {KEY}")
    except OSError:
        logging.getLogger("somelib").exception("failed")
    (event,) = lines(stream)
    assert event["event"] == "failed" and event["level"] == "error"
    assert "OSError: refused ***" in event["exception"]
    assert KEY not in stream.getvalue()


def test_below_the_level_and_httpx_info_stay_quiet(stream: io.StringIO) -> None:
    logging.getLogger("somelib").debug("chatter")
    logging.getLogger("httpx").info("HTTP Request: GET https://x/?sig=abc")
    logging.getLogger("httpx").warning("retrying")
    assert [e["event"] for e in lines(stream)] == ["retrying"]


def test_python_warnings_and_thread_crashes_are_json_too(stream: io.StringIO) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn(f"odd {KEY}", RuntimeWarning, stacklevel=1)

    def crash() -> None:
        raise ValueError(f"thread died holding {KEY}")

    thread = threading.Thread(target=crash, name="emitter")
    thread.start()
    thread.join()
    warned, crashed = lines(stream)
    assert warned["logger"] == "py.warnings" and "RuntimeWarning: odd ***" in warned["event"]
    assert crashed["event"] == "thread_crashed" and crashed["thread"] == "emitter"
    assert "ValueError: thread died holding ***" in crashed["exception"]
    assert KEY not in stream.getvalue()


def test_configured_twice_there_is_still_one_root_handler(stream: io.StringIO) -> None:
    logs.configure("info", secrets=[KEY], json=True, stream=stream)
    logging.getLogger("somelib").warning("once")
    assert [e["event"] for e in lines(stream)] == ["once"]


def test_a_non_utf8_file_name_is_shown_with_its_bytes_in_our_events_and_library_records(
    stream: io.StringIO,
) -> None:
    import os

    name = os.fsdecode(b"scans/bad\xffname.png")
    structlog.get_logger("ocr_watch.pool").info("file_done", file=name, nested={"paths": [name]})
    logging.getLogger("watchdog.observers").warning("cannot watch %s", name)
    ours, theirs = lines(stream)
    assert ours["file"] == "scans/bad\\xffname.png" and ours["nested"] == {"paths": ["scans/bad\\xffname.png"]}
    assert theirs["event"] == "cannot watch scans/bad\\xffname.png"
    assert "\\udcff" not in stream.getvalue()


def test_a_library_record_whose_arguments_do_not_fit_is_still_one_redacted_json_line(stream: io.StringIO) -> None:
    """`logging` would print `--- Logging error ---`, a traceback and the arguments, key and
    all, as bare text on stderr."""
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if isinstance(h, logs.StdlibHandler)]  # not pytest's: it raises
    logging.getLogger("somelib").warning("sent %s to %s", KEY)
    logging.getLogger("somelib").warning("then %d", "not a number")
    first, second = lines(stream)
    assert first["logger"] == "somelib" and first["level"] == "warning"
    assert first["event"].startswith("sent %s to %s % ('***',) (not formattable: TypeError(")
    assert second["event"].startswith("then %d % ('not a number',)")
    assert KEY not in stream.getvalue()


def test_an_exception_python_cannot_raise_is_a_json_line(stream: io.StringIO) -> None:
    """An exception in a `__del__` or a finalizer goes to `sys.unraisablehook`, which would
    print `Exception ignored in: ...` as bare text."""
    logs.configure("info", secrets=[KEY], json=True, stream=stream)  # pytest puts its own hook in per phase

    class Holder:
        def __del__(self) -> None:
            raise RuntimeError(f"closing with {KEY}")

    holder = Holder()
    del holder
    (event,) = lines(stream)
    assert event["event"] == "exception_ignored" and event["level"] == "error"
    assert "Holder.__del__" in event["object"] and event["error"] == "RuntimeError"
    assert "RuntimeError: closing with ***" in event["exception"]
    assert KEY not in stream.getvalue()


def test_our_events_name_their_logger(stream: io.StringIO) -> None:
    """`logger` is the name given to get_logger, as a library record's is its own."""
    structlog.get_logger("ocr_watch.pool").info("file_done")
    structlog.get_logger().info("nameless")
    logging.getLogger("watchdog").warning("theirs")
    assert [(e["event"], e["logger"]) for e in lines(stream)] == [
        ("file_done", "ocr_watch.pool"), ("nameless", "ocr_watch"), ("theirs", "watchdog")]


@pytest.fixture
def journal_stream() -> Iterator[io.StringIO]:
    """Configured as when stderr is the journal: every line starts with its syslog priority."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    logs.configure("debug", secrets=[KEY], json=True, stream=out, journal=True)
    yield out
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)
    structlog.reset_defaults()


def test_journal_lines_carry_their_priority(journal_stream: io.StringIO) -> None:
    log = structlog.get_logger("ocr_watch.x")
    log.debug("d")
    log.info("i")
    log.warning("w", key_used=KEY)
    log.error("e")
    logging.getLogger("watchdog").warning("library")
    rows = journal_stream.getvalue().splitlines()
    assert [row[:3] for row in rows] == ["<7>", "<6>", "<4>", "<3>", "<4>"]
    assert [json.loads(row[3:])["event"] for row in rows] == ["d", "i", "w", "e", "library"]
    assert KEY not in journal_stream.getvalue()


def test_stderr_is_the_journal_only_when_journal_stream_names_it(tmp_path: Any) -> None:
    """JOURNAL_STREAM is dev:ino of the journal's stream: it must be the fd's own."""
    with open(tmp_path / "a", "w") as a, open(tmp_path / "b", "w") as b:
        st = os.fstat(a.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert logs.stderr_is_journal(env, a.fileno())
        assert not logs.stderr_is_journal(env, b.fileno())  # inherited, but stderr was redirected
        assert not logs.stderr_is_journal({}, a.fileno())
        assert not logs.stderr_is_journal({"JOURNAL_STREAM": "junk"}, a.fileno())


def test_a_reload_changes_the_level_and_adds_a_secret(stream: io.StringIO) -> None:
    log = structlog.get_logger("ocr_watch")
    log.debug("hidden")
    logs.set_level("debug")
    log.debug("shown")
    logging.getLogger("lib").debug("library debug")
    logs.add_secrets(["new-password-123"])
    log.info("masked", password="new-password-123", key=KEY)
    assert [e["event"] for e in lines(stream)] == ["shown", "library debug", "masked"]
    assert lines(stream)[-1]["password"] == "***" and lines(stream)[-1]["key"] == "***"

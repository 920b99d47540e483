"""ocr_watch.notify: the socket (path and abstract), the watchdog interval, the throttled STATUS."""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocr_watch.notify import Notifier, StatusReporter, monotonic_usec, watchdog_interval
from ocr_watch.testing import NotifyReceiver

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def abstract() -> Iterator[NotifyReceiver]:
    receiver = NotifyReceiver(f"@ocr-watch-test-{secrets.token_hex(6)}")
    yield receiver
    receiver.close()


class TestNotifier:
    def test_an_abstract_address_receives_ready_with_a_status(self, abstract: NotifyReceiver) -> None:
        """`@name` is the abstract namespace, as systemd writes it."""
        notifier = Notifier({"NOTIFY_SOCKET": abstract.address})
        assert notifier.enabled
        notifier.ready("0 in flight")
        abstract.wait("READY", "1")
        assert abstract.datagrams[0][1] == "READY=1\nSTATUS=0 in flight"

    def test_a_path_address_and_reloading_carries_the_monotonic_clock(self) -> None:
        with tempfile.TemporaryDirectory(dir="/tmp") as folder:  # short: a socket path has 108 bytes
            receiver = NotifyReceiver(os.path.join(folder, "notify"))
            try:
                notifier = Notifier({"NOTIFY_SOCKET": receiver.address})
                before = monotonic_usec()
                notifier.reloading()
                receiver.wait("MONOTONIC_USEC")
                (_, usec), = receiver.values("MONOTONIC_USEC")
                assert before <= int(usec) <= monotonic_usec()
                assert receiver.datagrams[0][1].startswith("RELOADING=1\n")
            finally:
                receiver.close()

    def test_without_notify_socket_nothing_is_sent(self) -> None:
        notifier = Notifier({})
        assert not notifier.enabled and notifier.send("READY=1") is False

    def test_a_vanished_socket_is_logged_not_raised(self, tmp_path: Path) -> None:
        notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody")})
        assert notifier.send("READY=1") is False
        assert notifier.send("STOPPING=1") is False
        notifier.close()


class TestWatchdogInterval:
    def test_half_of_watchdog_usec(self) -> None:
        assert watchdog_interval({"WATCHDOG_USEC": "400000"}) == 0.2

    def test_not_asked_for_or_not_for_this_process(self) -> None:
        assert watchdog_interval({}) is None
        assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
        assert watchdog_interval({"WATCHDOG_USEC": "x"}) is None
        assert watchdog_interval({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1"}, pid=2) is None
        assert watchdog_interval({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "2"}, pid=2) == 0.2


class TestStatusReporter:
    def test_changes_go_at_most_once_a_second_and_the_newest_wins(self, abstract: NotifyReceiver) -> None:
        """Three changes in a burst: the first at once, the last one `every_s` later, none between."""
        async def scenario() -> None:
            reporter = StatusReporter(Notifier({"NOTIFY_SOCKET": abstract.address}), every_s=0.3)
            reporter.offer("a")
            reporter.offer("b")
            reporter.offer("c")
            reporter.offer("c")
            await asyncio.to_thread(abstract.wait, "STATUS", "c")
            reporter.offer("c")  # unchanged: nothing more
            reporter.close()

        asyncio.run(scenario())
        sent = abstract.values("STATUS")
        assert [v for _, v in sent] == ["a", "c"]
        assert sent[1][0] - sent[0][0] >= 0.25

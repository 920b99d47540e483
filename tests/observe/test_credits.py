"""Credits left (issue 17): read defensively, asked of the emulator, kept for status, warned once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from ocr_watch.api import AccountError, PicWishClient
from ocr_watch.api.answers import read_credits
from ocr_watch.balance import BalanceWatch
from ocr_watch.emulator import Emulator
from ocr_watch.journal import Journal
from ocr_watch.journal.reader import read_snapshot
from ocr_watch.testing import EMU_KEY, png_bytes, wait_for


@pytest.mark.parametrize(("body", "figure"), [
    ({"status": 200, "data": {"balance": 42}}, 42),
    ({"status": 200, "data": 7}, 7),
    ({"status": 200, "data": {"balance": 3.0}}, 3),
    ({"status": 200, "data": {"balance": None}}, None),
    ({"status": 200, "data": {"balance": "42"}}, None),
    ({"status": 200, "data": {"balance": -1}}, None),
    ({"status": 200, "data": {"balance": True}}, None),
    ({"status": 200, "data": {"balance": 2.5}}, None),
    ({"status": 200, "data": {"credits": 42}}, None),
    ({"status": 200, "data": [42]}, None),
    ({"status": 200}, None),
])
def test_an_answer_of_another_shape_leaves_the_figure_unknown(body: dict[str, Any], figure: int | None) -> None:
    assert read_credits(body) == figure


def _ask(base_url: str, transport: httpx.AsyncBaseTransport | None = None, key: str = EMU_KEY) -> int | None:
    async def main() -> int | None:
        async with PicWishClient(base_url, key, requests_per_second=1000, transport=transport) as client:
            return await client.credits_left()
    return asyncio.run(main())


def test_the_client_reads_the_emulators_balance_which_falls_by_one_per_task_done(make_emulator: Any,
                                                                                tmp_path: Path) -> None:
    emulator: Emulator = make_emulator(credits=5)
    assert _ask(emulator.base_url) == 5
    source = tmp_path / "a.png"
    source.write_bytes(png_bytes(1))

    async def create() -> None:
        from ocr_watch.api import CreateOptions
        async with PicWishClient(emulator.base_url, EMU_KEY, requests_per_second=1000) as client:
            await client.create_task(source, CreateOptions(format="txt"))
    asyncio.run(create())
    wait_for(lambda: emulator.stats()["credits_spent"] == 1, 10, what="the task done")
    assert _ask(emulator.base_url) == 4
    assert emulator.stats()["credit_queries"] == 2
    assert [r["status"] for r in emulator.requests() if r["path"] == "/api/customers/package-credits"] == [200, 200]


def test_unlimited_emulator_credits_and_odd_shapes_read_as_unknown(emulator: Emulator) -> None:
    assert _ask(emulator.base_url) is None  # no --credits: the emulator says null
    odd = httpx.MockTransport(lambda request: httpx.Response(200, json={"status": 200, "data": "lots"}))
    assert _ask("https://api.example.test", odd) is None


def test_a_refused_route_raises_for_the_watch_to_take_as_unknown(emulator: Emulator) -> None:
    with pytest.raises(AccountError):
        _ask(emulator.base_url, key="not-the-key")


class _Figures:
    """An `ask` that gives the figures in turn (an exception is raised instead)."""

    def __init__(self, *figures: int | Exception | None) -> None:
        self._figures: Iterator[int | Exception | None] = iter(figures)

    async def __call__(self) -> int | None:
        figure = next(self._figures)
        if isinstance(figure, Exception):
            raise figure
        return figure


def test_low_credits_are_warned_once_per_fall_and_the_figure_is_kept_for_status(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite3")
    ask = _Figures(150, 90, 80, None, 70, 120, 50, AccountError("refused", status_code=401))
    seen: list[int | None] = []

    class Recorder:
        def __getattr__(self, name: str) -> Any:
            return lambda *a: seen.append(a[0]) if name == "credits_left" else None

    watch = BalanceWatch(ask, journal, low_warning=100, recorder=Recorder(), wall=lambda: 1_800_000_000.0)

    async def main() -> list[int | None]:
        return [await watch.check() for _ in range(8)]

    with structlog.testing.capture_logs() as logs:
        figures = asyncio.run(main())
        snapshot = read_snapshot(journal.path)
    assert figures == seen == [150, 90, 80, None, 70, 120, 50, None]
    warned = [e["credits_left"] for e in logs if e["event"] == "credits_low"]
    assert warned == [90, 50], "once when it fell below 100, again only after a top-up"
    assert [e["event"] for e in logs].count("credits_left_unknown") == 2
    assert snapshot.credits_left is None and snapshot.credits_asked_at == 1_800_000_000.0
    journal.close()


def test_status_reads_the_last_figure_from_the_journal(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite3")
    asyncio.run(BalanceWatch(_Figures(321), journal, low_warning=100).check())
    assert read_snapshot(journal.path).credits_left == 321  # read-only, beside the open writer
    journal.close()
    assert read_snapshot(tmp_path / "journal.sqlite3").credits_left == 321  # and after it closed

"""Shared fixtures: a fast in-process PicWish emulator and a deadline-based wait helper."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from ocr_watch.emulator import Emulator, EmulatorSettings

EMU_KEY = "emu-key"
T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., Any]:
    """The ``wait_for(predicate, timeout)`` helper, as a fixture."""
    return wait_for


@pytest.fixture
def emu_key() -> str:
    """The API key the ``emulator`` fixture accepts."""
    return EMU_KEY


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Emulator]]:
    """Factory: ``make_emulator(**settings)`` starts an emulator stopped at teardown.

    Defaults: key ``emu-key``, 0.2 s processing, no rate limit.
    """
    started: list[Emulator] = []

    def make(**overrides: Any) -> Emulator:
        values: dict[str, Any] = {"api_keys": (EMU_KEY,), "processing_seconds": 0.2, "requests_per_second": 0.0}
        values.update(overrides)
        emu = Emulator(EmulatorSettings(**values)).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def emulator(make_emulator: Callable[..., Emulator]) -> Emulator:
    """A started emulator on 127.0.0.1: 0.2 s processing, unlimited rate; ``update()`` to change."""
    return make_emulator()

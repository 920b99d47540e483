"""Shared fixtures: a fast in-process PicWish emulator, and the wait helper as a fixture.

Helpers are imported from `ocr_watch.testing`, never from a conftest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ocr_watch.emulator import Emulator, EmulatorSettings
from ocr_watch.testing import EMU_KEY, wait_for


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

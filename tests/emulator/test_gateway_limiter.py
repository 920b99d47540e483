"""The strict gateway limiter (nginx ``limit_req`` without burst): its arithmetic on a fake
clock, and the emulator answering 429 through it (``limiter="gateway"``, ``--limiter gateway``)."""

from __future__ import annotations

import argparse
from typing import Any

import httpx

from ocr_watch.emulator import Emulator
from ocr_watch.emulator.cli import add_arguments, settings_from_args
from ocr_watch.emulator.ratelimit import GatewayLimiter, TokenBucketLimiter

QUERY = "/api/tasks/document/ocr/x"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_requests_closer_than_one_over_rate_are_refused() -> None:
    clock = FakeClock()
    gate = GatewayLimiter(2.0, clock=clock)
    assert gate.try_acquire("k")
    clock.now += 0.499
    assert not gate.try_acquire("k")
    clock.now += 0.001  # 0.5 s after the one let through
    assert gate.try_acquire("k")
    clock.now += 0.5
    assert gate.try_acquire("k")


def test_a_refused_request_does_not_move_the_window() -> None:
    clock = FakeClock()
    gate = GatewayLimiter(2.0, clock=clock)
    assert gate.try_acquire("k")
    for _ in range(4):  # knocking early, again and again
        clock.now += 0.1
        assert not gate.try_acquire("k")
    clock.now += 0.1  # 0.5 s after the last one let through, 0.1 s after the last refusal
    assert gate.try_acquire("k")


def test_no_burst_even_after_a_long_idle() -> None:
    """A token bucket saves up; the gateway never does."""
    clock = FakeClock()
    gate = GatewayLimiter(2.0, clock=clock)
    bucket = TokenBucketLimiter(2.0, 2.0, clock=clock)
    assert gate.try_acquire("k") and bucket.try_acquire("k")
    clock.now += 60
    assert [gate.try_acquire("k") for _ in range(2)] == [True, False]
    assert [bucket.try_acquire("k") for _ in range(3)] == [True, True, False]


def test_keys_are_separate_and_rate_zero_is_unlimited() -> None:
    clock = FakeClock()
    gate = GatewayLimiter(2.0, clock=clock)
    assert gate.try_acquire("a") and gate.try_acquire("b")
    assert not gate.try_acquire("a")
    gate.configure(0.0)
    assert all(gate.try_acquire("a") for _ in range(5))


def test_emulator_answers_429_to_a_request_closer_than_the_spacing(make_emulator: Any, wait_for: Any) -> None:
    """Back to back: 429, and no Retry-After (nginx sends none); the next one let through
    arrived (kernel receive time, the log's ``t``) at least 1/rate after the first."""
    emu: Emulator = make_emulator(requests_per_second=4.0, limiter="gateway")
    with httpx.Client(base_url=emu.base_url, headers={"X-API-KEY": "emu-key"}, timeout=10) as c:
        assert c.get(QUERY).status_code == 404
        early = c.get(QUERY)
        wait_for(lambda: c.get(QUERY).status_code == 404, 3, interval=0.02, what="a request let through")
    assert early.status_code == 429 and early.json()["status"] == 429 and "retry-after" not in early.headers
    log = emu.requests()
    let_through = [r["t"] for r in log if r["status"] == 404]
    assert len(let_through) == 2 and let_through[1] - let_through[0] >= 0.25
    refused = [r["t"] for r in log if r["status"] == 429]
    assert all(t - let_through[0] < 0.25 for t in refused)
    assert emu.stats()["rate_limited"] == len(refused) >= 1


def test_the_distance_counts_whichever_thread_asks_first() -> None:
    """Handler threads can ask out of arrival order: two arrivals too close are refused
    either way, and an old arrival never moves the window back."""
    gate = GatewayLimiter(2.0)
    assert gate.try_acquire("k", 100.0)
    assert not gate.try_acquire("k", 99.8)  # arrived earlier, asked later: still too close
    assert gate.try_acquire("k", 99.4)  # far enough from 100.0: let through...
    assert not gate.try_acquire("k", 100.3)  # ...but the window stays at 100.0
    assert gate.try_acquire("k", 100.5)


def test_real_clock_back_to_back_is_refused_spaced_is_not(make_emulator: Any, wait_for: Any) -> None:
    emu: Emulator = make_emulator(requests_per_second=10.0, limiter="gateway")
    with httpx.Client(base_url=emu.base_url, headers={"X-API-KEY": "emu-key"}, timeout=10) as c:
        assert c.get(QUERY).status_code == 404
        assert c.get(QUERY).status_code == 429
        wait_for(lambda: c.get(QUERY).status_code == 404, 2, interval=0.03, what="a request let through")
    assert emu.stats()["rate_limited"] >= 1


def test_cli_flag_and_live_switch(make_emulator: Any) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings = settings_from_args(parser.parse_args(["--limiter", "gateway", "--rps", "2"]))
    assert settings.limiter == "gateway" and settings.public_dict()["limiter"] == "gateway"
    assert isinstance(Emulator(settings).limiter, GatewayLimiter)
    emu: Emulator = make_emulator(requests_per_second=2.0)
    assert isinstance(emu.limiter, TokenBucketLimiter)
    emu.update(limiter="gateway")
    assert isinstance(emu.limiter, GatewayLimiter)

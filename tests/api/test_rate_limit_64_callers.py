"""One client, 64 concurrent callers, an emulator enforcing 2 req/s: no 429s, and the
rate the emulator sees is within 10 % of 2 req/s."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from ocr_watch.api import CreateOptions, PicWishClient
from ocr_watch.emulator import Emulator

RATE = 2.0
CALLERS = 64
REQUESTS = 24  # about 12 s at 2 req/s


@pytest.mark.slow
def test_rate_limit_64_callers(make_emulator: Callable[..., Emulator], emu_key: str, make_file: Any) -> None:
    """Half the callers upload, half poll; the shared bucket keeps them all at the key's rate."""
    emu = make_emulator(requests_per_second=RATE)  # the emulator's bucket holds max(1, rps)
    sources = [make_file() for _ in range(CALLERS // 2)]

    async def main() -> dict[str, Any]:
        async with PicWishClient(emu.base_url, emu_key, requests_per_second=RATE) as client:
            task_id = await client.create_task(sources[0], CreateOptions())
            answered = 0
            enough = asyncio.Event()

            async def caller(index: int) -> None:
                nonlocal answered
                while True:
                    if index % 2:
                        await client.get_task(task_id)
                    else:
                        await client.create_task(sources[index // 2], CreateOptions(), priority=1)
                    answered += 1
                    if answered >= REQUESTS - 1:
                        enough.set()

            callers = [asyncio.create_task(caller(i)) for i in range(CALLERS)]
            await enough.wait()
            for task in callers:
                task.cancel()
            await asyncio.gather(*callers, return_exceptions=True)
            return client.stats

    stats = asyncio.run(main())

    log = [r for r in emu.requests() if r["host"] == "api"]
    arrivals = sorted(r["t"] for r in log)
    span = arrivals[-1] - arrivals[0]
    achieved = len(arrivals) / span
    print(f"achieved {len(arrivals)} requests / {span:.3f} s = {achieved:.3f} req/s; "
          f"intervals {(len(arrivals) - 1) / span:.3f} req/s; 429s {emu.stats()['rate_limited']}")
    assert emu.stats()["rate_limited"] == 0 and stats["rate_limited"] == 0
    assert {r["method"] for r in log} == {"GET", "POST"}
    assert len(arrivals) >= REQUESTS
    assert abs(achieved - RATE) / RATE < 0.10, f"{len(arrivals)} requests in {span:.2f}s = {achieved:.3f}/s"
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) > 0.5 / RATE, f"two requests only {min(gaps):.3f}s apart"

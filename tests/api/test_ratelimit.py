"""TokenBucket on simulated time: spacing, priority order, cancellation, 429 back-off, the
send gate (headers never closer than 1/rate + margin) and a fresh bucket starting empty."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from ocr_watch.api import TokenBucket


class FakeTime:
    """A clock that only moves when the bucket sleeps, so timings are exact."""

    def __init__(self) -> None:
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(0)  # let woken waiters record the time before it moves on
        self.now += delay


def make_bucket(rate: float = 2.0, burst: float = 1.0, margin: float = 0.0,
                full: bool = True) -> tuple[TokenBucket, FakeTime]:
    """A bucket on simulated time at t=100; ``full``: created long enough before to have
    filled up (a new bucket starts empty)."""
    fake = FakeTime()
    if full:
        fake.now -= burst * (1 + margin) / rate
    bucket = TokenBucket(rate, burst, margin=margin, clock=fake.clock, sleep=fake.sleep)
    fake.now = 100.0
    return bucket, fake


async def grant_times(bucket: TokenBucket, fake: FakeTime, priorities: list[int]) -> list[tuple[int, float]]:
    order: list[tuple[int, float]] = []

    async def one(index: int, priority: int) -> None:
        await bucket.acquire(priority)
        order.append((index, round(fake.now - 100.0, 6)))

    await asyncio.gather(*(one(i, p) for i, p in enumerate(priorities)))
    return order


class TestTokenBucket:
    def test_grants_are_spaced_one_over_rate(self) -> None:
        """With burst 1, five callers get tokens exactly 0.5 s apart at 2 req/s."""
        bucket, fake = make_bucket()
        order = asyncio.run(grant_times(bucket, fake, [0] * 5))
        assert [t for _, t in order] == [0.0, 0.5, 1.0, 1.5, 2.0]
        assert bucket.stats["granted"] == 5

    def test_burst_allows_an_initial_run(self) -> None:
        """A burst of 3 hands out three tokens at once, then settles to the rate."""
        bucket, fake = make_bucket(rate=2.0, burst=3.0)
        order = asyncio.run(grant_times(bucket, fake, [0] * 5))
        assert [t for _, t in order] == [0.0, 0.0, 0.0, 0.5, 1.0]

    def test_priority_then_arrival_order(self) -> None:
        """Lower priority numbers go first; FIFO within a priority."""
        bucket, fake = make_bucket()
        order = asyncio.run(grant_times(bucket, fake, [5, 5, 0, 9, 0]))
        assert [i for i, _ in order] == [2, 4, 0, 1, 3]

    def test_cancelled_waiter_takes_no_token(self) -> None:
        """A caller cancelled while queued leaves its turn to the next one."""
        bucket, fake = make_bucket()

        async def main() -> list[float]:
            await bucket.acquire()
            doomed = asyncio.create_task(bucket.acquire())
            await asyncio.sleep(0)
            doomed.cancel()
            await asyncio.gather(doomed, return_exceptions=True)
            await bucket.acquire()
            return [fake.now - 100.0]

        assert asyncio.run(main()) == [0.5]
        assert bucket.stats["granted"] == 2

    def test_retry_after_holds_every_token(self) -> None:
        """After a 429 with Retry-After 3, nothing is granted for 3 s, and the rate is kept."""
        bucket, fake = make_bucket()

        async def main() -> list[float]:
            await bucket.acquire()
            bucket.penalize(3.0)
            times = []
            for _ in range(2):
                await bucket.acquire()
                times.append(round(fake.now - 100.0, 6))
            return times

        assert asyncio.run(main()) == [3.0, 3.5]
        assert bucket.effective_rate_per_s == 2.0
        assert bucket.stats["penalties"] == 1

    def test_no_retry_after_backs_off_exponentially_and_recovers(self) -> None:
        """Without Retry-After: waits 0.5, 1, 2 s, halves the rate, and creeps back on success."""
        bucket, fake = make_bucket()

        async def main() -> list[float]:
            await bucket.acquire()
            gaps = []
            for _ in range(3):
                before = fake.now
                bucket.penalize(None)
                await bucket.acquire()
                gaps.append(round(fake.now - before, 6))
            return gaps

        assert asyncio.run(main()) == [0.5, 1.0, 2.0]
        assert bucket.effective_rate_per_s == pytest.approx(0.25)
        for _ in range(100):
            bucket.note_success()
        assert bucket.effective_rate_per_s == 2.0

    def test_rate_floor(self) -> None:
        """Repeated 429s never slow the bucket below 1/16 of the configured rate."""
        bucket, _ = make_bucket()
        for _ in range(20):
            bucket.penalize(None)
        assert bucket.effective_rate_per_s == pytest.approx(2.0 / 16)

    def test_rejects_nonsense(self) -> None:
        """A zero rate, a burst under one token or a negative margin is a configuration mistake."""
        with pytest.raises(ValueError):
            TokenBucket(0)
        with pytest.raises(ValueError):
            TokenBucket(1, burst=0.5)
        with pytest.raises(ValueError):
            TokenBucket(1, margin=-0.01)


async def send_times(bucket: TokenBucket, fake: FakeTime, n: int) -> list[float]:
    """n callers each taking a token and then passing the gate, as the client does."""
    sent: list[float] = []

    async def one() -> None:
        await bucket.acquire()
        await bucket.before_send()
        sent.append(round(fake.now - 100.0, 6))

    await asyncio.gather(*(one() for _ in range(n)))
    return sent


class TestSpacingAndRestart:
    def test_margin_spaces_grants_and_sends(self) -> None:
        """With a 2 % margin at 2 req/s every grant and every send is 0.51 s from the last."""
        bucket, fake = make_bucket(margin=0.02)
        assert bucket.gap_s == pytest.approx(0.51)
        assert asyncio.run(send_times(bucket, fake, 4)) == [0.0, 0.51, 1.02, 1.53]
        assert bucket.effective_rate_per_s == pytest.approx(1 / 0.51)
        assert bucket.rate_per_s == 2.0

    def test_a_fresh_bucket_starts_empty(self) -> None:
        """Just created (a restart): the first token and the first send come one gap later."""
        bucket, fake = make_bucket(margin=0.02, full=False)
        assert asyncio.run(send_times(bucket, fake, 3)) == [0.51, 1.02, 1.53]

    def test_first_send_waits_a_gap_from_creation_whatever_the_grant(self) -> None:
        """Even a bucket with a burst to spend sends its first request a gap after creation."""
        bucket, fake = make_bucket(burst=3.0, full=False)
        bucket._tokens = 3.0  # as if it started full: the gate alone must hold the line

        async def main() -> list[float]:
            sent = []
            for _ in range(3):
                await bucket.acquire()
                await bucket.before_send()
                sent.append(round(fake.now - 100.0, 6))
            return sent

        assert asyncio.run(main()) == [0.5, 1.0, 1.5]
        assert bucket.stats["granted"] == 3

    def test_gate_holds_a_send_that_would_follow_a_late_one_too_closely(self) -> None:
        """Granted 0.5 s apart, but the first was sent 0.3 s late (it waited for a connection):
        the second is held until 0.5 s after the first's headers, not its grant."""
        bucket, fake = make_bucket()

        async def main() -> list[float]:
            await bucket.acquire()  # granted at 0
            fake.now += 0.3
            await bucket.before_send()  # sent at 0.3
            first = fake.now - 100.0
            await bucket.acquire()  # granted at 0.5
            await bucket.before_send()
            return [round(first, 6), round(fake.now - 100.0, 6)]

        assert asyncio.run(main()) == [0.3, 0.8]
        assert bucket.stats["sends_held"] == 1
        assert bucket.stats["sends_held_s"] == pytest.approx(0.3)

    def test_gate_keeps_concurrent_senders_apart(self) -> None:
        """Three requests reaching the gate at once (granted long ago) go out at least a gap
        apart (the fake clock moves on every sleep, so it may overshoot: the floor is exact)."""
        bucket, fake = make_bucket(margin=0.04)

        async def main() -> list[float]:
            fake.now += 5.0
            out: list[float] = []

            async def one() -> None:
                await bucket.before_send()
                out.append(round(fake.now - 105.0, 6))

            await asyncio.gather(one(), one(), one())
            return out

        sent = asyncio.run(main())
        assert sent[0] == 0.0 and len(sent) == 3
        assert all(b - a >= 0.52 - 1e-9 for a, b in itertools.pairwise(sent))

    def test_the_gap_counts_from_after_the_write(self) -> None:
        """Descheduled between the gate and the write (the write done 40 ms late): the next
        request waits a full gap from when the write was seen done, not from the gate."""
        bucket, fake = make_bucket()

        async def main() -> float:
            await bucket.acquire()
            await bucket.before_send()  # t = 0
            fake.now += 0.04
            bucket.sent()  # t = 0.04
            await bucket.acquire()
            await bucket.before_send()
            return round(fake.now - 100.0, 6)

        assert asyncio.run(main()) == 0.54

    def test_a_new_rate_moves_the_gate_too(self) -> None:
        """A reload's set_rate: grants and the gate's spacing both follow, margin kept."""
        bucket, fake = make_bucket(margin=0.02)
        bucket.set_rate(4.0)
        assert bucket.gap_s == pytest.approx(0.255)
        assert bucket.effective_rate_per_s == pytest.approx(4 / 1.02)
        fake.now += 1.0
        assert asyncio.run(send_times(bucket, fake, 3)) == [1.0, 1.255, 1.51]

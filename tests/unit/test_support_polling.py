"""The one poll-until helper of the tests (support.wait_until / wait_for)."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from support import CountProgress, wait_for, wait_for_count, wait_until, wait_until_count


def test_wait_for_returns_the_first_truthy_value() -> None:
    values = iter([0, None, "", "ready"])
    assert wait_for(lambda: next(values), 60, "the third try", interval=0) == "ready"


def test_wait_for_fails_with_what_it_waited_for_and_the_detail() -> None:
    with pytest.raises(AssertionError) as failure:
        wait_for(lambda: False, 0, "nothing", detail=lambda: "\nlog tail")
    assert str(failure.value) == "timed out after 0s waiting for nothing\nlog tail"


def test_wait_until_awaits_an_async_condition() -> None:
    tries = itertools.count(1)

    async def third_try() -> int | None:
        n = next(tries)
        return n if n == 3 else None

    assert asyncio.run(wait_until(third_try, 60, "the third try", interval=0)) == 3


def test_wait_until_fails_after_its_timeout() -> None:
    with pytest.raises(AssertionError, match="timed out after 0s waiting for never"):
        asyncio.run(wait_until(lambda: False, 0, "never"))


class SteppedClock:
    """A clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_a_count_that_keeps_growing_is_waited_for_past_its_stall_time() -> None:
    progress = CountProgress(10, stall_s=15, what="ten", clock=SteppedClock(10))
    # ten reads, 100 s on the clock, longer than stall_s; the count grows at each
    assert [progress.done(n) for n in range(1, 11)] == [False] * 9 + [True]


def test_a_count_that_stays_put_fails_after_its_stall_time_with_where_it_stuck() -> None:
    progress = CountProgress(10, stall_s=15, what="the count", clock=SteppedClock(10))
    assert progress.done(4) is False  # t=10, the first value
    assert progress.done(4) is False  # t=20, put for 10 s
    with pytest.raises(AssertionError) as stuck:
        progress.done(3)  # t=30, put (lower) for 20 s
    assert str(stuck.value) == "the count: stuck at 4 of 10 for 15s"


def test_wait_for_count_returns_the_count_that_reached_the_target() -> None:
    counts = iter([1, 5, 12])
    assert wait_for_count(lambda: next(counts), 10, 60, "ten", interval=0) == 12


def test_wait_until_count_awaits_an_async_read_and_fails_where_it_stuck() -> None:
    async def read() -> int:
        return 2

    with pytest.raises(AssertionError, match="two: stuck at 2 of 3 for 0s"):
        asyncio.run(wait_until_count(read, 3, 0, "two", interval=0))


def test_wait_until_count_appends_the_detail_where_it_stuck() -> None:
    with pytest.raises(AssertionError) as stuck:
        asyncio.run(wait_until_count(lambda: 1, 3, 0, "three", interval=0, detail=lambda: "; x"))
    assert str(stuck.value) == "three: stuck at 1 of 3 for 0s; x"

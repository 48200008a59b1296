"""The one poll-until helper of the tests (support.wait_until / wait_for)."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from support import wait_for, wait_until


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

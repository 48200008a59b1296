"""finops.common.waiting: the examples run; a look that raises something else is not waited on."""

from __future__ import annotations

import asyncio

import pytest

from finops.common import waiting


def test_an_error_that_is_not_unreachable_ends_the_wait_at_once():
    calls = []

    async def broken() -> list[str]:
        calls.append(1)
        raise ValueError("a bug, not a server that is away")

    with pytest.raises(ValueError, match="a bug"):
        asyncio.run(
            waiting.wait_until_none_left(
                broken, unanswered=["a"], unreachable=(OSError,), timeout_s=5, poll_s=0
            )
        )
    assert calls == [1]


def test_a_server_not_answering_yet_is_logged_by_its_message(caplog):
    async def down() -> list[str]:
        raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)")

    with caplog.at_level("WARNING", logger="finops.common.waiting"):
        left = asyncio.run(
            waiting.wait_until_none_left(
                down, unanswered=["a"], unreachable=(OSError,), timeout_s=0, poll_s=0
            )
        )
    assert left == ["a"]
    # the message an operator reads, not the exception's repr
    assert [r.getMessage() for r in caplog.records] == [
        "not answering yet: [Errno 111] Connect call failed ('127.0.0.1', 1)"
    ]

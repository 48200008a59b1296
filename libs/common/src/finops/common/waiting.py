"""Waiting for something another party does (a topic created, a schema migrated)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Outstanding(Exception, Generic[T]):
    def __init__(self, left: list[T]) -> None:
        super().__init__(f"{len(left)} outstanding")
        self.left = left


async def wait_until_none_left(
    look: Callable[[], Awaitable[list[T]]],
    *,
    unanswered: list[T],
    unreachable: tuple[type[BaseException], ...],
    timeout_s: float,
    poll_s: float,
) -> list[T]:
    """Call ``look`` every ``poll_s`` seconds until it returns nothing left to wait for or
    ``timeout_s`` has passed; return what it returned last (empty: done). A call that raises
    one of ``unreachable`` (the server does not answer yet) leaves the last answer standing,
    ``unanswered`` before any.

    Examples
    --------
    >>> import asyncio
    >>> answers = iter([["a", "b"], ["b"], []])
    >>> async def look():
    ...     return next(answers)
    >>> asyncio.run(wait_until_none_left(
    ...     look, unanswered=["a", "b"], unreachable=(), timeout_s=5, poll_s=0))
    []
    >>> async def down():
    ...     raise ConnectionRefusedError
    >>> asyncio.run(wait_until_none_left(
    ...     down, unanswered=["a"], unreachable=(OSError,), timeout_s=0.05, poll_s=0.01))
    ['a']
    """
    left = unanswered

    async def ask() -> None:
        nonlocal left
        try:
            left = await look()
        except unreachable as exc:
            log.warning("not answering yet: %r", exc, extra={"error": repr(exc)})
            raise _Outstanding(left) from exc
        if left:
            log.info("waiting", extra={"left": [str(item) for item in left]})
            raise _Outstanding(left)

    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(_Outstanding),
            stop=stop_after_delay(timeout_s),
            wait=wait_fixed(poll_s),
            reraise=True,
        ):
            with attempt:
                await ask()
    except _Outstanding as exc:
        return list(exc.left)
    return []

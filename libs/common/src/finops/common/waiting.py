"""Waiting for something another party does (a topic created, a schema migrated)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay

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
            log.warning(
                "not answering yet: %s", str(exc) or type(exc).__name__, extra={"error": repr(exc)}
            )
            raise _Outstanding(left) from exc
        if left:
            log.info("waiting", extra={"left": [str(item) for item in left]})
            raise _Outstanding(left)

    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(_Outstanding),
            stop=stop_after_delay(timeout_s),
            wait=until_the_end(poll_s, timeout_s),
            reraise=True,
        ):
            with attempt:
                await ask()
    except _Outstanding as exc:
        return list(exc.left)
    return []


def until_the_end(poll_s: float, timeout_s: float) -> Callable[[RetryCallState], float]:
    """A tenacity wait of ``poll_s``, cut short so the last attempt comes at ``timeout_s``
    (a whole ``poll_s`` after it, `finops db wait --timeout 3` gave up after 4 s).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> wait = until_the_end(1.0, 3.0)
    >>> [wait(SimpleNamespace(seconds_since_start=t)) for t in (0.5, 2.5, 3.2)]
    [1.0, 0.5, 0.0]
    """

    def wait(state: RetryCallState) -> float:
        left = timeout_s - (state.seconds_since_start or 0.0)
        return max(0.0, min(poll_s, left))

    return wait

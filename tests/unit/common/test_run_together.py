"""run_together(): a stage's loops run side by side; one that fails takes the others down with
it and its own error is raised (asyncio.gather would leave them running unowned)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from finops.common.datastores import is_dependency_failure
from finops.common.lifespan import run_together


async def test_a_failing_loop_cancels_the_others_and_its_error_is_raised() -> None:
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def broken() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("broker gone")

    with pytest.raises(RuntimeError, match="broker gone"):
        await run_together(forever(), broken())
    assert cancelled.is_set()


async def test_it_returns_once_every_loop_has_returned() -> None:
    stop = asyncio.Event()
    finished: list[str] = []

    async def loop(name: str) -> None:
        await stop.wait()
        finished.append(name)

    async def stopper() -> None:
        stop.set()
        finished.append("stopper")

    await run_together(loop("a"), loop("b"), stopper())
    assert sorted(finished) == ["a", "b", "stopper"]


async def test_the_raised_error_keeps_its_own_context() -> None:
    # asyncpg's "connection is closed" at a transaction's end is told an outage by its context
    # (the reset that closed it); the group of failed loops must not take that place
    async def broken() -> None:
        try:
            raise ConnectionResetError("reset by peer")
        except ConnectionResetError:
            # chained implicitly, as asyncpg's Transaction.__aexit__ raises it
            raise asyncpg.InterfaceError(  # noqa: B904
                "cannot call Transaction.__aexit__(): the underlying connection is closed"
            )

    with pytest.raises(asyncpg.InterfaceError) as raised:
        await run_together(broken())
    assert isinstance(raised.value.__context__, ConnectionResetError)
    assert is_dependency_failure(raised.value)

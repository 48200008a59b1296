"""A Faust app run inside a service's lifespan is stopped however its start ends."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from finops.common.stream_service import faust_running


class FakeFaustApp:
    """What ``faust_app_running`` touches of a Faust app: a start that waits until told."""

    def __init__(self) -> None:
        self.conf = SimpleNamespace(id="fake", autodiscover=False)
        self.starting = asyncio.Event()
        self.may_finish_start = asyncio.Event()
        self.stops = 0

    def finalize(self) -> None:
        pass

    async def maybe_start(self) -> bool:
        self.starting.set()
        await self.may_finish_start.wait()
        return True

    async def stop(self) -> None:
        self.stops += 1


async def _run(app: FakeFaustApp, body: asyncio.Event) -> None:
    async with faust_running(app):  # type: ignore[arg-type]
        await body.wait()


async def test_an_app_whose_start_is_cancelled_midway_is_stopped() -> None:
    app = FakeFaustApp()
    task = asyncio.create_task(_run(app, asyncio.Event()))
    await app.starting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert app.stops == 1


async def test_an_app_that_started_is_stopped_once_when_the_lifespan_ends() -> None:
    app, body = FakeFaustApp(), asyncio.Event()
    app.may_finish_start.set()
    task = asyncio.create_task(_run(app, body))
    await app.starting.wait()
    assert app.stops == 0
    body.set()
    await task
    assert app.stops == 1

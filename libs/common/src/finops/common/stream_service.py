"""One process, two faces: a stream processor and its FastAPI HTTP API.

The processor is a Faust app, or none where every consumer of the service is an
:class:`~finops.common.consumer.AtLeastOnceConsumer` its ``resources`` start.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path

import faust
from fastapi import FastAPI
from faust.contrib.asgi import faust_app_running

from finops.common.health import BrokerProbe
from finops.common.http import ReadinessCheck, create_service_app
from finops.common.lifespan import end_process_if_failed
from finops.common.settings import CommonSettings
from finops.common.streams import faust_check


def create_stream_service_app(
    settings: CommonSettings,
    faust_app: faust.App | None,
    *,
    title: str,
    description: str,
    resources: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    readiness: Callable[[FastAPI], Mapping[str, ReadinessCheck]] | None = None,
) -> FastAPI:
    """Run ``faust_app`` (if any) inside the HTTP app's lifespan, after ``resources`` are open."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if faust_app is not None:
            Path(faust_app.conf.datadir).mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
        async with (
            resources(app) if resources else nullcontext(),
            faust_running(faust_app) if faust_app is not None else nullcontext(),
        ):
            stopping = asyncio.Event()
            watch = None
            if faust_app is not None:
                watch = asyncio.create_task(_until_crashed(faust_app), name="faust-watch")
                end_process_if_failed(
                    watch, "the stream processor", stopping, enabled=settings.exit_on_loop_failure
                )
            try:
                yield
            finally:
                stopping.set()
                if watch is not None:  # it waits for the app's stop, which comes after this
                    watch.cancel()
                    await asyncio.wait({watch})
                await broker.close()

    broker = BrokerProbe(settings)

    def checks() -> dict[str, ReadinessCheck]:
        named: dict[str, ReadinessCheck] = {"kafka": broker.check}
        if faust_app is not None:
            named["streams"] = lambda: faust_check(faust_app)
        if readiness:
            named.update(readiness(app))
        return named

    app = create_service_app(
        settings, title=title, description=description, lifespan=lifespan, readiness=checks
    )
    app.state.settings = settings
    app.state.faust = faust_app
    return app


async def _until_crashed(app: faust.App) -> None:
    """Return when ``app`` stops; raise why when it crashes instead (a Faust agent whose
    dead letter the broker refused for good, :func:`finops.common.dead_letters.faust_handle`;
    a commit Faust could not make): Faust does not start a crashed app again, so the service
    ends its process to be started again (``FINOPS_EXIT_ON_LOOP_FAILURE``), as when an
    :class:`~finops.common.consumer.AtLeastOnceConsumer`'s loop fails."""
    await app.wait_until_stopped()
    if app.crashed:
        raise app.crash_reason or RuntimeError("the stream processor crashed")


@asynccontextmanager
async def faust_running(app: faust.App) -> AsyncIterator[None]:
    """Faust's ``faust_app_running``, which also stops an app whose start was cut short.

    ``faust_app_running`` stops only an app that finished starting. One cancelled midway (a
    startup timeout) would keep its consumer thread running, a member of its group, in a
    process that goes on (an embedding server, a test session), and every later member of
    that group would wait out a rebalance for it.
    """
    entered = False
    try:
        async with faust_app_running(app):
            entered = True
            yield
    finally:
        if not entered:
            # shielded: a cancelled start is the case this is for
            await asyncio.shield(app.stop())

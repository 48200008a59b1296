"""A stream service's background loop that dies ends its process (``end_process_if_failed``);
one stopped on purpose, cancelled, or dying while the service stops does not."""

from __future__ import annotations

import asyncio
import logging

import pytest

from finops.common.lifespan import end_process_if_failed, finish


async def _fails() -> None:
    raise RuntimeError("column a.announced_at\n does not exist")


async def _returns() -> None:
    return None


async def _run(loop, *, stopping: bool = False, enabled: bool = True, cancel: bool = False):
    ended: list[str] = []
    stop = asyncio.Event()
    if stopping:
        stop.set()
    task = asyncio.create_task(loop())
    end_process_if_failed(
        task, "the event intake", stop, enabled=enabled, terminate=lambda: ended.append("x")
    )
    if cancel:
        task.cancel()
    await asyncio.wait({task})
    await finish(task, timeout=1)  # done-callbacks have run once finish returns
    return ended


async def test_a_loop_that_fails_ends_the_process_once_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="finops.common.lifespan")
    assert await _run(_fails) == ["x"]
    assert [r.getMessage() for r in caplog.records] == [
        "the event intake failed (RuntimeError: column a.announced_at does not exist); "
        "ending the process so that it is started again"
    ]


@pytest.mark.parametrize(
    ("loop", "options"),
    [
        (_fails, {"stopping": True}),  # dying while the service stops
        (_fails, {"cancel": True}),
        (_returns, {}),
        (_fails, {"enabled": False}),  # FINOPS_EXIT_ON_LOOP_FAILURE=false
    ],
    ids=["stopping", "cancelled", "returned", "disabled"],
)
async def test_a_loop_that_is_stopped_cancelled_returns_or_is_told_not_to_leaves_it_up(
    loop, options
) -> None:
    assert await _run(loop, **options) == []

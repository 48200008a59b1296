"""Keeps the experiments' event intake running through PostgreSQL and broker outages.

A dependency failure under the intake stops it, and a new one is opened from the
checkpoints, as a restarted service would start (nothing lost, nothing counted twice), after a
pause that doubles while the dependency still fails. Any other failure ends the intake.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from aiokafka.errors import KafkaError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

from finops.common.datastores import is_dependency_failure
from finops.experiments.adapters.stream import AnalysisIntake

log = logging.getLogger(__name__)

#: the pause before a new intake after a dependency failure; it doubles up to the max
FIRST_PAUSE_S = 1.0
MAX_PAUSE_S = 10.0


class _Stopped(Exception):
    """The service is stopping: no new intake."""


def dependency_failed(exc: BaseException | None) -> bool:
    """Whether PostgreSQL or the broker failed under ``exc``, or under what caused it (a
    partition that could not be adopted)."""
    while exc is not None:
        if is_dependency_failure(exc) or isinstance(exc, KafkaError):
            return True
        exc = exc.__cause__
    return False


async def stop_intake(intake: AnalysisIntake) -> None:
    """Stop both stages' consumers (again is harmless)."""
    await intake.consumer.stop()
    if intake.forwarder is not None:
        await intake.forwarder.consumer.stop()


async def keep_intake_running(
    state: Any, reopen: Callable[[], Awaitable[AnalysisIntake]], stop: asyncio.Event
) -> None:
    """Run ``state.intake`` (the app's state: the routes use it) until ``stop``, opening a
    new one with ``reopen`` whenever PostgreSQL or the broker fails under it; meanwhile
    ``state.intake_failure`` says why the intake is not ready."""
    while True:
        intake = state.intake
        try:
            await intake.run(stop)
            return
        except Exception as exc:
            if not dependency_failed(exc):
                log.exception("the event intake failed")
                raise
            state.intake_failure = exc
            log.warning(
                "a dependency failed under the event intake; restarting it from its checkpoints",
                extra={"error": repr(exc)},
            )
        finally:
            await stop_intake(intake)
        try:
            state.intake = await _reopen_once_answered(state, reopen, stop)
        except _Stopped:
            return
        state.intake_failure = None


async def _reopen_once_answered(
    state: Any, reopen: Callable[[], Awaitable[AnalysisIntake]], stop: asyncio.Event
) -> AnalysisIntake:
    """A new intake, opened after a pause and again, with longer pauses, while a dependency
    still fails; raises :class:`_Stopped` once ``stop`` is set."""

    async def pause(seconds: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
        if stop.is_set():
            raise _Stopped

    def note_failure(retry_state: RetryCallState) -> None:
        if retry_state.outcome is not None:
            state.intake_failure = retry_state.outcome.exception()

    await pause(FIRST_PAUSE_S)
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(dependency_failed),
        wait=wait_exponential(multiplier=FIRST_PAUSE_S, max=MAX_PAUSE_S),
        sleep=pause,
        before_sleep=note_failure,
        reraise=True,
    ):
        with attempt:
            return await reopen()
    raise AssertionError("unreachable: AsyncRetrying returns or raises")

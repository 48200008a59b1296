"""Keeps the experiments' event intake running through PostgreSQL and broker outages.

A dependency failure under the intake stops it, and a new one is opened from the
checkpoints, as a restarted service would start (nothing lost, nothing counted twice). The
pause before each new intake doubles, up to :data:`MAX_PAUSE_S`, while intakes keep failing:
during a PostgreSQL outage a new intake opens at once (it needs only the broker) and fails a
moment later, when it loads its partitions' checkpoints; an intake that ran ``healthy_s``
(``FINOPS_INTAKE_HEALTHY_AFTER_S``) before failing starts the pauses over. Any other failure
ends the intake.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from aiokafka.errors import KafkaError

from finops.common.datastores import is_dependency_failure
from finops.experiments.adapters.analysis_intake import AnalysisIntake

log = logging.getLogger(__name__)

#: the pause before a new intake after one failure; it doubles with each failure in a row
FIRST_PAUSE_S = 1.0
MAX_PAUSE_S = 10.0


def dependency_failed(exc: BaseException | None) -> bool:
    """Whether PostgreSQL or the broker failed under ``exc``, or under what caused it (a
    partition that could not be adopted)."""
    while exc is not None:
        if is_dependency_failure(exc) or isinstance(exc, KafkaError):
            return True
        exc = exc.__cause__
    return False


def pause_after(failures: int) -> float:
    """The pause before the next intake after ``failures`` failures in a row.

    >>> [pause_after(n) for n in range(1, 7)]
    [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    """
    return min(FIRST_PAUSE_S * 2 ** (failures - 1), MAX_PAUSE_S)


async def stop_intake(intake: AnalysisIntake) -> None:
    """Stop both stages' consumers (again is harmless)."""
    await intake.consumer.stop()
    if intake.forwarder is not None:
        await intake.forwarder.consumer.stop()


def restarting_reason(state: Any, healthy_s: float) -> str | None:
    """Why the intake is not ready while it restarts (None: it is): the failure, until a new
    intake has run ``healthy_s``."""
    failure = getattr(state, "intake_failure", None)
    since = getattr(state, "intake_since", None)
    if failure is None or (since is not None and time.monotonic() - since >= healthy_s):
        return None
    return f"the event intake is restarting after {failure!r}"


async def keep_intake_running(
    state: Any,
    reopen: Callable[[], Awaitable[AnalysisIntake]],
    stop: asyncio.Event,
    *,
    healthy_s: float,
) -> None:
    """Run ``state.intake`` (the app's state: the routes use it) until ``stop``, opening a
    new one with ``reopen`` whenever PostgreSQL or the broker fails under it; meanwhile
    ``state.intake_failure`` and ``state.intake_since`` tell :func:`restarting_reason`."""
    failures = 0
    while True:
        intake = state.intake
        state.intake_since = since = time.monotonic()
        try:
            await intake.run(stop)
            return
        except Exception as exc:
            if not dependency_failed(exc):
                log.exception("the event intake failed")
                raise
            failures = 1 if time.monotonic() - since >= healthy_s else failures + 1
            state.intake_failure, state.intake_since = exc, None
            log.warning(
                "a dependency failed under the event intake; restarting it from its checkpoints",
                extra={"error": repr(exc), "failures_in_a_row": failures},
            )
        finally:
            await stop_intake(intake)
        while True:
            if not await _pause(stop, pause_after(failures)):
                return
            try:
                state.intake = _carry_over(intake, await reopen())
                break
            except Exception as exc:
                if not dependency_failed(exc):
                    raise
                failures += 1
                state.intake_failure = exc


def _carry_over(old: AnalysisIntake, new: AnalysisIntake) -> AnalysisIntake:
    """The new intake knows the definitions the old one did until its own refresh reads them
    (the assignment route answers from them while PostgreSQL is away)."""
    for experiment_id, experiment in old.known.items():
        new.known.setdefault(experiment_id, experiment)
    return new


async def _pause(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds``; False if ``stop`` was set meanwhile."""
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return not stop.is_set()

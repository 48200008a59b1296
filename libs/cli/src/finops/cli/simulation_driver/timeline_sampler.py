"""Polls the platform while a simulation runs: breaker states and experiment progress.

The samples go into the run's :class:`~finops.cli.simulation.timeline.Timeline`, each placed
at the share of the fleet's tasks done when it was taken.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from finops.cli.simulation.timeline import (
    BreakerSample,
    BreakerState,
    ExperimentSample,
    Timeline,
    VariantProgress,
)


def breaker_states(body: dict[str, Any]) -> tuple[BreakerState, ...]:
    """The breakers of a ``GET /api/healing/circuits`` answer."""
    return tuple(
        BreakerState(c["provider"], c["model"], c["state"], c.get("failure_rate"))
        for c in body.get("circuits", [])
    )


def experiment_sample(progress: float, name: str, body: dict[str, Any]) -> ExperimentSample:
    """An experiment's ``GET /api/experiments/{id}/results`` answer as a sample."""
    decision = body.get("decision") or {}
    return ExperimentSample(
        progress=progress,
        experiment=name,
        status=str(body["status"]),
        variants=tuple(
            VariantProgress(v["name"], int(v["n"]), v.get("probability_best"))
            for v in body.get("variants", [])
        ),
        winner=decision.get("winner"),
    )


class PlatformSampler:
    """Samples the healer's circuits and each running experiment's results every
    ``interval_s`` seconds, with the operator's ``http`` client."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        urls: dict[str, str],
        timeline: Timeline,
        progress: Callable[[], float],
        experiments: Callable[[], Iterable[tuple[str, str]]],
        interval_s: float = 1.0,
    ) -> None:
        self.http = http
        self.healer_url = urls["healer"].rstrip("/")
        self.experiments_url = urls["experiments"].rstrip("/")
        self.timeline = timeline
        self.progress = progress
        #: (name, id) of every experiment started so far
        self.experiments = experiments
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        #: samples the platform refused or could not answer (the run warns of them)
        self.missed = 0

    async def sample(self, progress: float | None = None) -> None:
        """Take one sample of every breaker and every experiment."""
        at = self.progress() if progress is None else progress
        try:
            resp = await self.http.get(f"{self.healer_url}/api/healing/circuits")
            if resp.status_code == 200:
                self.timeline.breakers.append(BreakerSample(at, breaker_states(resp.json())))
            else:
                self.missed += 1
            for name, experiment_id in list(self.experiments()):
                url = f"{self.experiments_url}/api/experiments/{experiment_id}/results"
                resp = await self.http.get(url)
                if resp.status_code == 200:
                    self.timeline.experiments.append(experiment_sample(at, name, resp.json()))
                else:
                    self.missed += 1
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            # a service restarting, or an answer of another shape: the next sample will tell
            self.missed += 1

    async def _loop(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self.interval_s)  # a polling period, not a synchronisation

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

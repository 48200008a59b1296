"""``finops simulate``'s run: a fleet of agents works through the seeded tasks with the SDK.

Each agent (an SDK client with an API key of its own) asks the optimizer for a model for each
task, or takes an experiment's assignment when one runs for the task type, makes the call
against the simulated providers through the healing strategy, and reports every failed attempt
(``record_error``) and every answer (``record_call``):
:mod:`finops.cli.simulation_driver.fleet_run`. This module runs the rounds, paced to what
the services have read. The baseline (the strongest model, naive retries) runs offline over
the same tasks, draws and faults: see :mod:`finops.cli.simulation`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from finops.cli.simulation.catalog import STRONGEST
from finops.cli.simulation.drift_findings import DriftFindings
from finops.cli.simulation.faults import FaultSchedule
from finops.cli.simulation.fleet import Task, make_tasks
from finops.cli.simulation.providers import SimulatedProviders
from finops.cli.simulation.strategies import NaiveRetries
from finops.cli.simulation.tally import Comparison, run_fixed_policy
from finops.cli.simulation.timeline import Timeline
from finops.cli.simulation_driver.drift_watch import DriftWatch
from finops.cli.simulation_driver.experiments import (
    PLANS,
    ExperimentNotStarted,
    ExperimentOutcome,
    stopped_at_the_end,
    with_lifted_pin,
)
from finops.cli.simulation_driver.fleet_run import FleetRun
from finops.cli.simulation_driver.platform import (
    Endpoints,
    OperatorApi,
    check_reachable,
    lost_events,
)
from finops.cli.simulation_driver.timeline_sampler import PlatformSampler
from finops.client import AsyncFinOpsClient


@dataclass
class SimulationReport:
    """Everything ``finops simulate --json`` prints."""

    agents: int
    calls: int
    seed: int
    events_sent: int
    lost_events: int
    comparison: Comparison
    experiments: list[ExperimentOutcome]
    models_used: dict[str, int]
    unknown_recommendations: int
    recommendations_unavailable: int
    elapsed_s: float
    #: the run bucket by bucket, with the platform's breaker and experiment samples
    timeline: Timeline = field(default_factory=Timeline.empty)
    #: whether the optimizer's drift alerts noticed the injected drifts, and its other ones
    drift: DriftFindings = field(default_factory=DriftFindings)

    def as_json(self) -> dict[str, Any]:
        base, opt = self.comparison.baseline, self.comparison.optimized
        return {
            "agents": self.agents,
            "calls": self.calls,
            "seed": self.seed,
            "events_sent": self.events_sent,
            "lost_events": self.lost_events,
            "baseline_cost_usd": round(base.cost_usd, 6),
            "optimized_cost_usd": round(opt.cost_usd, 6),
            "saving": round(self.comparison.saving, 4),
            "baseline_quality": round(base.mean_quality, 4),
            "optimized_quality": round(opt.mean_quality, 4),
            "quality_ratio": round(self.comparison.quality_ratio, 4),
            "errors": opt.errors,
            "recoverable_errors": opt.recoverable_errors,
            "healed": opt.healed,
            "healed_ratio": round(opt.healed_ratio, 4),
            "unrecoverable_retried": opt.unrecoverable_retried,
            "baseline_errors": base.errors,
            "baseline_recoverable_errors": base.recoverable_errors,
            "baseline_healed": base.healed,
            "baseline_healed_ratio": round(base.healed_ratio, 4),
            "baseline_unrecoverable_retried": base.unrecoverable_retried,
            "answered": opt.answered,
            "baseline_answered": base.answered,
            "models_used": self.models_used,
            "unknown_recommendations": self.unknown_recommendations,
            "recommendations_unavailable": self.recommendations_unavailable,
            "experiments": [e.as_json() for e in self.experiments],
            **self.drift.as_json(),
            "elapsed_s": round(self.elapsed_s, 1),
        }


async def _clients(
    endpoints: Endpoints, operator: str, agents: int, warn: Callable[[str], None]
) -> list[AsyncFinOpsClient]:
    from finops.cli.accounts import agent_api_key

    suffix = uuid.uuid4().hex[:4]
    clients = []
    for n in range(agents):
        name = f"sim-agent-{n}-{suffix}"
        clients.append(
            AsyncFinOpsClient(
                agent_id=name,
                api_key=await agent_api_key(endpoints, operator, name, warn=warn),
                ingest_url=endpoints.service_url("ingest"),
                auth_url=endpoints.service_url("auth"),
                optimizer_url=endpoints.service_url("optimizer"),
                experiments_url=endpoints.service_url("experiments"),
                healer_url=endpoints.service_url("healer"),
                batch_size=200,
                linger_s=0.05,
            )
        )
    return clients


#: The fleet's tasks between two looks at what the optimizer has read (at least).
ROUND_TASKS = 20


@dataclass
class Pacing:
    """Keeps the optimizer's and the experiments' view as of the simulated clock.

    The run compresses two hours into seconds; in a real fleet the optimizer reads a call's
    event long before the next tasks come, and an experiment's analysis looks at it as soon.
    So after the warm-up and after every round of tasks the agents send what they hold and the
    run waits until the optimizer has read every answered call (``GET /api/stats/summary``)
    and every running experiment's analysis has counted every tagged answer (its results);
    an experiment the analysis has decided takes no more assignments, and the run waits until
    the optimizer recommends its winner. Without it the choices, and the saving, would depend
    on how far a loaded machine let the services fall behind: a 600-task run saved 19 % or
    35 %, and the summarize experiment kept sending half its tasks to gpt-4o for as long as
    its analysis lagged. A wait that times out (a service down for good) is said once, and
    the run goes on without waiting again.
    """

    api: OperatorApi
    clients: list[AsyncFinOpsClient]
    #: call events the optimizer had read before the run
    read_before: int
    warn: Callable[[str], None]
    given_up: bool = False

    async def sync(self, fleet: FleetRun, timeout_s: float) -> None:
        if self.given_up:
            return
        # all agents at once: one after the other, each flush waited for its own produce round
        # trip to the broker (on the local disk storage, 1.6 s of a 2,000-task run's round)
        await asyncio.gather(*(client.flush(timeout=120) for client in self.clients))
        answered = sum(fleet.models_used.values())
        if not await self.api.optimizer_caught_up(self.read_before + answered, timeout_s):
            self._give_up(f"the optimizer had not read the fleet's calls after {timeout_s:.0f} s")
            return
        for experiment in fleet.experiments.values():
            if experiment.running and not await self.api.experiment_caught_up(
                experiment, timeout_s
            ):
                self._give_up(
                    f"experiment {experiment.name} was not analysed up to the fleet's calls, "
                    f"or its winner not adopted, after {timeout_s:.0f} s"
                )
                return

    def _give_up(self, why: str) -> None:
        self.given_up = True
        self.warn(f"{why}; the run goes on without waiting for it")


async def _start_experiments(
    api: OperatorApi, fleet: FleetRun, calls: int, warn: Callable[[str], None]
) -> list[ExperimentOutcome]:
    """Start every planned experiment (the fleet takes their assignments from now on); the
    outcomes of those that could not start, with a warning each."""
    run_id = uuid.uuid4().hex[:6]
    outcomes = []
    started = await asyncio.gather(
        *(api.start_experiment(plan, run_id, max(10, calls // 40), fleet.seed) for plan in PLANS),
        return_exceptions=True,
    )
    for experiment in started:
        if isinstance(experiment, ExperimentNotStarted):
            warn(f"experiment {experiment.outcome.name} not started: {experiment}")
            outcomes.append(experiment.outcome)
        elif isinstance(experiment, BaseException):
            raise experiment
        else:
            fleet.experiments[experiment.plan.task_type] = experiment
    return outcomes


async def _final_outcomes(
    api: OperatorApi, fleet: FleetRun, warn: Callable[[str], None]
) -> list[ExperimentOutcome]:
    """The started experiments' outcomes once their analysis has counted the run's events;
    those it has not decided are then stopped (an A/A test never decides) and said so."""
    outcomes = [await api.outcome(e) for e in fleet.experiments.values()]
    await _stop_experiments(api, warn)
    stopped = {e.id for e in fleet.experiments.values() if e.stopped}
    return [stopped_at_the_end(o) if o.id in stopped else o for o in outcomes]


async def _stop_experiments(api: OperatorApi, warn: Callable[[str], None]) -> None:
    failed = await api.stop_unfinished()
    if failed:
        warn(
            f"could not stop experiment(s) {', '.join(failed)}: stop them with "
            "POST /api/experiments/{id}/stop (docs/experiments.md)"
        )


def _sampler(
    api: OperatorApi, endpoints: Endpoints, fleet: FleetRun, task_count: int
) -> PlatformSampler:
    """The sampler of the platform's state for the run's timeline; it reads the fleet's
    progress and experiments as they are when it samples, not as they were when made."""
    return PlatformSampler(
        api.http,
        endpoints.urls,
        fleet.timeline,
        progress=lambda: fleet.done / task_count,
        experiments=lambda: [(e.name, e.id) for e in fleet.experiments.values()],
    )


async def _work_in_rounds(
    api: OperatorApi,
    fleet: FleetRun,
    tasks: list[Task],
    calls: int,
    progress: Callable[[], None],
    warn: Callable[[str], None],
    watch: DriftWatch,
) -> list[ExperimentOutcome]:
    """The fleet's tasks, round after round, each round's calls read by the optimizer (and
    the experiments) before the next; the outcomes of the experiments that did not start.

    The experiments start after the warm-up (the first 5 % of tasks, at least 50), in which
    the optimizer comes to know every arm (docs/simulator.md, "The run").
    """
    warm_up = min(len(tasks), max(50, calls // 20))
    rounds = max(ROUND_TASKS, calls // 100)
    pacing = Pacing(api, fleet.clients, await api.optimizer_events() or 0, warn)
    for start in range(0, warm_up, rounds):
        watch.round_starts(fleet.done / len(tasks))
        await fleet.work(tasks[start : min(start + rounds, warm_up)], progress)
        await pacing.sync(fleet, timeout_s=120)  # services may still be joining groups
    outcomes = await _start_experiments(api, fleet, calls, warn)
    for start in range(warm_up, len(tasks), rounds):
        watch.round_starts(fleet.done / len(tasks))
        await fleet.work(tasks[start : start + rounds], progress)
        await pacing.sync(fleet, timeout_s=60)
    return outcomes


async def run_simulation(
    endpoints: Endpoints,
    *,
    agents: int,
    calls: int,
    seed: int,
    schedule: FaultSchedule,
    progress: Callable[[], None],
    warn: Callable[[str], None],
) -> SimulationReport:
    """Run the fleet against the stack, then the baseline offline; compare them."""
    from finops.cli.accounts import operator_token

    began = time.monotonic()
    await check_reachable(endpoints)
    tasks = make_tasks(seed, calls, agents)
    providers = SimulatedProviders(schedule)
    operator = await operator_token(endpoints)
    api = OperatorApi(endpoints, operator)
    clients = await _clients(endpoints, operator, agents, warn)
    fleet = FleetRun(clients, providers, seed)
    sampler = _sampler(api, endpoints, fleet, len(tasks))
    watch = DriftWatch(schedule.drifts, warn)
    sampler.start()
    try:
        await watch.start()  # before the fleet's first call: the alerts after it are the run's
        outcomes = await _work_in_rounds(api, fleet, tasks, calls, progress, warn, watch)
        for client in clients:
            await client.close(timeout=120)
        lost = await lost_events(fleet.sent_ids)
        outcomes += await _final_outcomes(api, fleet, warn)
        found = await watch.findings(providers.drifts.injected())
        drift = found.with_served(providers.drifts.served())
        outcomes = [with_lifted_pin(o, drift.lifted_pin_of(o.id)) for o in outcomes]
        await sampler.stop()
        await sampler.sample(progress=1.0)  # the decisions and breakers at the end
        if sampler.missed:
            warn(f"{sampler.missed} looks at the breakers or experiments got no answer")
    finally:
        # first, and however the run ends (an error, Ctrl-C, SIGTERM): none of its
        # experiments is left running
        await _stop_experiments(api, warn)
        await sampler.stop()
        for client in clients:
            await client.close(timeout=120)
        await api.aclose()
    baseline = await run_fixed_policy(
        tasks, STRONGEST, NaiveRetries(), providers, observe=fleet.timeline.add_baseline
    )
    return SimulationReport(
        agents=agents,
        calls=calls,
        seed=seed,
        events_sent=len(fleet.sent_ids),
        lost_events=lost,
        comparison=Comparison(baseline=baseline, optimized=fleet.tally),
        experiments=outcomes,
        models_used=fleet.models_used,
        unknown_recommendations=fleet.unknown_recommendations,
        recommendations_unavailable=fleet.recommendations_unavailable,
        elapsed_s=time.monotonic() - began,
        timeline=fleet.timeline,
        drift=drift,
    )

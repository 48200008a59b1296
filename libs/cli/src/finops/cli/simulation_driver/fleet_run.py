"""The fleet's agents at work in one round of ``finops simulate``: each task's model chosen
(an experiment's assignment, else the optimizer's recommendation), then its call through the
SDK's self-healing ``call()`` against the simulated providers.
:mod:`finops.cli.simulation_driver.run` runs the rounds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from finops.cli.simulation.attempts import TaskAttempts
from finops.cli.simulation.catalog import MODELS, STRONGEST, TASK_TYPES, SimModel, serving
from finops.cli.simulation.fleet import Task
from finops.cli.simulation.providers import Answer, ProviderError, SimulatedProviders
from finops.cli.simulation.strategies import TaskOutcome
from finops.cli.simulation.tally import PolicyTally
from finops.cli.simulation.timeline import Timeline
from finops.cli.simulation_driver.experiments import RunningExperiment
from finops.client import AsyncFinOpsClient, CallOptions, PlatformUnavailable, RequestRefused

TEAMS = ("support", "research", "sales", "ops")
#: a task's self-healing call: attempts in all, and seconds of simulated time from its start
MAX_ATTEMPTS = 6
BUDGET_S = 120.0


@dataclass
class Choice:
    """The model an agent will call for one task, and what to tag its answer with."""

    model: SimModel
    decision: dict[str, Any] | None = None
    experiment: dict[str, Any] | None = None


@dataclass
class FleetRun:
    """The live side of a run: the agents' clients, the experiments, what was sent."""

    clients: list[AsyncFinOpsClient]
    providers: SimulatedProviders
    seed: int
    experiments: dict[str, RunningExperiment] = field(default_factory=dict)
    sent_ids: set[str] = field(default_factory=set)
    tally: PolicyTally = field(default_factory=PolicyTally)
    models_used: dict[str, int] = field(default_factory=dict)
    #: recommendations of models the simulation does not serve (the strongest is used instead)
    unknown_recommendations: int = 0
    #: tasks that found the optimizer unreachable (the strongest model was used instead)
    recommendations_unavailable: int = 0
    #: task type -> models no call has been reported with yet (the optimizer's first look)
    untried: dict[str, list[SimModel]] = field(
        default_factory=lambda: {t.name: list(MODELS) for t in TASK_TYPES}
    )
    timeline: Timeline = field(default_factory=Timeline.empty)
    done: int = 0

    async def work(self, tasks: list[Task], done: Callable[[], None]) -> None:
        """One round: each task's model is chosen first, one task after the other in task
        order, then every agent works through its own tasks, in order, all agents at once.

        Choosing first makes the choices the same from run to run: every recommendation and
        assignment of the round is asked of the state the platform had at the round's start
        (the pacing waited for it), in the same order, instead of of whatever the services had
        read of the round's calls when a concurrent agent asked. A round is a few simulated
        minutes (``ROUND_TASKS``), in which a real fleet's optimizer would learn little.
        """
        mine: list[list[tuple[Task, Choice]]] = [[] for _ in self.clients]
        for task in tasks:
            mine[task.agent].append((task, await self._choose(self.clients[task.agent], task)))
        await asyncio.gather(
            *(self._agent(self.clients[n], queue, done) for n, queue in enumerate(mine))
        )

    async def _agent(
        self,
        client: AsyncFinOpsClient,
        tasks: list[tuple[Task, Choice]],
        done: Callable[[], None],
    ) -> None:
        for task, choice in tasks:
            outcome = await self._call(client, task, choice)
            self.tally.add(outcome)
            self.timeline.add_optimized(outcome)
            self.done += 1
            done()

    async def _call(self, client: AsyncFinOpsClient, task: Task, choice: Choice) -> TaskOutcome:
        """The task's call through the SDK's self-healing ``call()``: it asks the healer after
        each failed attempt, applies the advice in simulated time, and reports every failed
        attempt and the answer (the FleetRun reports nothing itself)."""
        attempts = TaskAttempts(task, self.providers)
        options = CallOptions(
            task_type=task.task_type.name,
            provider=choice.model.provider,
            model=choice.model.name,
            trim=attempts.trim,
            input_tokens=task.input_tokens,
            max_tokens=task.output_tokens,
            usage=_usage,
            quality=_quality,
            max_attempts=MAX_ATTEMPTS,
            budget_s=BUDGET_S,
            team=TEAMS[task.agent % len(TEAMS)],
            features={"input_tokens": float(task.input_tokens)},
            clock=attempts.clock,
            on_reported=self.sent_ids.add,
        )
        if choice.decision:
            options["decision"] = choice.decision
        if choice.experiment:
            options["experiment"] = choice.experiment
        try:
            answer: Answer | None = await client.call(attempts, **options)
        except ProviderError:  # the healer advised to give up, or the budget ran out
            answer = None
        if choice.experiment:
            # every assigned call counts in its variant: answered, after a fallback, or as
            # the failure its last error reports when it gave up
            self.experiments[task.task_type.name].tagged_events += 1
        if answer is not None:
            # provider/model: two providers may serve a model of one name
            arm = answer.model.arm
            self.models_used[arm] = self.models_used.get(arm, 0) + 1
        return attempts.outcome(answer)

    async def _choose(self, client: AsyncFinOpsClient, task: Task) -> Choice:
        kind = task.task_type.name
        untried = self.untried[kind]
        if untried:  # every model once per task type, so the optimizer knows each arm
            return Choice(untried.pop(0))
        experiment = self.experiments.get(kind)
        if experiment and experiment.running and experiment.plan.serves(task.input_tokens):
            try:
                assigned = await client.assign(experiment.id, unit=f"task-{task.number}")
            except RequestRefused as refused:
                if refused.code != "experiment_not_running":
                    raise
                experiment.running = False  # decided: the optimizer now pins its winner
            else:
                return Choice(serving(assigned["provider"], assigned["model"]), experiment=assigned)
        try:
            rec = await client.recommend(
                kind,
                {"input_tokens": task.input_tokens},
                team=TEAMS[task.agent % len(TEAMS)],
                seed=self.seed * 1_000_000 + task.number,
            )
        except RequestRefused as refused:
            if refused.code != "no_arms":
                raise
            return Choice(STRONGEST)  # the optimizer has not read this task type's events yet
        except PlatformUnavailable:  # it is restarting: the agent goes on with the strongest
            self.recommendations_unavailable += 1
            return Choice(STRONGEST)
        try:
            model = serving(rec["provider"], rec["model"])
        except KeyError:  # an arm this stack learned elsewhere, which no simulated provider serves
            self.unknown_recommendations += 1
            return Choice(STRONGEST)
        decision = {"recommendation_id": rec["recommendation_id"], "propensity": rec["propensity"]}
        return Choice(model, decision=decision)


def _usage(answer: Answer) -> dict[str, int]:
    return {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens}


def _quality(answer: Answer) -> float:
    return answer.quality

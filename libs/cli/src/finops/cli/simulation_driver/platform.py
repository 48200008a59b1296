"""What ``finops simulate`` does on the platform besides the agents' calls.

Accounts (an operator, one API key per agent, made by :mod:`finops.cli.accounts`), the two
experiments it defines and starts, their outcome (the plans and outcomes themselves:
:mod:`finops.cli.simulation_driver.experiments`), and the check that every event ingest acknowledged
reached the consumers' topics.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

from finops.cli.failures import CliError
from finops.cli.simulation_driver.experiments import (
    ExperimentNotStarted,
    ExperimentOutcome,
    ExperimentPlan,
    RunningExperiment,
)

SERVICES = ("auth", "ingest", "optimizer", "experiments", "healer")
#: how often the pacing after each round looks whether the services have read the round: a
#: round's wait is a few tenths of a second, and each look is one small GET
PACING_POLL_S = 0.05


@dataclass(frozen=True)
class Endpoints:
    """Where the stack answers (``FINOPS_<SERVICE>_URL``, else the stack's ports)."""

    urls: dict[str, str]
    database_url: str

    @classmethod
    def from_environment(cls) -> Endpoints:
        from finops.cli.stack.settings import StackSettings
        from finops.common.settings import CommonSettings

        stack = StackSettings()  # refuses a malformed FINOPS_<SERVICE>_URL (exit 2)
        urls = {name: stack.service_url(name) for name in SERVICES}
        return cls(urls, CommonSettings().database_url)

    def service_url(self, name: str) -> str:
        return self.urls[name].rstrip("/")


async def check_reachable(endpoints: Endpoints, services: tuple[str, ...] = SERVICES) -> None:
    """Ask each service's ``/healthz`` once before the run, so a wrong ``FINOPS_<SERVICE>_URL``
    or a service that is down stops the run at once rather than at its first use: the fleet
    would otherwise wait minutes for an optimizer that is not there, retry its deliveries to
    ingest for ever or quietly do without the healer.

    Raises ``httpx.TransportError`` for a service that does not answer (``simulate`` names it
    and its variable); a :class:`CliError` for one that answers ``/healthz`` with an error.
    """
    async with httpx.AsyncClient(timeout=10) as http:
        for name in services:
            url = endpoints.service_url(name) + "/healthz"
            resp = await http.get(url)
            if resp.status_code != 200:
                raise CliError(
                    f"the {name} service at {endpoints.urls[name]} answered GET /healthz with "
                    f"HTTP {resp.status_code} — check that FINOPS_{name.upper()}_URL names the "
                    f"{name} service"
                )


class OperatorApi:
    """The experiments and optimizer APIs with an operator's token."""

    def __init__(self, endpoints: Endpoints, token: str) -> None:
        self.endpoints = endpoints
        #: the experiments :meth:`stop_unfinished` asked to stop already
        self.stop_asked: set[str] = set()
        self.http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
        #: every experiment this run defined, as soon as the service made it (even one whose
        #: start was interrupted): :meth:`stop_unfinished` stops those still going
        self.defined: list[RunningExperiment] = []

    async def aclose(self) -> None:
        await self.http.aclose()

    async def start_experiment(
        self,
        plan: ExperimentPlan,
        run_id: str,
        min_samples: int,
        seed: int,
        timeout_s: float = 30.0,
    ) -> RunningExperiment:
        """Define and start ``plan``'s experiment; waits until its task type is known.

        Its salt comes from the run's seed: every run with the seed assigns each task the same
        variant, so the experiment meets the same answers and decides at the same point (with
        a random salt, one run happened to give gpt-4o-mini tasks it answered worse, and the
        experiment never decided: half of its tasks went to gpt-4o to the end)."""
        url = self.endpoints.service_url("experiments") + "/api/experiments"
        name = f"sim-{run_id}-{plan.task_type}-{plan.kind.replace('_', '-')}"
        body = {
            "name": name,
            "task_type": plan.task_type,
            "variants": [
                {"name": "A", "model": plan.control.name, "provider": plan.control.provider},
                {"name": "B", "model": plan.treatment.name, "provider": plan.treatment.provider},
            ],
            "min_samples": min_samples,
            # the default guardrails, max_success_rate_drop 0.05 among them: both variants are
            # at one provider and meet the same faults, so the A/A's success rates differ by
            # noise only, which does not break the guardrail (docs/experiments.md#guardrails)
            "salt": f"finops-simulate-{seed}-{plan.task_type}",
        }
        deadline = time.monotonic() + timeout_s
        while True:
            resp = await self.http.post(url, json=body)
            if resp.status_code == 201:
                break
            if _code(resp) != "unknown_task_type":
                raise CliError(f"the experiments service refused {name}: {resp.text[:300]}")
            if time.monotonic() > deadline:
                raise ExperimentNotStarted(plan, name, _message(resp))
            await asyncio.sleep(0.5)  # its intake has not read this task type's events yet
        experiment = RunningExperiment(plan, str(resp.json()["id"]), name)
        self.defined.append(experiment)
        started = await self.http.post(f"{url}/{experiment.id}/start")
        if started.status_code != 200:
            raise CliError(f"the experiments service did not start {name}: {started.text[:300]}")
        return experiment

    async def stop_unfinished(self, timeout_s: float = 10.0) -> list[str]:
        """Stop every experiment of the run the analysis has not ended (``POST …/stop``), so
        that no run leaves its experiments running: an A/A test never decides, and an
        interrupted run ends before the analysis does. One the service already ended (409:
        decided, or stopped by an operator) is left as it is. The names of those the service
        could not be asked to stop (it did not answer, or refused otherwise); each is asked
        once, so a run that calls this again (in its ``finally``) does not wait and warn twice."""
        url = self.endpoints.service_url("experiments") + "/api/experiments"
        failed = []
        for experiment in self.defined:
            if experiment.stopped or experiment.ended or experiment.id in self.stop_asked:
                continue
            self.stop_asked.add(experiment.id)
            try:
                resp = await self.http.post(f"{url}/{experiment.id}/stop", timeout=timeout_s)
            except httpx.HTTPError:
                failed.append(experiment.name)
                continue
            if resp.status_code == 200:
                experiment.stopped = True
                experiment.running = False
            elif _code(resp) == "invalid_status_transition":
                experiment.running = False
                experiment.ended = True
            else:
                failed.append(experiment.name)
        return failed

    async def optimizer_events(self) -> int | None:
        """How many call events the optimizer has read (None when it does not answer)."""
        url = self.endpoints.service_url("optimizer") + "/api/stats/summary"
        try:
            resp = await self.http.get(url)
        except httpx.HTTPError:
            return None
        return int(resp.json()["events"]) if resp.status_code == 200 else None

    async def optimizer_caught_up(self, events: int, timeout_s: float = 120.0) -> bool:
        """Wait until the optimizer has read ``events`` call events (False at the deadline).

        The simulation compresses hours into seconds; a real fleet's optimizer reads its
        warm-up long before the next tasks come, so the run waits for it here (a service that
        just started may still be joining its consumer group).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            read = await self.optimizer_events()
            if read is not None and read >= events:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(PACING_POLL_S)

    async def counted_results(
        self, experiment: RunningExperiment, deadline: float, poll_s: float = 0.5
    ) -> dict[str, Any] | None:
        """The experiment's results once the analysis has counted every tagged event or has
        stopped it (at the deadline: as they are; None when the service does not answer)."""
        url = self.endpoints.service_url("experiments")
        results: dict[str, Any] | None = None
        while True:
            try:
                resp = await self.http.get(f"{url}/api/experiments/{experiment.id}/results")
            except httpx.HTTPError:  # restarting: the pacing waits, the outcome gives up
                resp = None
            if resp is not None and resp.status_code == 200:
                results = resp.json()
                counted = sum(_samples(results)) >= experiment.tagged_events
                if counted or results["status"] != "running":
                    return results
            if time.monotonic() > deadline:
                return results
            await asyncio.sleep(poll_s)

    async def experiment_caught_up(self, experiment: RunningExperiment, timeout_s: float) -> bool:
        """Wait until the experiments service has analysed every tagged event of
        ``experiment`` and, once it has decided for a winner, until the optimizer recommends
        the winner (False at the deadline). Marks the experiment not running once the
        analysis has ended it, so that no task takes an assignment after the decision."""
        deadline = time.monotonic() + timeout_s
        results = await self.counted_results(experiment, deadline, poll_s=PACING_POLL_S)
        if results is None:
            return False
        if results["status"] == "running":
            return sum(_samples(results)) >= experiment.tagged_events
        experiment.running = False
        if not (results.get("decision") or {}).get("winner"):
            return True
        promoted = await self._promoted(experiment, deadline, poll_s=PACING_POLL_S)
        experiment.promoted_seen |= promoted
        return promoted

    async def outcome(
        self, experiment: RunningExperiment, timeout_s: float = 60.0
    ) -> ExperimentOutcome:
        """Its results once the analysis has counted every tagged event (or at the deadline),
        and whether the optimizer now recommends its winner."""
        deadline = time.monotonic() + timeout_s
        results = await self.counted_results(experiment, deadline)
        if results is None:
            raise CliError(f"the experiments service gave no results for {experiment.name}")
        samples = _samples(results)
        decision = results.get("decision") or {}
        winner = decision.get("winner")
        reason = decision.get("reason")
        # once seen promoted, asked once: a pin a drift lifted does not come back
        asked_until = time.monotonic() if experiment.promoted_seen else deadline
        pinned = bool(winner) and await self._promoted(experiment, asked_until)
        plan = experiment.plan
        return ExperimentOutcome(
            experiment.name,
            plan.kind,
            plan.task_type,
            experiment.id,
            str(results["status"]),
            winner,
            pinned or experiment.promoted_seen,
            samples,
            reason,
            # confirmed (or not) by the run's drift alerts: :func:`.with_lifted_pin`
            pin_lifted=experiment.promoted_seen and not pinned,
            pinned_at_end=pinned,
            fallbacks=[int(v.get("fallbacks", 0)) for v in results.get("variants", [])],
        )

    async def _promoted(
        self, experiment: RunningExperiment, deadline: float, poll_s: float = 0.5
    ) -> bool:
        """Whether the optimizer pins the winner (it reads the decision asynchronously)."""
        url = self.endpoints.service_url("optimizer") + "/api/recommendations"
        while True:
            try:
                resp = await self.http.get(url, params={"task_type": experiment.plan.task_type})
            except httpx.HTTPError:  # the optimizer is restarting
                resp = None
            if (
                resp is not None
                and resp.status_code == 200
                and experiment.id in str(resp.json().get("reason", ""))
            ):
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(poll_s)


def _samples(results: dict[str, Any]) -> list[int]:
    """Events per variant in an experiment's results."""
    return [int(v["n"]) for v in results.get("variants", [])]


def _code(resp: httpx.Response) -> str | None:
    try:
        return str(resp.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def _message(resp: httpx.Response) -> str:
    try:
        return str(resp.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return resp.text[:300]


async def lost_events(
    sent: set[str], timeout_s: float = 120.0, quiet_s: tuple[float, ...] = (2.0, 15.0)
) -> int:
    """How many of ``sent`` (ids ingest acknowledged) are on neither agent.cost.v1 nor
    agent.error.v1, read back from the broker from the earliest offset (a read per
    ``quiet_s``, each ending after that many quiet seconds, while ids are missing)."""
    import json

    from finops.common.kafka import read_topic
    from finops.common.settings import CommonSettings
    from finops.common.topics import AGENT_COST, AGENT_ERROR

    settings = CommonSettings(service_name="cli")
    seen: set[str] = set()
    # A read ends after a quiet spell once it has reached the end offsets seen at its start,
    # which takes in every event acknowledged before it; ids still missing get a second,
    # patient read before they are called lost.
    for idle_s in quiet_s:
        for topic in (AGENT_COST.name, AGENT_ERROR.name):
            # a stall within the timeout is waited out: a loaded machine can pause a read, and
            # what is still missing after both reads is counted lost, not an error
            async for record in read_topic(
                settings,
                topic,
                idle_s=idle_s,
                timeout_s=timeout_s,
                until=lambda: sent <= seen,
                stall_s=timeout_s,
            ):
                try:
                    event_id = json.loads(record.value)["id"]
                except (ValueError, KeyError, TypeError):
                    continue  # not an event of this run
                if event_id in sent:
                    seen.add(event_id)
        if sent <= seen:
            break
    return len(sent - seen)

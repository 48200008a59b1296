"""`finops simulate` leaves none of its experiments running, however the run ends.

An A/A test never decides, and an interrupted run ends before the analysis does: before, each
run left them running, and they piled up (six running after four runs). The experiments
service is a mock answering ``POST /api/experiments/{id}/stop`` as the real one does (200 for
a running experiment, 409 ``invalid_status_transition`` for a decided one).
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import httpx
import pytest

from finops.cli.commands.simulate import cancelled_by_sigterm
from finops.cli.simulation.drift_findings import TopicRecord
from finops.cli.simulation.faults import default_schedule
from finops.cli.simulation_driver import run as simulator_run
from finops.cli.simulation_driver.drift_watch import DriftWatch
from finops.cli.simulation_driver.experiments import PLANS, ExperimentOutcome, RunningExperiment
from finops.cli.simulation_driver.platform import Endpoints, OperatorApi

URLS = {name: f"http://{name}" for name in ("auth", "ingest", "optimizer", "experiments", "healer")}
CHEAPER, A_A = PLANS


class Service:
    """The experiments service's stop: ``decided`` ids refuse it; ``stops`` records each."""

    def __init__(self, decided: set[str] = frozenset(), down: bool = False) -> None:  # type: ignore[assignment]
        self.decided = decided
        self.down = down
        self.stops: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("refused", request=request)
        path = request.url.path
        assert request.method == "POST" and path.endswith("/stop"), path
        experiment_id = path.split("/")[-2]
        self.stops.append(experiment_id)
        if experiment_id in self.decided:
            error = {"code": "invalid_status_transition", "message": "decided"}
            return httpx.Response(409, json={"error": error})
        return httpx.Response(200, json={"id": experiment_id, "status": "stopped"})


def _api(service: Service) -> OperatorApi:
    api = OperatorApi(Endpoints(URLS, "postgresql://x"), "token")
    api.http = httpx.AsyncClient(transport=httpx.MockTransport(service))
    return api


async def test_the_experiments_not_decided_are_stopped_once_and_a_decided_one_is_left():
    service = Service(decided={"x1"})
    api = _api(service)
    decided = RunningExperiment(CHEAPER, "x1", "sim-cheaper")
    a_a = RunningExperiment(A_A, "x2", "sim-a-a")
    api.defined += [decided, a_a]

    assert await api.stop_unfinished() == []
    assert await api.stop_unfinished() == []  # the finally's second call asks nothing more

    assert service.stops == ["x1", "x2"]
    assert (a_a.stopped, a_a.running) == (True, False)
    assert (decided.stopped, decided.ended) == (False, True)
    await api.aclose()


async def test_an_experiment_it_cannot_stop_is_named_once():
    api = _api(Service(down=True))
    api.defined.append(RunningExperiment(A_A, "x2", "sim-a-a"))
    assert await api.stop_unfinished() == ["sim-a-a"]
    # the run's finally asks again: no second wait for a service that did not answer, and
    # no second warning
    assert await api.stop_unfinished() == []
    await api.aclose()


async def test_the_outcome_of_an_a_a_test_the_run_stopped_says_no_winner_as_it_should():
    api = _api(Service(decided={"x1"}))
    fleet = simulator_run.FleetRun([], None, 1)  # type: ignore[arg-type]
    for experiment in (RunningExperiment(CHEAPER, "x1", "c"), RunningExperiment(A_A, "x2", "a")):
        api.defined.append(experiment)
        fleet.experiments[experiment.plan.task_type] = experiment

    async def outcome(experiment: RunningExperiment) -> ExperimentOutcome:
        status, winner = ("decided", "B") if experiment.id == "x1" else ("running", None)
        plan = experiment.plan
        return ExperimentOutcome(
            experiment.name, plan.kind, plan.task_type, experiment.id, status, winner, False
        )

    api.outcome = outcome  # type: ignore[method-assign]
    outcomes = await simulator_run._final_outcomes(api, fleet, warn=print)

    assert [(o.kind, o.status, o.winner, o.reason) for o in outcomes] == [
        ("cheaper_variant", "decided", "B", None),
        ("a_a", "stopped", None, "stopped at the end of the run, no winner, as an A/A test should"),
    ]
    await api.aclose()


class Sampler:
    missed = 0

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def sample(self, progress: float | None = None) -> None: ...


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, asyncio.CancelledError, RuntimeError])
async def test_an_interrupted_run_stops_the_experiments_it_started(
    monkeypatch: pytest.MonkeyPatch, interruption: type[BaseException]
) -> None:
    service = Service()
    made: list[OperatorApi] = []

    def operator_api(endpoints: Endpoints, token: str) -> OperatorApi:
        made.append(_api(service))
        return made[-1]

    async def nothing(*args: Any, **kwargs: Any) -> Any:
        return "token" if not args or not isinstance(args[0], Endpoints) else None

    async def rounds(api: OperatorApi, *args: Any) -> list[ExperimentOutcome]:
        # both experiments started, the other still only defined, when the run is interrupted
        api.defined += [RunningExperiment(CHEAPER, "x1", "c"), RunningExperiment(A_A, "x2", "a")]
        raise interruption()

    async def no_clients(*args: Any) -> list[Any]:
        return []

    monkeypatch.setattr(simulator_run, "OperatorApi", operator_api)
    monkeypatch.setattr(simulator_run, "check_reachable", nothing)
    monkeypatch.setattr("finops.cli.accounts.operator_token", nothing)
    monkeypatch.setattr(simulator_run, "_clients", no_clients)
    monkeypatch.setattr(simulator_run, "_sampler", lambda *args: Sampler())
    monkeypatch.setattr(simulator_run, "_work_in_rounds", rounds)

    async def no_alerts() -> list[TopicRecord]:
        return []

    # the drift alerts' topic, read at the start: no broker here
    monkeypatch.setattr(
        simulator_run, "DriftWatch", lambda drifts, warn: DriftWatch(drifts, warn, read=no_alerts)
    )

    with pytest.raises(interruption):
        await simulator_run.run_simulation(
            Endpoints(URLS, "postgresql://x"),
            agents=1,
            calls=100,
            seed=1,
            schedule=default_schedule(),
            progress=lambda: None,
            warn=print,
        )
    assert sorted(service.stops) == ["x1", "x2"]


def test_sigterm_cancels_the_run_so_that_its_finally_runs():
    cleaned: list[str] = []

    async def run() -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(10)
        finally:
            cleaned.append("stopped its experiments")

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(asyncio.wait_for(cancelled_by_sigterm(run()), 5))
    assert cleaned == ["stopped its experiments"]


async def test_a_winner_a_drift_unpinned_reads_promoted_then_unpinned_without_a_wait():
    """The demo's quality drift hits the cheaper variant's winner: the optimizer lifts its pin
    (its drift alert says so). The run's outcome read "not promoted" after waiting a minute
    for the optimizer to recommend the winner again."""
    asked: list[str] = []

    def service(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path == "/api/recommendations":  # the pin is lifted: another reason
            return httpx.Response(200, json={"reason": "cheapest arm meeting the target"})
        results = {"status": "decided", "decision": {"winner": "B", "reason": "cheaper"}}
        return httpx.Response(200, json={**results, "variants": [{"n": 250}, {"n": 277}]})

    api = OperatorApi(Endpoints(URLS, "postgresql://x"), "token")
    api.http = httpx.AsyncClient(transport=httpx.MockTransport(service))
    experiment = RunningExperiment(CHEAPER, "x1", "sim-cheaper", promoted_seen=True)
    outcome = await api.outcome(experiment, timeout_s=60.0)
    # promoted and no longer recommended: lifted by a drift only if a drift alert of the run
    # says so (with_lifted_pin, once the alerts are read)
    assert (outcome.promoted, outcome.pin_lifted, outcome.pinned_at_end) == (True, True, False)
    assert asked.count("/api/recommendations") == 1
    assert outcome.as_json()["pin_lifted"] is True
    await api.aclose()


@pytest.mark.parametrize(
    ("variants", "fallbacks"),
    [
        ([{"n": 250, "fallbacks": 0}, {"n": 277, "fallbacks": 12}], [0, 12]),
        ([{"n": 250}, {"n": 277}], [0, 0]),  # a service before the count
    ],
    ids=["counted", "older service"],
)
async def test_the_outcome_holds_each_variants_calls_answered_after_a_fallback(
    variants: list[dict], fallbacks: list[int]
):
    def service(request: httpx.Request) -> httpx.Response:
        results = {"status": "stopped", "decision": {"winner": None, "reason": "a guardrail"}}
        return httpx.Response(200, json={**results, "variants": variants})

    api = OperatorApi(Endpoints(URLS, "postgresql://x"), "token")
    api.http = httpx.AsyncClient(transport=httpx.MockTransport(service))
    outcome = await api.outcome(RunningExperiment(CHEAPER, "x1", "sim-cheaper"), timeout_s=1.0)
    assert (outcome.samples, outcome.fallbacks) == ([250, 277], fallbacks)
    assert outcome.as_json()["fallbacks"] == fallbacks
    await api.aclose()

"""A bandit's assignment is a function of the experiment's statistics: asked again with no
event in between, every unit gets the same variant with the same propensity, the allocation
the results show (their ``probability_best``, floored)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from stream_fakes import two_variant_definition
from support import TokenFactory

from finops.common.auth import TokenVerifier, install_verifier
from finops.common.http import create_service_app
from finops.common.settings import CommonSettings
from finops.experiments.adapters.repository import Experiment
from finops.experiments.api.routes import router
from finops.experiments.domain.allocation import BANDIT_MIN_SHARE
from finops.experiments.domain.definition import DEFAULT_MAX_DURATION_S
from finops.experiments.domain.experiment_state import ExperimentState
from finops.experiments.domain.stats import VariantStats

DEFINITION = two_variant_definition(
    DEFAULT_MAX_DURATION_S, name="bandit", min_samples=100, allocation="bandit"
)
EXPERIMENT = Experiment(
    "live",
    DEFINITION,
    "running",
    "salt",
    "ops",
    datetime(2026, 12, 1, tzinfo=UTC),
    None,
    None,
    None,
)


def state() -> ExperimentState:
    """60 calls a variant, B about 3 % cheaper: neither sure, so the allocation is uneven."""
    rng = random.Random(3)
    stats = [VariantStats(), VariantStats()]
    for _ in range(60):
        for stat, cost in zip(stats, (0.0100, 0.0097), strict=True):
            stat.add(
                cost_usd=cost * rng.lognormvariate(0, 0.3),
                success=True,
                latency_ms=500.0,
                quality=0.8,
            )
    return ExperimentState(DEFINITION, 0.0, stats)


class Repository:
    async def get(self, experiment_id: str) -> Experiment:
        return EXPERIMENT


class Intake:
    def __init__(self) -> None:
        self.known = {"live": EXPERIMENT}
        self.state = state()

    async def published_state(self, experiment_id: str) -> ExperimentState:
        return self.state


TOKENS = TokenFactory(CommonSettings())
OPERATOR = {"Authorization": f"Bearer {TOKENS.token('ops', role='operator')}"}


class Blocklist:
    async def mget(self, keys: list[str]) -> list[None]:
        return [None] * len(keys)


def client() -> TestClient:
    settings = CommonSettings(service_name="experiments")
    app = create_service_app(settings, title="experiments", description="test")
    app.include_router(router)
    app.state.experiments = Repository()
    app.state.intake = Intake()
    install_verifier(app, TokenVerifier(settings, Blocklist(), TOKENS.keys))
    return TestClient(app, raise_server_exceptions=False)


def assignments(api: TestClient, units: range) -> list[dict[str, Any]]:
    url = "/api/experiments/live/assignment"
    answers = [api.get(url, params={"unit": f"u{i}"}, headers=OPERATOR) for i in units]
    assert all(a.status_code == 200 for a in answers), answers[0].text
    return [a.json() for a in answers]


def test_a_unit_asked_again_with_no_event_between_keeps_its_variant_and_propensity() -> None:
    api = client()
    first = assignments(api, range(200))
    again = assignments(api, range(200))
    # each answer drew the allocation afresh: propensities jittered by the Monte-Carlo
    # error of probability_best, and the units near the edge changed variant between asks
    assert [(a["variant"], a["propensity"]) for a in again] == [
        (a["variant"], a["propensity"]) for a in first
    ]
    results = api.get("/api/experiments/live/results", headers=OPERATOR).json()
    best = {v["name"]: v["probability_best"] for v in results["variants"]}
    floored = {k: max(p, BANDIT_MIN_SHARE) for k, p in best.items()}
    total = sum(floored.values())
    assert 0.1 < best["B"] < 0.99  # an allocation still moving, not a settled one
    assert {a["variant"]: a["propensity"] for a in first} == {
        k: p / total for k, p in floored.items()
    }

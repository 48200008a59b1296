"""The healer's response models describe what the domain answers, without changing a byte."""

from __future__ import annotations

import random

import pytest
from support import answered_through, json_bytes

from finops.common.circuits import CircuitState, CircuitStatus
from finops.common.provider_errors.taxonomy import Classification, ErrorKind
from finops.healer.api.schemas import AdviceOut, CircuitOut, HealingStatsOut
from finops.healer.domain.advice import Advisor, NoBreakers
from finops.healer.domain.catalog import CatalogModel, ModelCatalog
from finops.healer.domain.effectiveness import RemedyLearner
from finops.healer.domain.healing_records import AdviceRecord, Outcome
from finops.healer.domain.healing_stats import HealingLedger
from finops.healer.domain.remedies import Action, FailedCall

CATALOG = ModelCatalog(
    [
        CatalogModel("openai", "gpt-4o", 128_000, 2.5, "gpt-4o"),
        CatalogModel("anthropic", "claude-sonnet-4-5", 200_000, 3.0, "claude-sonnet-4-5"),
    ]
)


@pytest.mark.parametrize("kind", list(ErrorKind), ids=str)
def test_every_kind_of_advice_is_answered_as_the_advisor_built_it(kind: ErrorKind) -> None:
    advisor = Advisor(CATALOG, NoBreakers(), RemedyLearner(), random.Random(3))
    call = FailedCall("openai", "gpt-4o", 2, 150_000, 4_000)
    answer = advisor.advise("adv-1", "bot", Classification(kind, "r", 6000), call).to_answer()
    assert answered_through(AdviceOut, answer) == json_bytes(answer)


@pytest.mark.parametrize("status", list(CircuitStatus), ids=str)
def test_a_circuit_is_answered_as_published(status: CircuitStatus) -> None:
    opened = None if status is CircuitStatus.CLOSED else 1_700_000_000.5
    state = CircuitState("openai", "gpt-4o", status, 0.6, 20, 12, 60.0, opened, opened, "r", 1e9)
    assert answered_through(CircuitOut, state.to_dict()) == json_bytes(state.to_dict())


def test_healing_stats_are_answered_as_the_ledger_reports_them() -> None:
    ledger = HealingLedger()
    first = AdviceRecord("a1", ErrorKind.OVERLOADED, "openai", "gpt-4o", Action.RETRY, 0.0)
    ledger.failed(ErrorKind.OVERLOADED, None, 0.0)
    ledger.failed(ErrorKind.RATE_LIMIT, None, 0.0)
    ledger.advised(first)
    ledger.healed(Outcome("a1", True, 2.5, cost_usd=0.00001, baseline_cost_usd=0.0))
    stats = {"kinds": ledger.report(), "remedies": ledger.learner.to_state(), "records_read": 3}
    assert stats["remedies"] and stats["kinds"]["rate_limit"]["healed_ratio"] is None
    assert answered_through(HealingStatsOut, stats) == json_bytes(stats)

"""Remedies: every real provider payload gets a safe remedy; each kind its remedies; the
learner only ever chooses among safe ones and prefers what heals; doctests of the domain."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from provider_error_cases import CASES, to_error

from finops.common.provider_errors.taxonomy import RETRYABLE_KINDS, Classification, ErrorKind
from finops.common.provider_errors.waits import MAX_STATED_WAIT_MS
from finops.healer.domain.advice import Advisor, NoBreakers
from finops.healer.domain.catalog import CatalogModel, ModelCatalog
from finops.healer.domain.classify import classify
from finops.healer.domain.effectiveness import RemedyLearner
from finops.healer.domain.remedies import (
    NEVER_AGAIN,
    SAME_CALL_AGAIN,
    Action,
    Backoff,
    FailedCall,
    RemedyContext,
    candidate_remedies,
)

K = ErrorKind
CATALOG = ModelCatalog(
    [
        CatalogModel("openai", "gpt-4o", 128_000, 2.5, "gpt-4o"),
        CatalogModel("openai", "gpt-4o-mini", 128_000, 0.15, "gpt-4o-mini"),
        CatalogModel("openai", "gpt-4.1", 1_000_000, 2.0, "gpt-4.1"),
        CatalogModel("anthropic", "claude-sonnet-4-5", 200_000, 3.0, "claude-sonnet-4-5"),
        CatalogModel("aws", "anthropic.claude-sonnet-4-5", 200_000, 3.0, "claude-sonnet-4-5"),
    ]
)


class Breakers:
    def __init__(self, states: dict[tuple[str, str], str]) -> None:
        self.states = states

    def state_of(self, provider: str, model: str) -> str | None:
        return self.states.get((provider, model))


def advisor(breakers: Any = None, seed: int = 0) -> Advisor:
    return Advisor(CATALOG, breakers or NoBreakers(), RemedyLearner(), random.Random(seed))


def context(call: FailedCall, wait: int | None = None) -> RemedyContext:
    return RemedyContext(call, wait, CATALOG, lambda p, m: False, random.Random(1))


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_every_real_payload_gets_a_safe_remedy(case: dict[str, Any]) -> None:
    verdict = classify(to_error(case))
    call = FailedCall(case["provider"], "gpt-4o")
    for seed in range(5):
        remedy = advisor(seed=seed).advise("a", "agent", verdict, call).remedy
        if verdict.kind in NEVER_AGAIN:
            assert remedy.action not in SAME_CALL_AGAIN
        if verdict.kind in RETRYABLE_KINDS:
            assert remedy.action is not Action.ABORT
        if remedy.action in SAME_CALL_AGAIN and verdict.stated_wait_ms is not None:
            assert remedy.delay_ms >= verdict.stated_wait_ms


@pytest.mark.parametrize("kind", sorted(RETRYABLE_KINDS))
def test_retryable_kinds_retry_or_fall_back_to_another_provider(kind: ErrorKind) -> None:
    found = candidate_remedies(kind, context(FailedCall("openai", "gpt-4o")))
    assert [r.action for r in found] == [Action.RETRY, Action.FALLBACK]
    assert (found[1].provider, found[1].model) == ("anthropic", "claude-sonnet-4-5")


def test_a_stated_wait_is_a_floor_and_makes_it_a_wait() -> None:
    found = candidate_remedies(K.RATE_LIMIT, context(FailedCall("openai", "gpt-4o"), 20_000))
    assert found[0].action is Action.WAIT
    assert 20_000 <= found[0].delay_ms <= 21_000


def test_a_wait_at_the_cap_does_not_say_the_provider_asked_for_exactly_that() -> None:
    # retry-after "Wed, 21 Oct 2099 ..." said "wait the 86400000 ms the provider asked for"
    capped = candidate_remedies(
        K.RATE_LIMIT, context(FailedCall("openai", "gpt-4o"), MAX_STATED_WAIT_MS)
    )[0]
    assert capped.reason == (
        "rate limited: the provider asked to wait a day or longer; "
        "wait 86400000 ms, the longest wait advised"
    )
    stated = candidate_remedies(K.RATE_LIMIT, context(FailedCall("openai", "gpt-4o"), 20_000))
    assert stated[0].reason.endswith("wait the 20000 ms the provider asked for")


def test_backoff_cap_doubles_per_attempt_up_to_the_maximum() -> None:
    backoff = Backoff(base_ms=500, max_ms=4_000)
    assert [backoff.cap_ms(n) for n in (1, 2, 3, 4, 5)] == [500, 1000, 2000, 4000, 4000]
    rng = random.Random(3)
    delays = [backoff.delay(3, None, rng)[0] for _ in range(200)]
    assert 0 <= min(delays) < 500 and 1500 < max(delays) <= 2000  # full jitter over [0, cap]


def test_context_overflow_trims_to_the_window_or_falls_back_to_one_that_fits() -> None:
    call = FailedCall("openai", "gpt-4o", input_tokens=150_000, max_tokens=8_000)
    found = candidate_remedies(K.CONTEXT_LENGTH_EXCEEDED, context(call))
    assert [(r.action, r.max_input_tokens, r.model) for r in found] == [
        (Action.TRIM, 120_000, None),
        (Action.FALLBACK, None, "gpt-4.1"),
    ]


def test_a_trim_without_max_tokens_keeps_room_for_the_answer() -> None:
    # the whole window (128,000) left the trimmed retry no room to answer in
    call = FailedCall("openai", "gpt-4o", input_tokens=135_000)
    trim = candidate_remedies(K.CONTEXT_LENGTH_EXCEEDED, context(call))[0]
    assert (trim.action, trim.max_input_tokens) == (Action.TRIM, 128_000 - 4_096)


def test_context_overflow_with_nothing_known_aborts() -> None:
    found = candidate_remedies(K.CONTEXT_LENGTH_EXCEEDED, context(FailedCall("acme", "x")))
    assert [r.action for r in found] == [Action.ABORT]
    assert found[0].reason == (
        "the request does not fit the model's context window: no known model's window holds"
        " the request and its answer, and x's window is unknown, so the input cannot be"
        " trimmed to it: shorten the input or lower max_tokens"
    )


def test_context_overflow_beyond_every_window_aborts_naming_the_known_window() -> None:
    # the abort said "the window is unknown" for gpt-4o, whose window the catalog holds
    call = FailedCall("openai", "gpt-4o", input_tokens=5_000_000, max_tokens=10_000_000)
    found = candidate_remedies(K.CONTEXT_LENGTH_EXCEEDED, context(call))
    assert [(r.action, r.reason) for r in found] == [
        (
            Action.ABORT,
            "the request does not fit the model's context window: no known model's window"
            " holds the request and its answer, and trimming the input cannot make room in"
            " gpt-4o's 128000 tokens with the answer's: shorten the input or lower max_tokens",
        )
    ]


def test_invalid_output_is_repaired_with_json_mode_and_a_cold_temperature() -> None:
    repair = candidate_remedies(K.INVALID_OUTPUT, context(FailedCall("openai", "gpt-4o")))[0]
    assert repair.action is Action.REPAIR
    assert repair.params == {"response_format": {"type": "json_object"}, "temperature": 0.0}


@pytest.mark.parametrize("kind", [K.AUTH, K.CONTENT_POLICY, K.BAD_REQUEST])
def test_kinds_no_model_change_can_fix_abort(kind: ErrorKind) -> None:
    found = candidate_remedies(kind, context(FailedCall("openai", "gpt-4o")))
    assert [r.action for r in found] == [Action.ABORT] and found[0].reason


def test_quota_exhausted_falls_back_elsewhere_and_never_waits() -> None:
    found = candidate_remedies(K.QUOTA_EXHAUSTED, context(FailedCall("openai", "gpt-4o"), 60_000))
    assert [(r.action, r.provider) for r in found] == [(Action.FALLBACK, "anthropic")]


def test_unknown_gets_one_retry_then_abort() -> None:
    first = candidate_remedies(K.UNKNOWN, context(FailedCall("openai", "gpt-4o", attempt=1)))
    second = candidate_remedies(K.UNKNOWN, context(FailedCall("openai", "gpt-4o", attempt=2)))
    assert [r.action for r in first] == [Action.RETRY]
    assert [r.action for r in second] == [Action.ABORT]


def test_a_fallback_skips_models_whose_breaker_is_open() -> None:
    breakers = Breakers(
        {("anthropic", "claude-sonnet-4-5"): "open", ("openai", "gpt-4o"): "half_open"}
    )
    chosen = advisor(breakers).advise(
        "a", "agent", Classification(K.QUOTA_EXHAUSTED, "r"), FailedCall("openai", "gpt-4o")
    )
    assert (chosen.remedy.provider, chosen.remedy.model) == ("aws", "anthropic.claude-sonnet-4-5")
    assert chosen.breaker == "half_open"


def test_advice_answer_has_every_field_of_the_api() -> None:
    chosen = advisor().advise(
        "adv-1", "bot", Classification(K.RATE_LIMIT, "r", 6000), FailedCall("openai", "gpt-4o")
    )
    answer = chosen.to_answer()
    assert answer["advice_id"] == "adv-1" and answer["kind"] == "rate_limit"
    assert answer["retryable"] is True and answer["breaker"] is None
    assert set(answer["remedy"]) == {
        "action", "delay_ms", "model", "provider", "max_input_tokens", "params"
    }  # fmt: skip


def test_the_learner_moves_advice_to_the_remedy_that_heals() -> None:
    learner = RemedyLearner()
    chooser = Advisor(CATALOG, NoBreakers(), learner, random.Random(5))
    verdict, call = Classification(K.OVERLOADED, "r"), FailedCall("openai", "gpt-4o")
    before = [chooser.advise("a", "b", verdict, call).remedy.action for _ in range(200)]
    for _ in range(40):
        learner.observe(K.OVERLOADED, "openai", Action.RETRY, healed=False)
        learner.observe(K.OVERLOADED, "openai", Action.FALLBACK, healed=True)
    after = [chooser.advise("a", "b", verdict, call).remedy.action for _ in range(200)]
    assert set(before) == {Action.RETRY}  # the default until anything is learned
    assert after.count(Action.FALLBACK) > 190


def test_the_learner_state_round_trips() -> None:
    learner = RemedyLearner()
    learner.observe(K.RATE_LIMIT, "openai", Action.WAIT, healed=True)
    learner.observe(K.RATE_LIMIT, "openai", Action.WAIT, healed=False)
    restored = RemedyLearner.from_state(json.loads(json.dumps(learner.to_state())))
    assert restored.trials == learner.trials


@pytest.mark.parametrize("kind", [K.OVERLOADED, K.RATE_LIMIT, K.SERVER_ERROR, K.TIMEOUT])
def test_a_transient_error_that_retries_did_not_heal_falls_back_by_default(kind) -> None:
    early = candidate_remedies(kind, context(FailedCall("openai", "gpt-4o", attempt=2)))
    late = candidate_remedies(kind, context(FailedCall("openai", "gpt-4o", attempt=3)))
    assert early[0].action in SAME_CALL_AGAIN
    assert late[0].action == Action.FALLBACK and late[0].provider != "openai"
    assert late[1].action in SAME_CALL_AGAIN  # still a candidate the learner may prefer
    alone = ModelCatalog([CatalogModel("openai", "gpt-4o", 128_000, 2.5, "gpt-4o")])
    nowhere = RemedyContext(
        FailedCall("openai", "gpt-4o", attempt=3), None, alone, lambda p, m: False, random.Random(1)
    )
    assert [r.action for r in candidate_remedies(kind, nowhere)] == [Action.RETRY]


@pytest.mark.parametrize("kind", [K.OVERLOADED, K.RATE_LIMIT, K.SERVER_ERROR, K.TIMEOUT])
def test_a_transient_error_on_a_model_whose_breaker_is_open_only_falls_back(kind) -> None:
    # the fleet stopped calling it: retrying it at the first attempts waited on a provider
    # that keeps failing
    def gpt_4o_open(provider: str, model: str) -> bool:
        return (provider, model) == ("openai", "gpt-4o")

    call = FailedCall("openai", "gpt-4o", attempt=1)
    found = candidate_remedies(
        kind, RemedyContext(call, 6000, CATALOG, gpt_4o_open, random.Random(1))
    )
    assert [(r.action, r.provider) for r in found] == [(Action.FALLBACK, "anthropic")]
    assert found[0].reason.endswith("its circuit breaker is open: an equivalent model at anthropic")
    # with nowhere to go, waiting is still the advice
    alone = ModelCatalog([CatalogModel("openai", "gpt-4o", 128_000, 2.5, "gpt-4o")])
    stuck = candidate_remedies(
        kind, RemedyContext(call, 6000, alone, gpt_4o_open, random.Random(1))
    )
    assert [r.action for r in stuck] == [Action.WAIT]

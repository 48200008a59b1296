"""A task's attempts as the agent's LLM call for the SDK's ``call()``: simulated time, the
model the SDK names, trims, and failures named by what the next attempt changed."""

from __future__ import annotations

import pytest

from finops.cli.simulation.attempts import TaskAttempts
from finops.cli.simulation.catalog import CLAUDE_HAIKU, GPT_4O, TASK_TYPES, serving
from finops.cli.simulation.faults import NO_FAULTS, FaultSchedule, Outage, Window
from finops.cli.simulation.fleet import RUN_MS, Task
from finops.cli.simulation.providers import ProviderError, SimulatedProviders


def summarize(input_tokens: int = 3000, at_fraction: float = 0.0) -> Task:
    kind = next(t for t in TASK_TYPES if t.name == "summarize")
    return Task(5, 1, 0, kind, input_tokens, 200, RUN_MS * at_fraction)


def test_an_answer_moves_the_clock_by_its_latency():
    task = summarize()
    attempts = TaskAttempts(task, SimulatedProviders(NO_FAULTS))
    answer = attempts(provider="openai", model="gpt-4o")
    assert answer.model is GPT_4O
    assert attempts.clock.at_ms == pytest.approx(task.start_ms + answer.latency_ms)
    outcome = attempts.outcome(answer)
    assert outcome.failures == () and outcome.answer is answer


def test_a_fallback_after_an_outage_is_named_and_served_at_the_later_time():
    down = FaultSchedule(outages=(Outage("anthropic", Window(0.0, 0.5)),))
    attempts = TaskAttempts(summarize(at_fraction=0.1), SimulatedProviders(down))
    with pytest.raises(ProviderError) as failed:
        attempts(provider="anthropic", model="claude-haiku-4-5")
    assert failed.value.kind == "overloaded"
    stand_in = "global.anthropic.claude-haiku-4-5-20251001-v1:0"
    answer = attempts(provider="aws", model=stand_in)
    assert answer.model.arm == f"aws/{stand_in}" and answer.model.quality is CLAUDE_HAIKU.quality
    (failure,) = attempts.outcome(answer).failures
    assert (failure.attempt, failure.model, failure.remedy) == (1, CLAUDE_HAIKU, "fallback")


def test_a_trim_shortens_the_prompt_of_the_next_attempt():
    attempts = TaskAttempts(summarize(input_tokens=140_000), SimulatedProviders(NO_FAULTS))
    with pytest.raises(ProviderError) as failed:
        attempts(provider="openai", model="gpt-4o")
    assert failed.value.kind == "context_length_exceeded"
    attempts.trim(127_800)
    answer = attempts(provider="openai", model="gpt-4o")
    assert answer.input_tokens == 127_800
    assert [f.remedy for f in attempts.outcome(answer).failures] == ["trim"]


def test_a_model_no_provider_serves_fails_as_model_not_found_and_ends_the_outcome():
    attempts = TaskAttempts(summarize(), SimulatedProviders(NO_FAULTS))
    with pytest.raises(ProviderError) as failed:
        attempts(provider="openai", model="no-such-model")
    assert (failed.value.kind, failed.value.status) == ("model_not_found", 404)
    outcome = attempts.outcome(None)
    assert [f.remedy for f in outcome.failures] == ["give_up"]
    assert outcome.unrecoverable_retried == 0 and outcome.healed == 0


def test_a_refused_prompt_tried_again_counts_as_an_unrecoverable_retry():
    refuse_all = FaultSchedule(refusal_share=1.0)
    attempts = TaskAttempts(summarize(), SimulatedProviders(refuse_all))
    for _ in range(2):
        with pytest.raises(ProviderError):
            attempts(provider="openai", model="gpt-4o")
    outcome = attempts.outcome(None)
    assert [f.remedy for f in outcome.failures] == ["retry", "give_up"]
    assert outcome.unrecoverable_retried == 1


def test_serving_prices_a_stand_in_in_the_closest_price_tier():
    assert serving("openai", "gpt-4o") is GPT_4O
    assert serving("openai", "gpt-4.1").quality is GPT_4O.quality
    with pytest.raises(KeyError):
        serving("openai", "no-such-model")

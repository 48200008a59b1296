"""The pure fleet simulation: seeded, its faults do what the schedule says, fair baselines."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from finops.cli.simulation import catalog
from finops.cli.simulation.catalog import GPT_4O, GPT_4O_MINI, MODELS, STRONGEST, TASK_TYPES
from finops.cli.simulation.faults import (
    NO_FAULTS,
    FaultSchedule,
    Outage,
    QualityDrift,
    RateLimitStorm,
    Window,
    default_schedule,
)
from finops.cli.simulation.fleet import RUN_MS, Task, make_tasks
from finops.cli.simulation.providers import ProviderError, SimulatedProviders
from finops.cli.simulation.strategies import Healing, NaiveRetries
from finops.cli.simulation.tally import Comparison, PolicyTally, run_fixed_policy
from finops.cli.simulation_driver import experiments


def summarize_task(number: int = 0, input_tokens: int = 3000, at_fraction: float = 0.0) -> Task:
    kind = next(t for t in TASK_TYPES if t.name == "summarize")
    return Task(3, number, 0, kind, input_tokens, 200, RUN_MS * at_fraction)


def test_the_same_seed_gives_the_same_tasks_and_outcomes():
    schedule = default_schedule()
    runs = []
    for _ in range(2):
        tasks = make_tasks(seed=11, calls=300, agents=3)
        outcome = [
            (o.answer.latency_ms, o.answer.quality, o.answer.cost_usd) if o.answer else None
            for o in [
                _run(Healing(MODELS).call(t, GPT_4O, SimulatedProviders(schedule))) for t in tasks
            ]
        ]
        runs.append((tasks, outcome))
    assert runs[0] == runs[1]
    other = make_tasks(seed=12, calls=300, agents=3)
    assert [t.input_tokens for t in other] != [t.input_tokens for t in runs[0][0]]


def test_tasks_cover_every_task_type_and_are_dealt_to_every_agent():
    tasks = make_tasks(seed=1, calls=500, agents=4)
    assert {t.task_type.name for t in tasks} == {k.name for k in TASK_TYPES}
    assert {t.agent for t in tasks} == {0, 1, 2, 3}
    assert [t.start_ms for t in tasks] == sorted(t.start_ms for t in tasks)


def test_an_outage_fails_every_attempt_of_that_provider_within_its_window_only():
    schedule = FaultSchedule(outages=(Outage("openai", Window(0.5, 0.6)),))
    sim = SimulatedProviders(schedule)
    task = summarize_task()
    with pytest.raises(ProviderError) as down:
        sim.attempt(task, GPT_4O, 1, RUN_MS * 0.55)
    assert (down.value.kind, down.value.status) == ("overloaded", 503)
    assert sim.attempt(task, GPT_4O, 1, RUN_MS * 0.65).model is GPT_4O
    assert sim.attempt(task, catalog.CLAUDE_HAIKU, 1, RUN_MS * 0.55).model is catalog.CLAUDE_HAIKU


def test_a_storm_rate_limits_its_share_of_attempts_with_a_retry_after():
    storm = RateLimitStorm("openai", Window(0.0, 1.0), share=0.5, retry_after_ms=(2000, 4000))
    sim = SimulatedProviders(FaultSchedule(storms=(storm,)))
    limited = []
    for number in range(400):
        try:
            sim.attempt(summarize_task(number), GPT_4O_MINI, 1, 0.0)
        except ProviderError as error:
            assert error.kind == "rate_limit" and error.status == 429
            assert error.retry_after_ms is not None and 2000 <= error.retry_after_ms <= 4000
            limited.append(number)
    assert 160 <= len(limited) <= 240


def test_a_prompt_beyond_the_window_overflows_and_healing_moves_to_a_larger_window():
    task = summarize_task(input_tokens=150_000)
    sim = SimulatedProviders(NO_FAULTS)
    with pytest.raises(ProviderError) as overflow:
        sim.attempt(task, GPT_4O, 1, 0.0)
    assert overflow.value.kind == "context_length_exceeded"
    healed = _run(Healing(MODELS).call(task, GPT_4O, sim))
    assert healed.answer is not None and healed.answer.model.context_window >= 150_200
    assert [f.remedy for f in healed.failures] == ["bigger_context"]
    naive = _run(NaiveRetries().call(task, GPT_4O, sim))
    assert naive.answer is None and len(naive.failures) == 3


def _answered(sim: SimulatedProviders, model, at: float, n: int, first: int = 0) -> list[float]:
    """The qualities of ``n`` summarize tasks that start (and are attempted) at ``at``."""
    return [
        sim.attempt(summarize_task(first + k, at_fraction=at), model, 1, RUN_MS * at).quality
        for k in range(n)
    ]


def test_quality_drift_lowers_one_model_on_one_task_type_from_its_start():
    drift = QualityDrift("gpt-4o-mini", "summarize", start=0.5, drop=1.0)
    sim = SimulatedProviders(FaultSchedule(drifts=(drift,)))
    assert sum(_answered(sim, GPT_4O_MINI, 0.0, 200)) > 150
    assert sum(_answered(sim, GPT_4O_MINI, 0.6, 200)) == 0
    assert sum(_answered(sim, GPT_4O, 0.6, 200)) > 150
    # a retry after the start of a task that started before it is not drifted
    early = summarize_task(7, at_fraction=0.45)
    retries = [sim.attempt(early, GPT_4O_MINI, n, RUN_MS * 0.55).quality for n in range(2, 40)]
    assert sum(retries) > 25


def test_a_drift_that_follows_the_traffic_lands_on_the_model_serving_most_calls_before_it():
    drift = QualityDrift("gpt-4o-mini", "summarize", start=0.5, drop=1.0, follow_traffic=True)
    sim = SimulatedProviders(FaultSchedule(drifts=(drift,)))
    # gpt-4o-mini answers most summarize tasks early on, gpt-4o most in the tenth before 50 %
    _answered(sim, GPT_4O_MINI, 0.1, 30)
    _answered(sim, GPT_4O, 0.45, 20)
    _answered(sim, GPT_4O_MINI, 0.48, 1)
    assert sum(_answered(sim, GPT_4O, 0.6, 50)) == 0
    assert sum(_answered(sim, GPT_4O_MINI, 0.6, 50)) > 35
    (landed,) = sim.drifts.injected()
    assert (landed.model, landed.follow_traffic) == ("gpt-4o", True)
    # the baseline, run afterwards over the same providers, meets the same drift
    assert _answered(sim, GPT_4O, 0.9, 1) == [0.0]


def test_the_share_of_calls_the_drifted_model_served_just_before_and_just_after_it():
    drift = QualityDrift("gpt-4o-mini", "summarize", start=0.5, drop=1.0, follow_traffic=True)
    sim = SimulatedProviders(FaultSchedule(drifts=(drift,)))
    _answered(sim, GPT_4O_MINI, 0.45, 30)
    _answered(sim, GPT_4O, 0.46, 10)
    _answered(sim, GPT_4O_MINI, 0.52, 3)  # the routing moved off it within the tenth after
    _answered(sim, GPT_4O, 0.55, 27)
    _answered(sim, GPT_4O_MINI, 0.7, 50)  # past the tenth after: not counted
    (served,) = sim.drifts.served()
    assert (served.before, served.after) == (0.75, 0.1)


def test_retries_of_earlier_tasks_count_with_their_task_and_do_not_choose_the_model():
    drift = QualityDrift("gpt-4o", "summarize", start=0.5, drop=1.0, follow_traffic=True)
    sim = SimulatedProviders(FaultSchedule(drifts=(drift,)))
    _answered(sim, GPT_4O, 0.45, 20)
    # 25 tasks that started at 49 %, answered by gpt-4o-mini on a retry after 50 %: had the
    # first retry chosen the model, it would be gpt-4o (20 to 0)
    for n in range(25):
        sim.attempt(summarize_task(100 + n, at_fraction=0.49), GPT_4O_MINI, 2, RUN_MS * 0.51)
    assert sum(_answered(sim, GPT_4O_MINI, 0.6, 20)) == 0
    assert sim.drifts.injected()[0].model == "gpt-4o-mini"


def test_a_drift_that_follows_the_traffic_uses_earlier_calls_when_the_tenth_before_had_none():
    drift = QualityDrift("gpt-4o", "summarize", start=0.5, drop=1.0, follow_traffic=True)
    sim = SimulatedProviders(FaultSchedule(drifts=(drift,)))
    _answered(sim, GPT_4O_MINI, 0.2, 3)
    _answered(sim, GPT_4O, 0.3, 2)
    assert sum(_answered(sim, GPT_4O_MINI, 0.7, 20)) == 0
    (landed,) = sim.drifts.injected()
    assert (landed.model, landed.follow_traffic) == ("gpt-4o-mini", True)


def test_a_drift_that_follows_the_traffic_keeps_its_model_when_the_task_type_had_no_call():
    drift = QualityDrift("gpt-4o-mini", "summarize", start=0.5, drop=1.0, follow_traffic=True)
    sim = SimulatedProviders(FaultSchedule(drifts=(drift,)))
    assert sim.drifts.injected()[0].follow_traffic is False  # not begun: its own model
    assert [(s.before, s.after) for s in sim.drifts.served()] == [(None, None)]
    assert sum(_answered(sim, GPT_4O_MINI, 0.6, 20)) == 0
    (landed,) = sim.drifts.injected()
    # the traffic chose nothing: reported as its own model, not as the model serving most
    assert (landed.model, landed.follow_traffic) == ("gpt-4o-mini", False)


def test_healing_waits_as_long_as_the_rate_limit_says_in_simulated_time():
    storm = RateLimitStorm("openai", Window(0.0, 1.0), share=0.5, retry_after_ms=(5000, 5000))
    sim = SimulatedProviders(FaultSchedule(storms=(storm,)))
    limited = next(
        n for n in range(100) if _raises(lambda n=n: sim.attempt(summarize_task(n), GPT_4O, 1, 0))
    )
    outcome = _run(Healing(MODELS, fallback_after=99).call(summarize_task(limited), GPT_4O, sim))
    first = outcome.failures[0]
    assert first.remedy == "wait"
    later = [f.at_ms for f in outcome.failures[1:]]
    assert all(at >= first.at_ms + 5000 for at in later)


def test_healing_asks_again_for_malformed_output():
    sim = SimulatedProviders(FaultSchedule(malformed_share=0.5))
    malformed = next(
        n for n in range(100) if _raises(lambda n=n: sim.attempt(summarize_task(n), GPT_4O, 1, 0))
    )
    outcome = _run(Healing(MODELS).call(summarize_task(malformed), GPT_4O, sim))
    assert outcome.failures[0].error.kind == "invalid_output"
    assert {f.remedy for f in outcome.failures} == {"repair"}
    assert outcome.answer is not None and outcome.answer.model is GPT_4O


def test_healing_leaves_a_provider_that_keeps_rate_limiting():
    storm = RateLimitStorm("openai", Window(0.0, 1.0), share=1.0)
    sim = SimulatedProviders(FaultSchedule(storms=(storm,)))
    outcome = _run(Healing(MODELS).call(summarize_task(), GPT_4O_MINI, sim))
    assert [f.remedy for f in outcome.failures] == ["wait", "fallback"]
    assert outcome.answer is not None and outcome.answer.model.provider == "anthropic"
    waited = outcome.failures[0].error.retry_after_ms
    assert outcome.failures[1].at_ms >= outcome.failures[0].at_ms + waited


def test_healing_never_retries_a_refused_prompt():
    sim = SimulatedProviders(FaultSchedule(refusal_share=1.0))
    outcome = _run(Healing(MODELS).call(summarize_task(), GPT_4O, sim))
    assert outcome.answer is None
    assert [(f.error.kind, f.remedy) for f in outcome.failures] == [("content_policy", "give_up")]
    assert outcome.recoverable_errors == 0


def test_healing_falls_back_to_another_provider_during_an_outage():
    sim = SimulatedProviders(FaultSchedule(outages=(Outage("openai", Window(0.0, 1.0)),)))
    outcome = _run(Healing(MODELS).call(summarize_task(), GPT_4O, sim))
    assert [f.remedy for f in outcome.failures] == ["retry", "fallback"]
    assert outcome.answer is not None and outcome.answer.model.provider == "anthropic"
    assert outcome.healed == 2


def test_the_baseline_is_the_strongest_model_with_naive_retries_over_the_same_tasks():
    tasks = make_tasks(seed=5, calls=400, agents=2)
    sim = SimulatedProviders(default_schedule())
    baseline = _run(run_fixed_policy(tasks, STRONGEST, NaiveRetries(), sim))
    again = _run(run_fixed_policy(tasks, STRONGEST, NaiveRetries(), sim))
    assert baseline == again
    assert baseline.tasks == 400
    assert baseline.errors > 0 and baseline.healed < baseline.recoverable_errors
    # without faults the strongest model answers everything: the baseline pays for each
    clean = _run(run_fixed_policy(tasks, STRONGEST, NaiveRetries(), SimulatedProviders(NO_FAULTS)))
    long_prompts = sum(t.input_tokens + t.output_tokens > GPT_4O.context_window for t in tasks)
    assert clean.answered == 400 - long_prompts
    cheap = _run(
        run_fixed_policy(tasks, GPT_4O_MINI, NaiveRetries(), SimulatedProviders(NO_FAULTS))
    )
    comparison = Comparison(baseline=clean, optimized=cheap)
    assert comparison.saving == pytest.approx(1 - cheap.cost_usd / clean.cost_usd)
    assert 0.9 < comparison.saving < 1.0
    assert comparison.quality_ratio < 1.0


def test_both_policies_meet_the_same_luck_on_the_same_attempt():
    task = summarize_task(number=17)
    sim = SimulatedProviders(NO_FAULTS)
    one = sim.attempt(task, GPT_4O, 1, 0.0)
    other = sim.attempt(replace(task), GPT_4O, 1, RUN_MS * 0.9)
    assert (one.quality, one.latency_ms) == (other.quality, other.latency_ms)


def test_a_tally_counts_healed_errors_only_of_tasks_that_got_an_answer():
    sim = SimulatedProviders(FaultSchedule(outages=(Outage("openai", Window(0.0, 1.0)),)))
    tally_ = PolicyTally()
    tally_.add(_run(NaiveRetries().call(summarize_task(), GPT_4O, sim)))
    tally_.add(_run(Healing(MODELS).call(summarize_task(), GPT_4O, sim)))
    assert (tally_.tasks, tally_.answered, tally_.errors) == (2, 1, 5)
    assert (tally_.recoverable_errors, tally_.healed) == (5, 2)
    assert tally_.healed_ratio == pytest.approx(0.4)


def _raises(attempt) -> bool:
    try:
        attempt()
    except ProviderError:
        return True
    return False


def _run(coroutine):
    return asyncio.run(coroutine)


def test_an_experiment_takes_only_the_prompts_every_variant_can_serve():
    summarize, knowledge = experiments.PLANS
    assert summarize.task_type == "summarize"  # gpt-4o against gpt-4o-mini: 128k windows
    assert summarize.serves(128_000) and not summarize.serves(128_001)
    # the A/A runs claude-haiku-4-5 in both variants: a 200k window
    assert knowledge.serves(150_000) and not knowledge.serves(200_001)
    long_prompts = [
        t.input_tokens for t in make_tasks(42, 2000, 4) if t.task_type.name == "summarize"
    ]
    assert (
        sum(not summarize.serves(n) for n in long_prompts)
        == sum(n >= 130_000 for n in long_prompts)
        > 0
    )

"""The streaming analysis on plain data: counting, dedupe, conclusions, expiry, state."""

from __future__ import annotations

import json
import random

import pytest
from stream_fakes import two_variant_definition

from finops.experiments.domain import analysis as analysis_module
from finops.experiments.domain import conclusions
from finops.experiments.domain.analysis import ExperimentAnalysis
from finops.experiments.domain.definition import build_definition
from finops.experiments.domain.experiment_state import ExperimentState, experiment_results
from finops.experiments.domain.sequential import metric_value
from finops.experiments.domain.stats import VariantStats
from finops.experiments.domain.tagged import Tagged, decode_tagged, encode_tagged

DEFINITION = two_variant_definition(max_duration_s=100)


def event(i: int, variant: str, cost: float, rng: random.Random) -> Tagged:
    return Tagged(f"id-{i}", "x", variant, cost * rng.lognormvariate(0, 0.3), True, 500.0, 0.9)


def test_a_cheaper_variant_is_concluded_once_and_later_events_are_not_counted() -> None:
    rng = random.Random(0)
    analysis = ExperimentAnalysis()
    analysis.track("x", DEFINITION, started_at=0.0)
    conclusion = None
    i = 0
    while conclusion is None and i < 5000:
        variant = "AB"[i % 2]
        conclusion = analysis.observe(event(i, variant, 0.01 if variant == "A" else 0.007, rng), 1)
        i += 1
    assert conclusion is not None and conclusion["winner"] == "B"
    assert conclusion["status"] == "decided" and conclusion["winner_arm"]["model"] == "small"
    assert [loser["name"] for loser in conclusion["losers"]] == ["A"]
    assert analysis.observe(event(i, "A", 0.01, rng), 2) is None
    assert analysis.ignored == {"experiment_concluded": 1}
    assert sum(int(s.n) for s in analysis.variant_stats("x") or []) == i


def test_calls_after_an_operators_stop_are_dropped_as_concluded() -> None:
    # docs/metrics.md: a stale assignment's calls after …/stop are experiment_concluded, not
    # unknown_or_not_running_experiment (the docs said the latter), whatever their variant
    rng = random.Random(4)
    analysis = ExperimentAnalysis()
    analysis.track("x", DEFINITION, started_at=0.0)
    analysis.observe(event(1, "A", 0.01, rng), 1)
    analysis.halt("x", analysis_module.OPERATOR_STOP, 2)
    analysis.observe(event(2, "B", 0.01, rng), 3)
    analysis.observe(event(3, "C", 0.01, rng), 3)
    assert analysis.ignored == {"experiment_concluded": 2}
    assert [int(s.n) for s in analysis.variant_stats("x") or []] == [1, 0]


def test_a_variant_that_costs_nothing_is_never_compared_on_cost() -> None:
    # docs/experiments.md, Limits: a free control (cost_usd 0) against a paid variant has no
    # log metric to compare; seen on a stack, 80 calls past min_samples and still running
    rng = random.Random(5)
    analysis = ExperimentAnalysis()
    analysis.track("x", DEFINITION, started_at=0.0)
    calls = [event(i, "AB"[i % 2], 0.0 if i % 2 == 0 else 0.01, rng) for i in range(2000)]
    assert analysis.observe_many(calls, now=1) == []
    assert [int(s.n) for s in analysis.variant_stats("x") or []] == [1000, 1000]
    (conclusion,) = analysis.expire_all(now=1000)
    assert conclusion["winner"] is None and conclusion["status"] == "stopped"


def test_duplicates_unknown_variants_and_unknown_experiments_are_counted_as_ignored() -> None:
    rng = random.Random(1)
    analysis = ExperimentAnalysis()
    analysis.track("x", DEFINITION, started_at=0.0)
    analysis.observe(event(1, "A", 0.01, rng), 1)
    analysis.observe(event(1, "A", 0.01, rng), 1)
    analysis.observe(event(2, "C", 0.01, rng), 1)
    analysis.observe(Tagged("id-3", "other", "A", 0.01, True, 1.0, None), 1)
    assert analysis.ignored == {
        "duplicate_event_id": 1,
        "unknown_variant": 1,
        "unknown_or_not_running_experiment": 1,
    }
    assert [int(s.n) for s in analysis.variant_stats("x") or []] == [1, 0]


def test_past_max_duration_the_experiment_stops_with_no_winner_and_state_round_trips() -> None:
    rng = random.Random(2)
    analysis = ExperimentAnalysis()
    analysis.track("x", DEFINITION, started_at=0.0)
    for i in range(10):
        analysis.observe(event(i, "AB"[i % 2], 0.01, rng), 5)
    restored = ExperimentAnalysis.from_state(analysis.to_state())
    assert restored.to_state() == analysis.to_state()
    assert restored.observe(event(3, "B", 0.01, rng), 6) is None  # still a duplicate
    assert restored.expire_all(99.0) == []
    (stopped,) = restored.expire_all(100.0)
    assert stopped["winner"] is None and stopped["status"] == "stopped"
    assert "max_duration_s" in stopped["reason"]
    results = restored.results("x", DEFINITION)
    assert results["decision"]["winner"] is None
    assert [v["n"] for v in results["variants"]] == [5, 5]


def test_a_batch_decides_at_the_same_event_as_one_event_at_a_time() -> None:
    rng = random.Random(3)
    events = [event(i, "AB"[i % 2], 0.01 if i % 2 == 0 else 0.007, rng) for i in range(3000)]
    one_by_one = ExperimentAnalysis()
    one_by_one.track("x", DEFINITION, started_at=0.0)
    for e in events:
        if one_by_one.observe(e, 1) is not None:
            break
    batched = ExperimentAnalysis()
    batched.track("x", DEFINITION, started_at=0.0)
    (conclusion,) = batched.observe_many(events, 1)
    assert conclusion["winner"] == "B"
    assert conclusion["n"] == [int(s.n) for s in one_by_one.variant_stats("x") or []]
    assert batched.ignored == {"experiment_concluded": 3000 - sum(conclusion["n"])}


def test_an_unpriced_event_is_counted_as_ignored_and_not_in_the_statistics() -> None:
    analysis = ExperimentAnalysis()
    analysis.track("x", DEFINITION, started_at=0.0)
    analysis.observe(Tagged("id-1", "x", "A", None, True, 300.0, 0.9), 1)
    analysis.observe(Tagged("id-2", "x", "B", 0.01, True, 300.0, 0.9), 1)
    assert analysis.ignored == {"unpriced": 1}
    assert [int(s.n) for s in analysis.variant_stats("x") or []] == [0, 1]


def test_results_from_a_snapshot_equal_the_live_results() -> None:
    rng = random.Random(5)
    analysis = ExperimentAnalysis()
    analysis.track("x", DEFINITION, started_at=0.0)
    analysis.observe_many([event(i, "AB"[i % 2], 0.01, rng) for i in range(40)], 1)
    analysis.observe(event(3, "B", 0.01, rng), 1)  # a duplicate
    state = analysis.experiments["x"]
    snapshot = ExperimentState.from_dict(json.loads(json.dumps(state.snapshot())))
    assert "recent_ids" not in state.snapshot()
    assert experiment_results("x", DEFINITION, snapshot) == analysis.results("x", DEFINITION)
    assert analysis.results("x", DEFINITION)["duplicates_dropped"] == 1


def test_tagged_events_round_trip_and_garbage_is_refused() -> None:
    tagged = [
        Tagged("id-1", "x", "B", None, False, 12.5, 0.7),
        event(2, "A", 0.01, random.Random()),
    ]
    assert decode_tagged(encode_tagged(tagged)) == tagged
    for garbage in (b"{}", b"[[1, 2]]", b"[1]", b"not json"):
        with pytest.raises((ValueError, TypeError)):
            decode_tagged(garbage)


@pytest.mark.parametrize(
    ("row", "refusal"),
    [
        ('["e", "x", "B", NaN, true, 1.0, null]', "cost_usd nan is not a finite number >= 0"),
        ('["e", "x", "B", 0.1, true, Infinity, null]', "latency_ms inf is not a finite"),
        ('["e", "x", "B", -0.1, true, 1.0, null]', "cost_usd -0.1 is not a finite number >= 0"),
        (
            '["e", "x", "B", 0.1, true, 1.0, 1.5]',
            "quality 1.5 is not a finite number >= 0 and <= 1",
        ),
    ],
)
def test_a_tagged_number_no_event_could_carry_is_refused_where_the_record_is_parked(
    row, refusal
) -> None:
    # NaN and Infinity parse as JSON; accepted here, the analysis raised on them outside the
    # decoding that parks a bad record: the intake restarted on it for ever
    with pytest.raises(ValueError, match=refusal):
        decode_tagged(f"[{row}]".encode())


def test_an_experiment_decided_before_its_calls_are_replayed_counts_them_up_to_the_record():
    """track_recorded: a replay counts the calls (each once) up to the recorded decision's
    counts, then holds that decision; it reaches none of its own, and expires nothing."""
    rng = random.Random(5)
    calls = [event(i, "AB"[i % 2], 0.01, rng) for i in range(12)]
    decided = conclusions.conclusion_of(
        "x", DEFINITION, "B", "B is cheaper", "2026-12-02T08:00:00+00:00", [4, 4]
    )
    recorded = conclusions.recorded_decision(decided)
    analysis = ExperimentAnalysis()
    assert analysis.track_recorded("x", DEFINITION, 0.0, recorded)
    assert not analysis.track_recorded("x", DEFINITION, 0.0, recorded)  # tracked already
    # past max_duration_s, and a call sent twice: neither ends it early nor counts twice
    assert analysis.observe_many([*calls[:5], calls[2]], now=1e9) == []
    assert analysis.expire_all(now=1e9) == []
    assert [int(s.n) for s in analysis.variant_stats("x") or []] == [3, 2]
    saved = ExperimentAnalysis.from_state(json.loads(json.dumps(analysis.to_state())))
    assert saved.observe_many(calls[5:], now=1e9) == []
    state = saved.experiments["x"]
    assert [int(s.n) for s in state.stats] == [4, 4]
    assert state.conclusion == decided and state.recorded is None
    assert saved.ignored == {"duplicate_event_id": 1, "experiment_concluded": 4}
    assert "recorded" not in state.to_dict() and "recorded" not in state.snapshot()


def test_a_replay_that_starts_after_the_first_calls_counts_no_variant_past_its_record():
    # a log past its retention: the replay begins after A's first calls, so B reaches its
    # recorded count first; B's later calls are not counted into the decided results
    rng = random.Random(7)
    decided = conclusions.conclusion_of(
        "x", DEFINITION, "B", "B is cheaper", "2026-12-02T08:00:00+00:00", [4, 4]
    )
    analysis = ExperimentAnalysis()
    assert analysis.track_recorded("x", DEFINITION, 0.0, conclusions.recorded_decision(decided))
    late = [event(i, v, 0.01, rng) for i, v in enumerate("ABBBBBBA")]
    assert analysis.observe_many(late, now=1.0) == []
    state = analysis.experiments["x"]
    assert [int(s.n) for s in state.stats] == [2, 4]
    assert state.recorded is not None and state.conclusion is None  # A short of its 4
    assert analysis.ignored == {"experiment_concluded": 2}
    # the log holds no more of A's calls: at its end the recorded decision stands as it is
    assert analysis.following_records() == ["x"]
    assert analysis.end_replay("x") == ([2, 4], [4, 4])
    assert state.conclusion == decided and state.recorded is None
    assert analysis.following_records() == [] and analysis.end_replay("x") is None


def test_a_record_followed_by_a_state_an_older_version_halted_is_left_as_it_is():
    # a version before exp0006 loaded a checkpoint following a stop's counts and halted the
    # experiment at its refresh, keeping the record: that conclusion stands
    stop = conclusions.stop_record("2026-12-07T01:00:00+00:00", [4, 4])
    analysis = ExperimentAnalysis()
    assert analysis.track_recorded("x", DEFINITION, 0.0, stop)
    halted = conclusions.conclusion_of(
        "x", DEFINITION, None, conclusions.OPERATOR_STOP, "2026-12-07T01:00:00+00:00", [0, 0]
    )
    analysis.experiments["x"].conclusion = halted
    assert analysis.following_records() == [] and analysis.end_replay("x") is None
    assert analysis.experiments["x"].conclusion == halted


def test_a_recorded_decision_without_counts_is_not_tracked_and_one_with_none_ends_at_once():
    analysis = ExperimentAnalysis()
    decided = conclusions.conclusion_of("x", DEFINITION, None, "max", "2026-12-02", [0, 0])
    old = {k: v for k, v in conclusions.recorded_decision(decided).items() if k != "n"}
    assert not analysis.track_recorded("x", DEFINITION, 0.0, old)  # recorded with no counts
    assert not analysis.track_recorded("x", DEFINITION, 0.0, {**old, "n": [1]})
    assert not analysis.is_tracked("x")
    assert analysis.track_recorded("x", DEFINITION, 0.0, {**old, "n": [0, 0]})
    assert analysis.experiments["x"].conclusion == decided


def gave_up(i: int, variant: str) -> Tagged:
    """The error after which a call assigned to ``variant`` gave up, as stage 1 forwards it."""
    return Tagged(f"gave-up-{i}", "x", variant, 0.0, False, None, None)


def test_a_call_that_gave_up_counts_in_its_variant_as_a_failure_without_a_latency() -> None:
    # Intention-to-treat: every call assigned to a variant counts in it. A give-up is a
    # failure (the success rate and the split see it), costs nothing and has no latency:
    # the p95 is the answered calls' (a give-up counted as 0 ms would lower it).
    rng = random.Random(6)
    analysis = ExperimentAnalysis()
    analysis.track("x", DEFINITION, started_at=0.0)
    calls = [event(i, "B", 0.01, rng) for i in range(19)]
    analysis.observe_many([*calls, gave_up(1, "B"), gave_up(1, "B")], now=1)  # one sent twice
    _, b = analysis.variant_stats("x") or []
    assert (int(b.n), int(b.successes), int(b.quality_n)) == (20, 19, 19)
    assert float(b.cost_sum) == pytest.approx(sum(c.cost_usd or 0 for c in calls))
    assert b.p95_latency_ms() == pytest.approx(500.0, rel=0.05)
    results = analysis.results("x", DEFINITION)
    assert results["variants"][1]["successes"] == 19 and results["duplicates_dropped"] == 1
    assert decode_tagged(encode_tagged([gave_up(2, "A")])) == [gave_up(2, "A")]
    # a quarter of the calls giving up: the rank over every call (20) fell past the 15
    # answered ones, and the p95 read the top bucket
    stats = VariantStats()
    for _ in range(15):
        stats.add(cost_usd=0.01, success=True, latency_ms=100.0, quality=None)
    for _ in range(5):
        stats.add(cost_usd=0.0, success=False, latency_ms=None, quality=None)
    assert stats.p95_latency_ms() == pytest.approx(100.0, rel=0.05)


def test_a_variant_that_gives_up_more_is_stopped_by_its_success_rate() -> None:
    # B is 30 % cheaper on the calls that answered; a fifth of its calls give up. Counting
    # the answered calls only (as before) decided B the winner.
    definition = two_variant_definition(
        max_duration_s=10_000, guardrails={"max_success_rate_drop": 0.05}
    )
    rng = random.Random(7)
    analysis = ExperimentAnalysis()
    analysis.track("x", definition, started_at=0.0)
    conclusion = None
    for i in range(6000):
        variant = "AB"[i % 2]
        if variant == "B" and i % 10 == 1:
            batch = [gave_up(i, "B")]
        else:
            batch = [event(i, variant, 0.01 if variant == "A" else 0.007, rng)]
        conclusions_ = analysis.observe_many(batch, now=1)
        if conclusions_:
            conclusion = conclusions_[0]
            break
    assert conclusion is not None and conclusion["winner"] is None
    assert "max_success_rate_drop" in conclusion["reason"]


def run_cost_experiment(gives_up_every: int | None, *, drop_guardrail: bool = False) -> dict | None:
    """An experiment on the mean cost per call, the success-rate guardrail off (null) unless
    ``drop_guardrail`` (then at its default), the others at their defaults: A and B cost 0.01
    an answered call; B gives up on every ``gives_up_every``-th of its calls (None: never), or
    is 30 % cheaper when it never gives up. Its conclusion, if one came in 6,000 calls."""
    analysis = ExperimentAnalysis()
    guardrails = None if drop_guardrail else {"max_success_rate_drop": None}
    definition = two_variant_definition(max_duration_s=10_000, metric="cost", guardrails=guardrails)
    analysis.track("x", definition, 0.0)
    rng = random.Random(8)
    for i in range(6000):
        variant = "AB"[i % 2]
        if variant == "B" and gives_up_every and (i // 2) % gives_up_every == 0:
            batch = [gave_up(i, "B")]
        else:
            cheaper = variant == "B" and gives_up_every is None
            batch = [event(i, variant, 0.007 if cheaper else 0.01, rng)]
        if concluded := analysis.observe_many(batch, now=1):
            return concluded[0]
    return None


def test_under_the_cost_metric_a_variant_does_not_win_by_giving_up() -> None:
    # a give-up costs 0 and counts in n: B's mean cost per call fell by a third as it failed
    # on a third of its calls, and it won "on cost", no guardrail set to stop it
    assert run_cost_experiment(gives_up_every=3) is None
    # with the success-rate guardrail at its default, the drop stops it with no winner
    stopped = run_cost_experiment(gives_up_every=3, drop_guardrail=True)
    assert stopped is not None and stopped["status"] == "stopped" and stopped["winner"] is None
    assert "max_success_rate_drop" in stopped["reason"]
    # a variant as reliable as the control and cheaper still wins
    decided = run_cost_experiment(gives_up_every=None)
    assert decided is not None and decided["winner"] == "B"


def run_quality_experiment(
    b_quality: float, b_gives_up_every: int, a_gives_up_every: int | None = None
) -> tuple[dict | None, ExperimentAnalysis]:
    """An experiment on ``quality``, ``max_success_rate_drop`` off (null), the other
    guardrails at their defaults: A's answers score about 0.8, B's about ``b_quality``; each
    variant gives up on every ``..._gives_up_every``-th of its calls (None: never). Its
    conclusion if one came in 6,000 calls, and the analysis."""
    analysis = ExperimentAnalysis()
    definition = two_variant_definition(
        max_duration_s=10_000, metric="quality", guardrails={"max_success_rate_drop": None}
    )
    analysis.track("x", definition, 0.0)
    rng = random.Random(9)
    for i in range(6000):
        variant = "AB"[i % 2]
        every = b_gives_up_every if variant == "B" else a_gives_up_every
        if every and (i // 2) % every == 0:
            batch = [gave_up(i, variant)]
        else:
            quality = min(1.0, rng.gauss(b_quality if variant == "B" else 0.8, 0.1))
            batch = [Tagged(f"id-{i}", "x", variant, 0.01, True, 500.0, quality)]
        if concluded := analysis.observe_many(batch, now=1):
            return concluded[0], analysis
    return None, analysis


def test_under_the_quality_metric_a_call_that_gave_up_counts_as_quality_0() -> None:
    # B's answers score 0.9 against A's 0.8, but a third of B's calls give up: per assigned
    # call B delivers 0.6. Averaged over its answers only (as before), B won on quality, no
    # guardrail set to stop it; intention-to-treat, A is the better variant.
    conclusion, analysis = run_quality_experiment(b_quality=0.9, b_gives_up_every=3)
    assert conclusion is not None and conclusion["winner"] == "A"
    a, b = analysis.variant_stats("x") or []
    assert int(a.unrated_failures) == 0 and int(b.unrated_failures) == int(b.n - b.successes)
    assert int(b.unrated_failures) == pytest.approx(int(b.n) / 3, abs=1)
    results = analysis.results("x", analysis.experiments["x"].definition)
    # mean_quality stays the answers' (the guardrail's figure); the interval is per call
    assert results["variants"][1]["mean_quality"] == pytest.approx(0.9, abs=0.02)
    # and the figure the decision compared, with the failures it counted at 0, are shown
    for shown, s in zip(results["variants"], (a, b), strict=True):
        assert shown["quality_per_call"] == pytest.approx(float(metric_value(s, "quality")))
        assert shown["unrated_failures"] == int(s.unrated_failures)
    assert results["variants"][1]["quality_per_call"] == pytest.approx(
        results["variants"][1]["mean_quality"] * (1 - int(b.unrated_failures) / int(b.n))
    )
    assert metric_value(b, "quality") == pytest.approx(0.9 * 2 / 3, abs=0.02)
    low, high = results["variants"][1]["interval"]
    assert low < metric_value(b, "quality") < high < metric_value(a, "quality")
    # an A/A whose variants give up alike stays an A/A: the give-ups lower both the same
    conclusion, analysis = run_quality_experiment(0.8, b_gives_up_every=3, a_gives_up_every=3)
    assert conclusion is None
    for s in analysis.variant_stats("x") or []:
        assert int(s.unrated_failures) == 1000 and int(s.n) == 3000
        assert metric_value(s, "quality") == pytest.approx(0.8 * 2 / 3, abs=0.01)


def test_a_failed_call_that_reports_a_quality_keeps_it_and_old_states_load() -> None:
    # a failed call with a quality counts its quality; a failure without one counts 0;
    # an answered call without one stays out (nothing was scored, something was delivered)
    stats = VariantStats()
    stats.add(cost_usd=0.01, success=False, latency_ms=100.0, quality=0.5)
    stats.add(cost_usd=0.01, success=False, latency_ms=100.0, quality=None)
    stats.add(cost_usd=0.01, success=True, latency_ms=100.0, quality=None)
    stats.add(cost_usd=0.0, success=False, latency_ms=None, quality=None)
    assert (int(stats.quality_n), int(stats.unrated_failures)) == (1, 2)
    assert VariantStats.from_dict(stats.to_dict()) == stats
    # a state saved before the count loads with none: the failures counted before the
    # upgrade stay out of the quality mean, the later ones count 0
    old = {k: v for k, v in stats.to_dict().items() if k != "unrated_failures"}
    assert VariantStats.from_dict(old).unrated_failures == 0
    analysis = ExperimentAnalysis()
    analysis.track("x", DEFINITION, 0.0)
    analysis.observe_many([gave_up(1, "A")], now=1)
    state = json.loads(json.dumps(analysis.to_state()))
    for variant in state["experiments"]["x"]["stats"]:
        del variant["unrated_failures"]
    restored = ExperimentAnalysis.from_state(state)
    assert [int(s.n) for s in restored.variant_stats("x") or []] == [1, 0]
    assert [int(s.unrated_failures) for s in restored.variant_stats("x") or []] == [0, 0]


def test_calls_answered_after_a_fallback_are_counted_per_variant_and_checkpointed() -> None:
    # A call answered on a model other than its variant's (the SDK's fallback) counts in
    # its variant (intention-to-treat) and in the variant's fallbacks, shown in the results;
    # a give-up, or a call whose arm is unknown (forwarded by an older version), is none.
    analysis = ExperimentAnalysis()
    analysis.track("x", DEFINITION, 0.0)
    on_a = Tagged("a1", "x", "A", 0.01, True, 500.0, 0.9, ("p", "big"))
    on_b = Tagged("b1", "x", "B", 0.01, True, 500.0, 0.9, ("p", "small"))
    b_fell_back = Tagged("b2", "x", "B", 0.02, True, 900.0, 0.8, ("p", "big"))
    b_other_provider = Tagged("b3", "x", "B", 0.02, True, 900.0, 0.8, ("q", "small"))
    unknown = Tagged("b4", "x", "B", 0.01, True, 500.0, 0.9)
    batch = [on_a, on_b, b_fell_back, b_other_provider, unknown, gave_up(5, "B"), b_fell_back]
    analysis.observe_many(batch, now=1)
    results = analysis.results("x", DEFINITION)
    assert [(v["n"], v["fallbacks"]) for v in results["variants"]] == [(1, 0), (5, 2)]
    assert results["duplicates_dropped"] == 1  # the fallback sent twice counts once
    state = json.loads(json.dumps(analysis.to_state()))
    restored = ExperimentAnalysis.from_state(state)
    assert [v["fallbacks"] for v in restored.results("x", DEFINITION)["variants"]] == [0, 2]
    snapshot = ExperimentState.from_dict(
        json.loads(json.dumps(analysis.experiments["x"].snapshot()))
    )
    assert [int(s.fallbacks) for s in snapshot.stats] == [0, 2]
    # a checkpoint or snapshot written before the count loads with none
    for variant in state["experiments"]["x"]["stats"]:
        del variant["fallbacks"]
    restored = ExperimentAnalysis.from_state(state)
    assert [v["fallbacks"] for v in restored.results("x", DEFINITION)["variants"]] == [0, 0]


def test_a_call_on_the_variants_arm_spelt_in_another_case_is_no_fallback() -> None:
    # The variant says provider "OpenAI", the agent reports "openai" (as the SDK's own
    # examples do): compared exactly, every call of the variant counted as a fallback.
    definition = build_definition(
        name="e",
        min_samples=50,
        task_type="t",
        variants=[
            {"name": "A", "model": "GPT-4o", "provider": "OpenAI"},
            {"name": "B", "model": "gpt-4o-mini", "provider": "openai"},
        ],
        known_task_types={"t"},
        max_duration_s=100,
    )
    analysis = ExperimentAnalysis()
    analysis.track("x", definition, 0.0)
    batch = [
        Tagged("a1", "x", "A", 0.01, True, 500.0, 0.9, ("openai", "gpt-4o")),
        Tagged("a2", "x", "A", 0.01, True, 500.0, 0.9, (" OPENAI", "GPT-4o ")),
        Tagged("a3", "x", "A", 0.01, True, 500.0, 0.9, ("openai", "gpt-4o-mini")),  # fell back
        Tagged("b1", "x", "B", 0.01, True, 500.0, 0.9, ("OpenAI", "GPT-4o-Mini")),
        # no aliases: another spelling of the model is another model
        Tagged("b2", "x", "B", 0.01, True, 500.0, 0.9, ("openai", "gpt-4o-mini-2024-07-18")),
    ]
    analysis.observe_many(batch, now=1)
    results = analysis.results("x", definition)
    assert [(v["n"], v["fallbacks"]) for v in results["variants"]] == [(3, 1), (2, 1)]

"""The success-rate guardrail is on by default: a treatment that fails most of its calls does
not win on cost per success (a give-up costs 0 and the cost is spread over the successes),
and a confirmed drop stops the experiment with no winner."""

from __future__ import annotations

from finops.experiments.api.routes import ExperimentIn
from finops.experiments.domain.decision import Analysis, AnalysisSettings, analyse
from finops.experiments.domain.definition import Definition, Guardrails, build_definition
from finops.experiments.domain.srm import srm_p_value
from finops.experiments.domain.stats import VariantStats

VARIANTS = [
    {"name": "A", "model": "gpt-4o", "provider": "openai"},
    {"name": "B", "model": "gpt-4o-mini", "provider": "openai"},
]


def calls(answered: int, gave_up: int, cost_usd: float, quality: float) -> VariantStats:
    """A variant's statistics: ``answered`` calls at ``cost_usd`` scoring ``quality``, then
    ``gave_up`` calls that gave up (cost 0, no quality, no latency)."""
    stats = VariantStats()
    for _ in range(answered):
        stats.add(cost_usd=cost_usd, success=True, latency_ms=800.0, quality=quality)
    for _ in range(gave_up):
        stats.add(cost_usd=0.0, success=False, latency_ms=None, quality=None)
    return stats


def review_settings(guardrails: Guardrails | None = None) -> AnalysisSettings:
    """The review's experiment: fixed 50/50 on summarize, ``min_samples`` 10, no guardrail
    options given unless ``guardrails``."""
    definition = build_definition(
        name="summarize-mini",
        task_type="summarize",
        variants=VARIANTS,
        known_task_types={"summarize"},
        min_samples=10,
        guardrails=guardrails,
    )
    return definition.analysis_settings()


def look_at(a: VariantStats, b: VariantStats, settings: AnalysisSettings) -> Analysis:
    srm_p = float(srm_p_value([a.n, b.n], [0.5, 0.5]))
    return analyse(["A", "B"], [a, b], settings, srm_p)


def test_a_variant_failing_most_of_its_calls_does_not_win_under_the_defaults() -> None:
    # the review: A n=10 successes=10; B gave up on 15 of 23 calls (a 429, max_attempts=1),
    # quality per call 0.31; B won on cost_per_success, "guardrails hold", and was pinned
    a = calls(10, 0, cost_usd=0.01, quality=0.9)
    b = calls(8, 15, cost_usd=0.0006, quality=0.89)
    settings = review_settings()
    result = look_at(a, b, settings)
    assert result.verdict is not None
    assert result.verdict.winner is None
    assert "max_success_rate_drop" in result.verdict.reason
    assert result.variants[1].guardrails_ok is False
    assert settings.max_success_rate_drop == 0.05
    # an earlier look, the drop not yet confirmed (B 4 of 10): B does not win, nothing stops
    early = look_at(a, calls(4, 6, cost_usd=0.0006, quality=0.89), settings)
    assert early.verdict is None
    assert early.variants[1].guardrails_ok is False
    # and says why (the results' guardrail_reasons), with no reason for the control
    [reason] = early.variants[1].guardrail_reasons
    assert reason.startswith("success rate drop 0.600 above max_success_rate_drop 0.05, not yet")
    assert reason.endswith(": held back")
    assert early.variants[0].guardrail_reasons == []


def test_the_drop_is_confirmed_with_more_calls_and_stops_the_experiment() -> None:
    # a smaller drop (95 % against 80 %) holds B back at first and stops it once confirmed
    settings = review_settings()
    first = look_at(calls(19, 1, 0.01, 0.9), calls(16, 4, 0.0006, 0.89), settings)
    assert first.verdict is None and first.variants[1].guardrails_ok is False
    later = look_at(calls(380, 20, 0.01, 0.9), calls(320, 80, 0.0006, 0.89), settings)
    assert later.verdict is not None and later.verdict.winner is None
    assert "success rate drop 0.150" in later.verdict.reason


def test_an_explicit_null_keeps_the_success_rate_guardrail_off() -> None:
    a = calls(10, 0, cost_usd=0.01, quality=0.9)
    b = calls(8, 15, cost_usd=0.0006, quality=0.89)
    settings = review_settings(Guardrails(max_success_rate_drop=None))
    assert settings.max_success_rate_drop is None
    result = look_at(a, b, settings)
    assert result.verdict is not None and result.verdict.winner == "B"
    assert result.variants[1].guardrails_ok is True


def test_the_api_tells_a_guardrail_left_out_from_one_given_as_null() -> None:
    body = {"name": "e", "task_type": "summarize", "variants": VARIANTS}
    left_out = ExperimentIn.model_validate(body).guardrails
    assert left_out.max_success_rate_drop == 0.05
    null = ExperimentIn.model_validate({**body, "guardrails": {"max_success_rate_drop": None}})
    assert null.guardrails.max_success_rate_drop is None
    assert Guardrails(**null.guardrails.model_dump()) == Guardrails(max_success_rate_drop=None)
    assert Guardrails(**left_out.model_dump()) == Guardrails()
    # a definition stored before the default holds its null, and reads back with it
    stored = build_definition(
        name="e",
        task_type="summarize",
        variants=VARIANTS,
        known_task_types={"summarize"},
        guardrails=Guardrails(max_success_rate_drop=None),
    ).to_dict()
    assert stored["guardrails"]["max_success_rate_drop"] is None
    assert Definition.from_dict(stored).analysis_settings().max_success_rate_drop is None


def test_a_stop_for_a_broken_guardrail_names_only_what_is_broken() -> None:
    """A treatment whose success-rate drop is confirmed while its quality ratio is only held
    back: the stop's reason names the drop, not the quality (not confirmed), which the
    results' guardrail_reasons still show."""
    settings = review_settings()
    a = calls(380, 20, 0.01, 0.9)
    b = VariantStats()
    for i in range(400):
        if i < 320:
            # B's qualities alternate to a mean of 0.84 (ratio 0.933 < 0.95), too spread to
            # confirm at this size
            b.add(cost_usd=0.0006, success=True, latency_ms=800.0, quality=0.98 if i % 2 else 0.7)
        else:
            b.add(cost_usd=0.0, success=False, latency_ms=None, quality=None)
    result = look_at(a, b, settings)
    assert result.verdict is not None and result.verdict.winner is None
    assert "success rate drop 0.150" in result.verdict.reason
    assert "quality ratio" not in result.verdict.reason
    assert any(
        "quality ratio" in r and "held back" in r for r in result.variants[1].guardrail_reasons
    )

"""The rules of an experiment definition and its life cycle."""

from __future__ import annotations

import pytest

from finops.experiments.domain.definition import (
    AlphaOutOfRange,
    Definition,
    InvalidTransition,
    WeightsDoNotSumToOne,
    build_definition,
    transition,
)

VARIANTS = [
    {"name": "A", "model": "gpt-4o", "provider": "openai"},
    {"name": "B", "model": "gpt-4o-mini", "provider": "openai", "config": {"temperature": 0}},
]


def test_weights_left_out_mean_an_equal_split_and_the_definition_round_trips() -> None:
    d = build_definition(
        name="e", task_type="t", variants=VARIANTS, known_task_types={"t"}, alpha=0.5
    )
    assert d.weights == [0.5, 0.5] and d.variant_names == ["A", "B"]
    assert d.variants[1].config == {"temperature": 0}
    assert Definition.from_dict(d.to_dict()) == d
    assert d.analysis_settings().alpha == 0.5 and d.analysis_settings().min_quality_ratio == 0.95


def test_some_weights_given_negative_weights_or_alpha_at_zero_are_refused() -> None:
    partly = [{**VARIANTS[0], "weight": 1.0}, VARIANTS[1]]
    with pytest.raises(WeightsDoNotSumToOne):
        build_definition(name="e", task_type="t", variants=partly, known_task_types={"t"})
    negative = [{**VARIANTS[0], "weight": 1.5}, {**VARIANTS[1], "weight": -0.5}]
    with pytest.raises(WeightsDoNotSumToOne):
        build_definition(name="e", task_type="t", variants=negative, known_task_types={"t"})
    with pytest.raises(AlphaOutOfRange):
        build_definition(
            name="e", task_type="t", variants=VARIANTS, known_task_types={"t"}, alpha=0.0
        )


def test_only_drafts_start_and_only_drafts_or_running_experiments_stop() -> None:
    assert transition("start", "draft") == "running"
    assert transition("stop", "running") == "stopped"
    for status in ("running", "stopped", "decided"):
        with pytest.raises(InvalidTransition):
            transition("start", status)
    for status in ("stopped", "decided"):
        with pytest.raises(InvalidTransition):
            transition("stop", status)

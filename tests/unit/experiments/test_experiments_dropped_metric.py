"""The analysis counts the tagged events it drops on ``finops_experiments_events_dropped_total``,
per reason, by what each batch adds to the domain's checkpointed drop counts."""

from __future__ import annotations

import time
from types import SimpleNamespace

from prometheus_client import REGISTRY
from stream_fakes import analysis_intake, two_variant_definition

from finops.experiments.domain.analysis import DROP_REASONS, ExperimentAnalysis
from finops.experiments.domain.tagged import Tagged, encode_tagged

METRIC = "finops_experiments_events_dropped_total"
DEFINITION = two_variant_definition(max_duration_s=3600)


def _record(*events: Tagged) -> SimpleNamespace:
    return SimpleNamespace(value=encode_tagged(events), headers=())


def _dropped() -> dict[str, float]:
    return {r: REGISTRY.get_sample_value(METRIC, {"reason": r}) or 0.0 for r in DROP_REASONS}


def _added(before: dict[str, float]) -> dict[str, float]:
    return {r: n - before[r] for r, n in _dropped().items() if n != before[r]}


def _call(event_id: str, experiment_id: str = "x", variant: str = "A") -> Tagged:
    return Tagged(event_id, experiment_id, variant, 0.01, True, 500.0, 0.9)


async def test_each_dropped_event_is_counted_once_under_its_reason() -> None:
    intake = analysis_intake()
    shard = ExperimentAnalysis()
    shard.track("x", DEFINITION, started_at=time.time())  # running, not expired
    start = _dropped()

    await intake.handle(
        0,
        shard,
        [
            _record(_call("id-1"), _call("id-1"), _call("id-2", variant="C")),
            _record(_call("id-3", experiment_id="never-started"), _call("id-4")),
        ],
    )
    assert _added(start) == {
        "duplicate_event_id": 1,
        "unknown_variant": 1,
        "unknown_or_not_running_experiment": 1,
    }

    # a second batch adds only its own drops, not the shard's running totals again
    second = _dropped()
    await intake.handle(0, shard, [_record(_call("id-1"), _call("id-4"), _call("id-5"))])
    assert _added(second) == {"duplicate_event_id": 2}
    assert shard.ignored == {
        "duplicate_event_id": 3,
        "unknown_variant": 1,
        "unknown_or_not_running_experiment": 1,
    }


def test_every_reason_is_exported_before_any_drop() -> None:
    for reason in DROP_REASONS:
        assert REGISTRY.get_sample_value(METRIC, {"reason": reason}) is not None

"""The analysis counts the tagged events it drops on ``finops_experiments_events_dropped_total``,
per reason, by what each batch adds to the domain's checkpointed drop counts; a record's
optional arms header that does not decode drops nothing."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY
from stream_fakes import KeptProducer, analysis_intake, two_variant_definition

from finops.experiments.domain.analysis import DROP_REASONS, ExperimentAnalysis
from finops.experiments.domain.tagged import ARMS_HEADER, Tagged, encode_tagged

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


@pytest.mark.parametrize(
    "header",
    [
        b'[["p", "small"]]',  # one arm for two events
        b'[["p", "small", "eu-west"], ["p", "big", "eu-west"]]',  # a later forwarder's third field
        b'[["p", 1], null]',
        b"not json",
        b"\xff\xfe",
    ],
)
async def test_a_record_whose_arms_header_does_not_decode_is_counted_with_no_arms(
    header: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    # The header is optional information (an older analysis ignores it): the whole record
    # went to the dead-letter topic, its calls never counted.
    producer = KeptProducer()
    intake = analysis_intake()
    intake.producer = producer
    shard = ExperimentAnalysis()
    shard.track("x", DEFINITION, started_at=time.time())
    events = (_call("id-1", variant="B"), _call("id-2", variant="B"))
    record = SimpleNamespace(
        topic="finops.experiment-events.v1",
        partition=0,
        offset=7,
        key=None,
        timestamp=0,
        value=encode_tagged(events),
        headers=[(ARMS_HEADER, header)],
    )
    with caplog.at_level(logging.WARNING):
        await intake.handle(0, shard, [record])
    assert producer.sent == []
    results = shard.results("x", DEFINITION)
    assert [(v["n"], v["fallbacks"]) for v in results["variants"]] == [(0, 0), (2, 0)]
    assert f"{ARMS_HEADER} header ignored" in caplog.text

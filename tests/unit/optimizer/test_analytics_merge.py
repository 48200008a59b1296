"""SpendAnalytics.merged (analytics/merge.py): the merge of analytics that saw disjoint events
(split by task type) answers like one instance fed every event (see merge_streams.py)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from merge_streams import T0, TASK_TYPES, fed, random_call, split_by_task_type

from finops.common.events import LlmCallEvent
from finops.optimizer.domain.aggregates import DIMENSIONS, FLEET
from finops.optimizer.domain.analytics import SpendAnalytics
from finops.optimizer.domain.windows import GRANULARITIES

RETAIN = {"minute": 7, "hour": 5, "day": 2}
#: the schema accepts it; its windows would end after year 9999 (counted out of range)
FAR_FUTURE = "9999-12-31T23:00:00-05:00"


def random_stream(rng: random.Random, n: int, in_order: bool) -> list[LlmCallEvent]:
    """``n`` calls over about three days (minutes apart, with bursts), a few redelivered and,
    unless ``in_order``, shuffled locally (late by up to a few hours) with one far-future call."""
    seconds = sorted(rng.randrange(0, 3 * 86400) for _ in range(n))
    events = [random_call(rng, T0 + timedelta(seconds=s)) for s in seconds]
    for _ in range(n // 20):  # redeliveries, right after the original
        i = rng.randrange(len(events))
        events.insert(i + 1, events[i])
    if not in_order:
        events.insert(rng.randrange(len(events)), random_call(rng, FAR_FUTURE))
        for _ in range(n // 4):  # an event overtaken by up to 40 later ones
            i = rng.randrange(len(events))
            j = min(len(events) - 1, i + rng.randrange(1, 40))
            events[i], events[j] = events[j], events[i]
    return events


def analytics_answers(sa: SpendAnalytics) -> dict[str, Any]:
    """Every query answer of ``sa`` except the dedupe and late-for-windows figures."""
    summary = sa.summary()
    summary.pop("dedupe")
    summary.pop("late_for_windows")
    answers: dict[str, Any] = {"summary": summary}
    for dim in (FLEET, *DIMENSIONS):
        answers[f"totals {dim}"] = sa.totals(dim)
        for g in GRANULARITIES:
            answers[f"window {dim} {g}"] = sa.window(dim, g, limit=1000)
    for dim in DIMENSIONS:
        answers[f"keys {dim}"] = sa.keys(dim)
        answers[f"top-k {dim}"] = sa.top_k_with_other(dim, k=2)
        for by in ("spend_usd", "calls", "latency_p95_ms", "quality_mean"):
            for g in (None, *GRANULARITIES):
                answers[f"top {dim} {by} {g}"] = sa.top(dim, by=by, n=3, granularity=g)
    return answers


@pytest.mark.parametrize("in_order", [True, False], ids=["in-order", "shuffled"])
@pytest.mark.parametrize("seed", range(12))
def test_merged_analytics_answer_like_one_instance_fed_every_event(seed, in_order):
    rng = random.Random(seed)
    events = random_stream(rng, rng.randrange(50, 400), in_order)
    parts = split_by_task_type(rng, events, parts=2 + seed % 3)

    def make() -> SpendAnalytics:
        return SpendAnalytics(retain=RETAIN)

    whole = fed(make, SpendAnalytics.observe, events)
    merged = SpendAnalytics.merged(fed(make, SpendAnalytics.observe, part) for part in parts)

    assert analytics_answers(merged) == analytics_answers(whole)
    assert merged.summary()["dedupe"]["remembered"] == 0
    late_whole = whole.summary()["late_for_windows"]
    late_merged = merged.summary()["late_for_windows"]
    if in_order:
        assert late_merged == late_whole == dict.fromkeys(GRANULARITIES, 0)
    else:  # a lower bound: the parts do not see each other's later events
        assert all(late_merged[g] <= late_whole[g] for g in GRANULARITIES)


def test_the_streams_exercise_eviction_lateness_duplicates_and_out_of_range():
    """The property above is not vacuous: the shuffled streams evict windows, count late,
    duplicate and out-of-range events."""
    rng = random.Random(7)
    events = random_stream(rng, 300, in_order=False)
    whole = fed(lambda: SpendAnalytics(retain=RETAIN), SpendAnalytics.observe, events)
    summary = whole.summary()
    assert summary["duplicates"] >= 1
    assert summary["out_of_range_for_windows"] == 1
    assert summary["late_for_windows"]["minute"] >= 1
    for g, size in GRANULARITIES.items():  # every granularity evicted windows
        starts = {int(e.time.timestamp()) // size for e in events if e.time.year < 9999}
        assert summary["windows"][g] < len(starts)
    assert len({e.data.task_type for e in events}) == len(TASK_TYPES)


def test_merging_no_part_gives_empty_analytics():
    merged = SpendAnalytics.merged([])
    assert merged.summary()["events"] == 0
    assert merged.totals(FLEET) == []


def test_merging_parts_with_different_retention_is_refused():
    with pytest.raises(ValueError, match="different window retention"):
        SpendAnalytics.merged([SpendAnalytics(retain={"minute": 5}), SpendAnalytics()])


def test_the_merge_leaves_its_parts_unchanged():
    rng = random.Random(3)
    events = random_stream(rng, 120, in_order=True)
    parts = [
        fed(lambda: SpendAnalytics(retain=RETAIN), SpendAnalytics.observe, p)
        for p in split_by_task_type(rng, events, parts=2)
    ]
    before = [p.to_state() for p in parts]
    merged = SpendAnalytics.merged(parts)
    merged.observe(random_call(rng, T0))  # the merge shares no aggregate with the parts
    assert [p.to_state() for p in parts] == before

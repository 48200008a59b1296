"""Merged optimizer aggregates (analytics_merge.py, burn_merge.py, BudgetTracker.merged):
the merge of parts that saw disjoint events (split by task type) answers like one instance fed
every event.

Costs are multiples of 1/1024 USD and qualities multiples of 1/8, so float sums are exact in any
order and the figures can be compared for equality.
"""

from __future__ import annotations

import doctest
import math
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from finops.common.events import LlmCallEvent, llm_call_event
from finops.optimizer.domain import analytics_merge as analytics_merge_mod
from finops.optimizer.domain import burn_merge as burn_merge_mod
from finops.optimizer.domain.aggregates import DIMENSIONS, FLEET
from finops.optimizer.domain.analytics import SpendAnalytics
from finops.optimizer.domain.budgets import Budget, BudgetTracker
from finops.optimizer.domain.burn_rate import HOUR, ewma_alpha
from finops.optimizer.domain.windows import GRANULARITIES

T0 = datetime(2025, 3, 1, tzinfo=UTC)
TASK_TYPES = ("qa", "code", "search", "summarise", "chat", "extract")
AGENT_TEAM = {"bot": "search", "crawler": "search", "writer": "support", "triage": None}
RETAIN = {"minute": 7, "hour": 5, "day": 2}
#: the schema accepts it; its windows would end after year 9999 (counted out of range)
FAR_FUTURE = "9999-12-31T23:00:00-05:00"

_Fed = TypeVar("_Fed")


def random_call(
    rng: random.Random,
    when: datetime | str,
    agent: str | None = None,
    task_type: str | None = None,
) -> LlmCallEvent:
    """A call at ``when`` of ``agent`` (in its team) for ``task_type`` (random when None)."""
    output_tokens = rng.randrange(0, 500)
    agent = agent or rng.choice(sorted(AGENT_TEAM))
    return LlmCallEvent.model_validate(
        llm_call_event(
            {
                "agent_id": agent,
                "team": AGENT_TEAM[agent],
                "task_type": task_type or rng.choice(TASK_TYPES),
                "provider": rng.choice(("openai", "anthropic")),
                "model": rng.choice(("small", "medium", "large")),
                "usage": {
                    "input_tokens": rng.randrange(50, 2000),
                    "output_tokens": output_tokens,
                    "cached_input_tokens": rng.randrange(0, 50),
                    "reasoning_tokens": rng.randrange(0, output_tokens + 1),
                },
                "cost_usd": None if rng.random() < 0.05 else rng.randrange(0, 64) / 1024,
                "latency_ms": float(rng.randrange(1, 20_000)),
                "success": rng.random() < 0.8,
                "quality": None if rng.random() < 0.3 else rng.randrange(0, 9) / 8,
            },
            time=when,
            event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
        )
    )


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


def split_by_task_type(
    rng: random.Random, events: list[LlmCallEvent], parts: int
) -> list[list[LlmCallEvent]]:
    """The events of each task type go to one (random) part; each part keeps stream order."""
    owner = {t: rng.randrange(parts) for t in TASK_TYPES}
    split: list[list[LlmCallEvent]] = [[] for _ in range(parts)]
    for e in events:
        split[owner[e.data.task_type]].append(e)
    return split


def fed(
    make: Callable[[], _Fed], feed: Callable[[_Fed, LlmCallEvent], Any], events: list[LlmCallEvent]
) -> _Fed:
    """A new instance fed ``events`` in order."""
    instance = make()
    for e in events:
        feed(instance, e)
    return instance


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


@pytest.mark.parametrize("module", [analytics_merge_mod, burn_merge_mod])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# ---------------------------------------------------------------------------- budgets
BUDGETS = [
    Budget("bot-day", "agent", "bot", "day", 1.0),
    Budget("crawler-day", "agent", "crawler", "day", 0.75, alert_thresholds=(0.5, 0.8, 1.0)),
    Budget("writer-day", "agent", "writer", "day", 3.0),
    Budget("triage-month", "agent", "triage", "month", 2.0),
    Budget("search-day", "team", "search", "day", 1.5),
    Budget("support-month", "team", "support", "month", 4.0),
]
#: the stream lasts 2.5 days: the last call is around noon, so an hour later is the same day
STREAM_S = int(2.5 * 86400)


def budget_stream(rng: random.Random, n: int, same_start: bool) -> list[LlmCallEvent]:
    """``n`` calls in time order at distinct seconds; with ``same_start`` every agent first
    calls at ``T0`` for every task type (so every part starts at the same time)."""
    seconds = sorted(rng.sample(range(1, STREAM_S), n))
    events = [random_call(rng, T0 + timedelta(seconds=s)) for s in seconds]
    if same_start:
        events[:0] = [random_call(rng, T0, a, t) for a in AGENT_TEAM for t in TASK_TYPES]
    return events


def split_trackers(
    rng: random.Random, events: list[LlmCallEvent]
) -> tuple[BudgetTracker, list[BudgetTracker], list[list[LlmCallEvent]]]:
    """One tracker fed every event, trackers fed a part each, and the parts."""
    parts = split_by_task_type(rng, events, parts=2 + rng.randrange(3))
    whole = fed(lambda: BudgetTracker(BUDGETS), BudgetTracker.observe, events)
    return (
        whole,
        [fed(lambda: BudgetTracker(BUDGETS), BudgetTracker.observe, part) for part in parts],
        parts,
    )


def trackers(
    rng: random.Random, events: list[LlmCallEvent]
) -> tuple[BudgetTracker, BudgetTracker, list[list[LlmCallEvent]]]:
    """One tracker fed every event, the merge of trackers fed a part each, and the parts."""
    whole, part_trackers, parts = split_trackers(rng, events)
    return whole, BudgetTracker.merged(part_trackers), parts


def an_hour_after(events: list[LlmCallEvent]) -> float:
    """The start of the hour after the last call's: the views close their current hour."""
    last = max(e.time.timestamp() for e in events)
    return math.floor(last / HOUR) * HOUR + HOUR


def assert_close(got: Any, want: Any, path: str = "") -> None:
    """Equal, floats up to rounding (the EWMAs are summed in another order)."""
    if isinstance(want, dict):
        assert got.keys() == want.keys(), path
        for k in want:
            assert_close(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, float) and isinstance(got, float):
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), (path, got, want)
    else:
        assert got == want, path


def thresholds_fired(status: dict[str, Any]) -> list[str]:
    return [label for label in status["alerts_fired"] if label != "forecast"]


def assert_answers_alike(got: BudgetTracker, want: BudgetTracker, at: float | None) -> None:
    """Statuses, pacing and due alerts equal (floats up to rounding; of the fired alerts,
    the thresholds)."""
    for want_status, got_status in zip(want.statuses(at), got.statuses(at), strict=True):
        assert thresholds_fired(got_status) == thresholds_fired(want_status)
        want_status.pop("alerts_fired"), got_status.pop("alerts_fired")
        assert_close(got_status, want_status)
    for agent, team in AGENT_TEAM.items():
        assert_close(got.pacing_for(agent, team, at), want.pacing_for(agent, team, at))
    due = [(a.alert_id, a.details["threshold"]) for a in got.due_alerts(at)]
    assert due == [(a.alert_id, a.details["threshold"]) for a in want.due_alerts(at)]


@pytest.mark.parametrize("same_start", [True, False], ids=["parts-start-together", "apart"])
@pytest.mark.parametrize("seed", range(12))
def test_merged_budgets_answer_like_one_tracker_fed_every_event_in_time_order(seed, same_start):
    rng = random.Random(seed)
    events = budget_stream(rng, rng.randrange(100, 500), same_start)
    whole, parts, _ = split_trackers(rng, events)
    merged = BudgetTracker.merged(parts)
    for at in (None, an_hour_after(events)):
        assert_answers_alike(merged, whole, at)
    # a merge of merges is the same merge
    assert_answers_alike(
        BudgetTracker.merged([BudgetTracker.merged(parts[:2]), *parts[2:]]), whole, None
    )


def warm_up_bound(
    b: Budget, parts: list[list[LlmCallEvent]], events: list[LlmCallEvent], at: float
) -> tuple[float, float]:
    """The bound of burn_merge.py on the error of the merged burn rate and call rate of ``b``
    (per hour) at ``at``: per part, its first hour's spend (calls) weighted by the decay since
    over the shorter of its and the union's first observed span."""

    def mine(stream: list[LlmCallEvent]) -> list[LlmCallEvent]:
        subject = {"agent": lambda e: e.data.agent_id, "team": lambda e: e.data.team}[b.scope]
        return [e for e in stream if subject(e) == b.subject]

    def first_hour(stream: list[LlmCallEvent]) -> tuple[float, float, list[LlmCallEvent]]:
        first = min(e.time.timestamp() for e in stream)
        hour = math.floor(first / HOUR) * HOUR
        observed = max(hour + HOUR - first, 60.0)
        return hour, observed, [e for e in stream if e.time.timestamp() < hour + HOUR]

    _, observed_union, _ = first_hour(mine(events))
    decay = 1.0 - ewma_alpha(3.0 if b.period == "day" else 24.0)
    usd = calls = 0.0
    for part in map(mine, parts):
        if part:
            hour, observed, calls_in_it = first_hour(part)
            weight = decay ** ((at - hour) / HOUR - 1) / min(observed, observed_union)
            usd += weight * sum(e.data.cost_usd or 0.0 for e in calls_in_it)
            calls += weight * len(calls_in_it)
    return usd * HOUR, calls * HOUR


def without_first_hours(tracker: BudgetTracker) -> BudgetTracker:
    """``tracker`` as restored from a checkpoint written before the first hour was kept."""
    state = tracker.to_state()
    state["states"] = {bid: packed[:-1] for bid, packed in state["states"].items()}
    return BudgetTracker.from_state(state)


@pytest.mark.parametrize("seed", range(12))
def test_merged_legacy_budget_states_are_exact_in_spend_and_within_the_warm_up_bound(seed):
    """Parts restored from states that do not know their first hour: the EWMAs are summed
    as they are, off by at most each part's warm-up (the bound of burn_merge.py)."""
    rng = random.Random(1000 + seed)
    events = budget_stream(rng, rng.randrange(100, 500), same_start=False)
    whole, part_trackers, parts = split_trackers(rng, events)
    merged = BudgetTracker.merged(map(without_first_hours, part_trackers))
    at = an_hour_after(events)
    burn_errors = []
    for b in BUDGETS:
        want, got = whole.status(b.id, at), merged.status(b.id, at)
        for exact in ("period_start", "spend_usd", "calls", "used_fraction", "late_events"):
            assert got[exact] == want[exact], exact
        assert thresholds_fired(got) == thresholds_fired(want)
        usd_bound, calls_bound = warm_up_bound(b, parts, events, at)
        left_s = datetime.fromisoformat(want["period_end"]).timestamp() - at
        assert left_s > 0
        burn_errors.append(abs(got["burn_rate_usd_per_hour"] - want["burn_rate_usd_per_hour"]))
        assert burn_errors[-1] <= usd_bound + 1e-12
        assert abs(got["calls_per_hour"] - want["calls_per_hour"]) <= calls_bound + 1e-9
        forecast_error = abs(got["forecast_usd"] - want["forecast_usd"])
        assert forecast_error <= usd_bound * left_s / HOUR + 1e-9
    assert max(burn_errors) > 1e-6  # the warm-up shows (the month budgets' half-life is 24 h)


@pytest.mark.parametrize("seed", range(6))
def test_merged_budget_spend_is_exact_whatever_the_order_and_late_a_lower_bound(seed):
    rng = random.Random(2000 + seed)
    events = budget_stream(rng, 300, same_start=False)
    for _ in range(100):  # an event overtaken by up to 300 later ones (hours late)
        i = rng.randrange(len(events))
        j = min(len(events) - 1, i + rng.randrange(1, 300))
        events[i], events[j] = events[j], events[i]
    whole, merged, _ = trackers(rng, events)
    late = 0
    for want, got in zip(whole.statuses(), merged.statuses(), strict=True):
        for exact in ("period_start", "spend_usd", "calls", "used_fraction"):
            assert got[exact] == want[exact], exact
        assert got["late_events"] <= want["late_events"]
        late += want["late_events"]
    assert late > 0  # the shuffle made some events late for their period


def test_due_alerts_have_the_ids_one_tracker_fired_and_skip_those_already_emitted():
    rng = random.Random(5)
    events = budget_stream(rng, 400, same_start=True)
    _, merged, _ = trackers(rng, events)
    due = merged.due_alerts()
    assert {a.details["budget_id"] for a in due} >= {"bot-day", "crawler-day"}
    assert merged.due_alerts(emitted={a.alert_id for a in due}) == []
    assert merged.due_alerts(emitted={due[0].alert_id}) == due[1:]
    assert merged.due_alerts() == due  # a query: nothing is marked fired
    one = BudgetTracker(BUDGETS)
    fired_by_one = {a.alert_id for e in events for a in one.observe(e)}
    thresholds_due = {a.alert_id for a in due if a.details["alert_type"] == "threshold"}
    assert thresholds_due  # the ids one tracker fed every event fired as they were crossed
    assert thresholds_due <= fired_by_one


def test_merged_budgets_use_the_first_parts_definitions_and_skip_stale_states():
    t0 = T0.timestamp()
    old = Budget("b", "agent", "bot", "day", 1.0)
    moved = Budget("b", "agent", "writer", "day", 2.0)  # a change one part has not applied yet
    qa, code = BudgetTracker([moved]), BudgetTracker([old])
    qa.observe_cost("agent", "writer", t0, 0.25)
    code.observe_cost("agent", "bot", t0, 0.5)
    merged = BudgetTracker.merged([qa, code])
    status = merged.status("b")
    assert status["budget"] == moved.to_dict()
    assert (status["spend_usd"], status["calls"]) == (0.25, 1)
    assert BudgetTracker.merged([]).statuses() == []

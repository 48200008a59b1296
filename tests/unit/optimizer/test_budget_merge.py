"""BudgetTracker.merged and BudgetTracker.due_alerts (burn_merge.py): the merge of trackers that
saw disjoint events (split by task type) answers like one tracker fed every event (see
merge_streams.py)."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from typing import Any

import pytest
from merge_streams import AGENT_TEAM, T0, TASK_TYPES, fed, random_call, split_by_task_type

from finops.common.events import LlmCallEvent
from finops.optimizer.domain.budgets import Budget, BudgetTracker
from finops.optimizer.domain.burn_rate import HOUR, BurnState, FirstHour, ewma_alpha

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


def test_due_alerts_have_the_ids_one_tracker_fired_and_are_a_query():
    rng = random.Random(5)
    events = budget_stream(rng, 400, same_start=True)
    _, merged, _ = trackers(rng, events)
    due = merged.due_alerts()
    assert {a.details["budget_id"] for a in due} >= {"bot-day", "crawler-day"}
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


def test_a_burn_state_keeps_its_first_hour_through_pack_and_unpacks_a_first_version_state():
    st = BurnState(0.0, 86400.0)
    for ts, cost in ((600.0, 1.0), (1200.0, 0.5), (4000.0, 2.0)):
        st.roll_hour(0.2, ts)
        st.add(ts, cost, 1)
    assert st.first_hour == FirstHour(0.0, 1.5, 2, 3000.0)  # observed from 00:10 to 01:00
    assert BurnState.unpack(st.pack()).first_hour == st.first_hour
    first_version = st.pack()[:-1]
    legacy = BurnState.unpack(first_version)
    assert legacy.first_hour is None
    assert legacy.pack() == [*first_version, None]

"""Budgets (alerts, forecast, pacing, alert ids) and per-agent spend anomalies."""

from __future__ import annotations

import itertools
import json
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from finops.common.events import LlmCallEvent, llm_call_event
from finops.optimizer.domain.anomaly import SpendAnomalyDetector, SpendSpikeScorer
from finops.optimizer.domain.budgets import (
    Budget,
    BudgetTracker,
    alert_id,
    period_bounds,
)

T0 = datetime(2025, 3, 1, tzinfo=UTC)  # a Saturday, 00:00 UTC


def at(hours: float = 0.0, minutes: float = 0.0) -> datetime:
    return T0 + timedelta(hours=hours, minutes=minutes)


def call(agent: str, cost: float | None, when: datetime, team: str | None = None) -> LlmCallEvent:
    return LlmCallEvent.model_validate(
        llm_call_event(
            {
                "agent_id": agent,
                "team": team,
                "task_type": "qa",
                "provider": "openai",
                "model": "gpt-4o-mini",
                "usage": {"input_tokens": 100, "output_tokens": 10},
                "cost_usd": cost,
                "latency_ms": 300.0,
                "success": True,
            },
            time=when,
        )
    )


def steady(
    bt: BudgetTracker,
    usd_per_hour: float,
    hours: float,
    start: float = 0.0,
    every_min: int = 10,
    subject: str = "bot",
    scope: str = "agent",
):
    """Spend evenly: one call every `every_min` minutes; returns all alerts."""
    alerts = []
    per_call = usd_per_hour * every_min / 60
    minute = 0
    while minute < hours * 60:
        alerts += bt.observe_cost(scope, subject, at(start, minute), per_call)
        minute += every_min
    return alerts


# ---------------------------------------------------------------------------- budgets
def test_budget_validation_and_period_bounds():
    with pytest.raises(ValueError):
        Budget("b", "org", "x", "day", 10)
    with pytest.raises(ValueError):
        Budget("b", "team", "x", "week", 10)
    with pytest.raises(ValueError):
        Budget("b", "team", "x", "day", 0)
    b = Budget("b", "team", "x", "month", 10, alert_thresholds=(1.0, 0.5, 0.8))
    assert b.alert_thresholds == (0.5, 0.8, 1.0)
    assert Budget.from_dict(b.to_dict()) == b
    s, e = period_bounds("month", datetime(2024, 2, 10, tzinfo=UTC).timestamp())
    assert (e - s) / 86400 == 29  # leap February
    s, e = period_bounds("day", at(23, 59).timestamp())
    assert s == T0.timestamp() and e - s == 86400


def test_a_monthly_budget_in_december_9999_is_tracked_and_reported():
    bt = BudgetTracker()
    bt.set_budget(Budget("b", "agent", "bot", "month", 10.0))
    december = datetime(9999, 12, 30, 12, tzinfo=UTC)
    s, e = period_bounds("month", december.timestamp())
    assert (s, (e - s) / 86400) == (datetime(9999, 12, 1, tzinfo=UTC).timestamp(), 31)
    bt.observe(call("bot", 9.0, december))
    status = bt.status("b")
    assert (status["spend_usd"], status["calls"]) == (9.0, 1)
    assert status["period_start"] == "9999-12-01T00:00:00Z"
    # 10000-01-01 is past what datetime shows: the end is shown as its last second
    assert status["period_end"] == "9999-12-31T23:59:59Z"
    assert bt.pacing("b")["action"] in ("none", "step_down", "exhausted")


def test_80_then_100_percent_alerts_fire_once_each_per_period_and_reset():
    bt = BudgetTracker([Budget("b1", "agent", "bot", "day", 10.0)])
    fired = []
    for i in range(15):  # $1 per hour: 80 % at the 8th call, 100 % at the 10th
        for a in bt.observe_cost("agent", "bot", at(i), 1.0):
            if a.details["alert_type"] == "threshold":
                fired.append((i, a.details["threshold"], a.severity, a.details["spend_usd"]))
    assert fired == [(7, 0.8, "warning", 8.0), (9, 1.0, "critical", 10.0)]
    assert bt.status("b1")["alerts_fired"][-2:] == ["0.8", "1"]

    # next day: a new period, both alerts once more, with new ids
    day2 = []
    for i in range(12):
        day2 += bt.observe_cost("agent", "bot", at(24 + i), 1.0)
    th = [a for a in day2 if a.details["alert_type"] == "threshold"]
    assert [(a.details["threshold"], a.details["period_start"]) for a in th] == [
        (0.8, "2025-03-02T00:00:00Z"),
        (1.0, "2025-03-02T00:00:00Z"),
    ]
    assert bt.status("b1")["spend_usd"] == 12.0

    # a single big call crossing both thresholds gives both, in order
    bt2 = BudgetTracker([Budget("b2", "agent", "bot", "day", 10.0)])
    assert [
        a.details["threshold"]
        for a in bt2.observe_cost("agent", "bot", at(1), 25.0)
        if a.details["alert_type"] == "threshold"
    ] == [0.8, 1.0]

    # a late event of a finished period changes nothing
    assert bt.observe_cost("agent", "bot", at(20), 100.0) == []
    assert bt.status("b1")["spend_usd"] == 12.0 and bt.status("b1")["late_events"] == 1


def test_a_budget_replaced_with_a_higher_limit_fires_its_thresholds_again_under_new_ids():
    # The walkthrough's case: a $0.001 budget fired all three alerts; raised to $0.06 with
    # the spend at 69 % of it, it said 0.8 and 1 had fired, and never alerted again.
    bt = BudgetTracker([Budget("b1", "agent", "bot", "day", 10.0)])
    first = [a for h in range(12) for a in bt.observe_cost("agent", "bot", at(h), 1.0)]
    assert bt.status("b1")["alerts_fired"] == ["forecast", "0.8", "1"]
    bt.set_budget(Budget("b1", "agent", "bot", "day", 20.0))
    # $12 is under 80 % of $20; $1 an hour still forecasts $24 for the day
    assert bt.status("b1")["alerts_fired"] == ["forecast"]
    again = [a for h in range(12, 24) for a in bt.observe_cost("agent", "bot", at(h), 1.0)]
    thresholds = [
        (a.details["threshold"], a.details["limit_usd"], a.details["spend_usd"])
        for a in again
        if a.details["alert_type"] == "threshold"
    ]
    assert thresholds == [(0.8, 20.0, 16.0), (1.0, 20.0, 20.0)]
    assert {a.alert_id for a in first}.isdisjoint(a.alert_id for a in again)


@pytest.mark.parametrize("new_limit", [10.5, 9.5])
def test_a_threshold_the_new_limit_still_holds_is_not_fired_again(new_limit: float):
    bt = BudgetTracker([Budget("b1", "agent", "bot", "day", 10.0)])
    for h in range(9):  # $9: 0.8 fired
        bt.observe_cost("agent", "bot", at(h), 1.0)
    bt.set_budget(Budget("b1", "agent", "bot", "day", new_limit))
    assert "0.8" in bt.status("b1")["alerts_fired"]  # $9 is still over 80 % of the new limit
    later = bt.observe_cost("agent", "bot", at(9), 0.1)
    fired = [a.details["threshold"] for a in later if a.details["alert_type"] == "threshold"]
    assert fired == []  # 0.8 fired already; $9.10 is under either limit's 100 %


def test_alert_fields_and_deterministic_ids():
    def run():
        bt = BudgetTracker([Budget("team-search-daily", "team", "search", "day", 5.0)])
        alerts = []
        for i in range(48):
            alerts += bt.observe(call(f"a{i % 3}", 0.25, at(i / 2), team="search"))
        return alerts

    first, second = run(), run()
    assert [a.to_dict() for a in first] == [a.to_dict() for a in second]
    a = next(
        x for x in first if x.details["threshold"] == 0.8 and x.details["alert_type"] == "threshold"
    )
    d = a.to_dict()
    assert d["kind"] == "budget" and d["subject"] == "search" and d["details"]["scope"] == "team"
    assert d["details"]["limit_usd"] == 5.0 and d["details"]["spend_usd"] == pytest.approx(4.0)
    assert (
        d["details"]["forecast_usd"] > 5.0
        and d["details"]["period_start"] == "2025-03-01T00:00:00Z"
    )
    assert "search" in d["message"] and "80%" in d["message"]
    assert d["alert_id"] == alert_id("team-search-daily", T0.timestamp(), "0.8", 5.0)
    uuid.UUID(d["alert_id"])
    ids = [x.alert_id for x in first]
    assert len(ids) == len(set(ids))  # distinct per threshold and per kind
    json.dumps([x.to_dict() for x in first])


def test_forecast_alert_fires_before_the_budget_breaks_on_a_steady_burn():
    bt = BudgetTracker([Budget("b", "agent", "bot", "day", 10.0)])
    alerts = steady(bt, usd_per_hour=0.75, hours=24)  # $18 a day against $10
    kinds = [(a.details["alert_type"], a.details["threshold"]) for a in alerts]
    assert kinds == [("forecast_exceeds", 1.0), ("threshold", 0.8), ("threshold", 1.0)]
    forecast, _, broke = alerts
    assert forecast.details["spend_usd"] < 10.0 and forecast.details["forecast_usd"] > 10.0
    assert forecast.severity == "warning"
    t_forecast = datetime.fromisoformat(forecast.details["time"])
    t_broke = datetime.fromisoformat(broke.details["time"])
    assert t_broke - t_forecast > timedelta(hours=10)  # an early warning, not a late one
    assert t_forecast < at(2)

    # under budget: no forecast alert, no threshold alert
    ok = BudgetTracker([Budget("b", "agent", "bot", "day", 10.0)])
    assert steady(ok, usd_per_hour=0.30, hours=24) == []  # $7.2 a day
    st = ok.status("b")  # as of the last call, 23:50
    assert st["forecast_usd"] == pytest.approx(7.2, rel=0.05)
    assert st["burn_rate_usd_per_hour"] == pytest.approx(0.30, rel=0.05)


def test_burn_rate_follows_a_change_of_pace_and_carries_over_periods():
    bt = BudgetTracker([Budget("b", "agent", "bot", "day", 100.0)])
    steady(bt, usd_per_hour=1.0, hours=12)
    assert bt.status("b")["burn_rate_usd_per_hour"] == pytest.approx(1.0, rel=0.25)
    alerts = steady(bt, usd_per_hour=10.0, hours=1, start=12)  # a runaway
    assert bt.status("b")["burn_rate_usd_per_hour"] > 8.0  # current hour seen within minutes
    assert [a.details["alert_type"] for a in alerts] == ["forecast_exceeds"]
    # next day, before any spend: the forecast uses the learned pace
    bt2 = BudgetTracker([Budget("b", "agent", "bot", "day", 100.0)])
    steady(bt2, usd_per_hour=2.0, hours=24)
    bt2.observe_cost("agent", "bot", at(24, 1), 0.0)
    st = bt2.status("b")
    assert st["spend_usd"] == 0.0 and st["forecast_usd"] == pytest.approx(48.0, rel=0.15)


def test_pacing_gets_stricter_as_the_remaining_budget_shrinks():
    bt = BudgetTracker([Budget("b", "agent", "bot", "day", 10.0)])
    caps = []
    for h in range(0, 13):
        steady(bt, usd_per_hour=0.75, hours=1, start=h)
        p = bt.pacing("b")
        caps.append((p["action"], p["max_cost_per_call_usd"]))
    step_downs = [c for a, c in caps if a == "step_down"]
    assert len(step_downs) >= 8
    assert all(x > y for x, y in itertools.pairwise(step_downs))
    assert all(c < 0.125 for c in step_downs)  # below the current $0.125 per call
    p = bt.pacing("b")
    assert p["current_cost_per_call_usd"] == pytest.approx(0.125)
    assert 0 < p["cost_ratio"] < 1 and p["remaining_usd"] == pytest.approx(10 - 13 * 0.75)
    assert "$" in p["reason"] and p["expected_remaining_calls"] > 0
    steady(bt, usd_per_hour=0.75, hours=2, start=13)
    p = bt.pacing("b")
    assert (p["action"], p["max_cost_per_call_usd"]) == ("exhausted", 0.0)

    # same moment, more spent -> a lower cap
    def cap(spent: float) -> float:
        t = BudgetTracker([Budget("b", "agent", "bot", "day", 10.0)])
        steady(t, usd_per_hour=0.5, hours=6)
        t.observe_cost("agent", "bot", at(6), spent - 3.0, calls=0)  # $3 spent so far
        return t.pacing("b", at=at(6))["max_cost_per_call_usd"]

    assert cap(3.0) > cap(5.0) > cap(8.0) > cap(9.5) > 0

    # on pace: no step-down, and the cap is what could be spent per call
    relaxed = BudgetTracker([Budget("b", "agent", "bot", "day", 100.0)])
    steady(relaxed, usd_per_hour=1.0, hours=6)
    p = relaxed.pacing("b")
    assert p["action"] == "none" and p["max_cost_per_call_usd"] > p["current_cost_per_call_usd"]


def test_pacing_sets_no_cap_before_there_is_a_call_rate_to_divide_by():
    bt = BudgetTracker([Budget("b", "team", "support", "month", 500.0)])
    p = bt.pacing("b")
    assert (p["action"], p["max_cost_per_call_usd"], p["expected_remaining_calls"]) == (
        "none",
        None,
        None,
    )
    assert p["cost_ratio"] is None and p["remaining_usd"] == 500.0
    assert p["reason"] == (
        "no calls counted yet: $500.00 of the $500.00 month budget left, no cap per call until"
        " there is a call rate"
    )
    # spend without a call (a cost of calls=0) is paced by the spend alone: no cap to give
    bt.observe_cost("team", "support", at(1), 490.0, calls=0)
    p = bt.pacing("b")
    assert (p["action"], p["max_cost_per_call_usd"]) == ("step_down", None)
    assert "no call rate yet" in p["reason"]
    # once calls come, the cap is the budget left over the calls expected
    steady(bt, usd_per_hour=0.01, hours=2, start=2, subject="support", scope="team")
    p = bt.pacing("b")
    assert p["max_cost_per_call_usd"] is not None and p["expected_remaining_calls"] > 1
    assert p["max_cost_per_call_usd"] < p["remaining_usd"]


def test_a_budget_without_a_call_rate_is_not_stricter_than_one_with_a_cap():
    bt = BudgetTracker(
        [
            Budget("fresh", "agent", "bot", "day", 1000.0),
            Budget("team", "team", "search", "day", 100.0),
        ]
    )
    assert bt.pacing_for("bot", "search")["max_cost_per_call_usd"] is None
    for i in range(36):
        bt.observe_cost("team", "search", at(0, 10 * i), 0.125)
    p = bt.pacing_for("bot", "search")
    assert p["budget_id"] == "team" and p["max_cost_per_call_usd"] > 0


def test_pacing_for_an_agent_takes_the_strictest_budget():
    bt = BudgetTracker(
        [
            Budget("agent", "agent", "bot", "day", 1000.0),
            Budget("team", "team", "search", "day", 10.0),
        ]
    )
    for i in range(36):
        bt.observe(call("bot", 0.125, at(0, 10 * i), team="search"))
    p = bt.pacing_for("bot", "search")
    assert p is not None and p["budget_id"] == "team" and p["action"] == "step_down"
    only_agent = bt.pacing_for("bot")
    assert only_agent is not None and only_agent["budget_id"] == "agent"
    assert bt.pacing_for("other") is None
    assert bt.status("agent")["spend_usd"] == pytest.approx(4.5)
    assert bt.observe(call("x", None, at(7), team="search")) == []  # unpriced: 0 USD
    assert bt.status("team")["calls"] == 37


def test_budget_state_round_trip_and_reprocessing_gives_the_same_alert_ids():
    events = [("agent", "bot", at(0, 7 * i), 0.1 + (i % 5) * 0.02) for i in range(300)]
    budgets = [Budget("b", "agent", "bot", "day", 20.0), Budget("m", "agent", "bot", "month", 50.0)]
    full = BudgetTracker(budgets)
    expected = [a.to_dict() for e in events for a in full.observe_cost(*e)]
    head = BudgetTracker(budgets)
    got = [a.to_dict() for e in events[:150] for a in head.observe_cost(*e)]
    restored = BudgetTracker.from_state(json.loads(json.dumps(head.to_state())))
    assert restored.to_state() == head.to_state()
    got += [a.to_dict() for e in events[150:] for a in restored.observe_cost(*e)]
    assert got == expected
    assert restored.to_state() == full.to_state()
    assert restored.statuses() == full.statuses()
    # a tracker that lost its state and re-processes everything reports the same ids
    again = BudgetTracker(budgets)
    assert {a.alert_id for e in events for a in again.observe_cost(*e)} == {
        a["alert_id"] for a in expected
    }
    # budget management
    assert full.remove_budget("m") and not full.remove_budget("m")
    full.set_budget(Budget("b", "agent", "bot", "day", 40.0))  # new limit, spend kept
    assert full.status("b")["spend_usd"] == pytest.approx(restored.status("b")["spend_usd"])
    assert [b.id for b in full.budgets()] == ["b"]


# ---------------------------------------------------------------------------- anomalies
def minute_stream(
    det: SpendAnomalyDetector,
    agent: str,
    minutes: range,
    base: float,
    rng: random.Random,
    spikes: dict[int, float] | None = None,
    calls: int = 3,
):
    alerts = []
    for m in minutes:
        spend = (spikes or {}).get(m, base * rng.uniform(0.7, 1.3))
        for c in range(calls):
            alerts += det.observe_cost(
                agent, at(0, m) + timedelta(seconds=5 + 15 * c), spend / calls
            )
    return alerts


def test_spike_after_warm_up_is_flagged_and_steady_stream_is_not():
    rng = random.Random(5)
    det = SpendAnomalyDetector()
    alerts = []
    # two agents interleaved minute by minute; only "spiky" has a 10x minute at 150
    for m in range(240):
        for agent, base in (("steady", 0.05), ("spiky", 0.20)):
            spend = 2.0 if (agent == "spiky" and m == 150) else base * rng.uniform(0.7, 1.3)
            for c in range(3):
                alerts += det.observe_cost(
                    agent, at(0, m) + timedelta(seconds=5 + 15 * c), spend / 3
                )
    alerts += det.flush()
    assert [(a.subject, a.details["window_start"]) for a in alerts] == [
        ("spiky", "2025-03-01T02:30:00Z")
    ]
    a = alerts[0].to_dict()
    assert a["kind"] == "anomaly" and a["severity"] in ("warning", "critical")
    assert a["details"]["score"] >= a["details"]["threshold"] and a["details"][
        "spend_usd"
    ] == pytest.approx(2.0)
    assert (
        a["details"]["expected_usd"] == pytest.approx(0.2, rel=0.15) and a["details"]["calls"] == 3
    )
    assert a["alert_id"] == str(uuid.UUID(a["alert_id"]))
    assert det.windows_scored == 480 and det.late == 0


@pytest.mark.parametrize("cooldown, flagged", [(5, ["01:00"]), (0, ["01:00", "01:01", "01:02"])])
def test_no_alert_during_warm_up_and_cooldown_limits_repeats(cooldown, flagged):
    rng = random.Random(1)
    det = SpendAnomalyDetector(cooldown_windows=cooldown)
    # a spike at minute 10 is inside the 30-minute warm-up: not flagged
    assert minute_stream(det, "bot", range(60), 0.1, rng, spikes={10: 5.0}) == []
    # a sustained runaway (minutes 60-62): flagged once, then suppressed by the cooldown
    runaway = {m: 3.0 for m in range(60, 63)}
    alerts = minute_stream(det, "bot", range(60, 70), 0.1, rng, spikes=runaway)
    alerts += det.flush()
    assert [a.details["window_start"][11:16] for a in alerts] == flagged
    assert det.late == 0


def test_anomaly_detector_state_round_trip_and_late_events():
    rng = random.Random(9)
    events = []
    for m in range(120):
        spend = 1.5 if m == 100 else 0.1 * rng.uniform(0.8, 1.2)
        events.append(("bot", at(0, m) + timedelta(seconds=20), spend))
    full = SpendAnomalyDetector()
    expected = [a.to_dict() for e in events for a in full.observe_cost(*e)]
    head = SpendAnomalyDetector()
    got = [a.to_dict() for e in events[:70] for a in head.observe_cost(*e)]
    restored = SpendAnomalyDetector.from_state(json.loads(json.dumps(head.to_state())))
    assert restored.to_state() == head.to_state()
    got += [a.to_dict() for e in events[70:] for a in restored.observe_cost(*e)]
    assert got == expected and len(expected) == 1
    assert restored.to_state() == full.to_state()
    # an event for a closed window is dropped and counted
    assert full.observe_cost("bot", at(0, 5), 100.0) == [] and full.late == 1


def test_scorer_and_close_window_api():
    s = SpendSpikeScorer(grace_period=5)
    for _ in range(4):
        s.learn_one(None, 0.1)
    assert s.score_one(None, 10.0) == 0.0  # grace period
    s.learn_one(None, 0.1)
    assert s.score_one(None, 10.0) > 10 and s.score_one(None, 0.1) == pytest.approx(0, abs=1e-6)
    assert s.expected() == pytest.approx(0.1)
    assert "SpendSpikeScorer" in repr(s.clone())  # a river estimator

    det = SpendAnomalyDetector(scorer_params={"grace_period": 10})
    for m in range(20):
        assert det.close_window("bot", at(0, m), 0.05) is None
    alert = det.close_window("bot", at(0, 20), 1.0, calls=12)
    assert alert is not None and alert.details["calls"] == 12 and alert.subject == "bot"
    assert det.score("bot", 1.0) >= det.threshold and det.score("nobody", 1.0) == 0.0
    # sub-cent spikes are ignored
    tiny = SpendAnomalyDetector(scorer_params={"grace_period": 10})
    for m in range(20):
        tiny.close_window("bot", at(0, m), 0.0001)
    assert tiny.close_window("bot", at(0, 20), 0.005) is None


def test_a_budget_put_after_calls_it_does_not_count_is_as_of_the_latest_call_seen():
    bt = BudgetTracker()
    bt.observe(call("bot", 0.5, at(30)))  # 2025-03-02 06:00: no budget counts it
    bt.observe(call("bot", 0.5, at(29)))  # an older call moves nothing back
    bt.set_budget(Budget("b", "team", "support", "day", 10.0))
    status = bt.status("b")
    assert (status["period_start"], status["period_end"], status["as_of"]) == (
        "2025-03-02T00:00:00Z",
        "2025-03-03T00:00:00Z",
        "2025-03-02T06:00:00Z",
    )
    assert (status["spend_usd"], status["calls"]) == (0.0, 0)
    restored = BudgetTracker.from_state(bt.to_state())
    assert restored.status("b")["as_of"] == "2025-03-02T06:00:00Z"
    unseen = BudgetTracker([Budget("b", "team", "support", "day", 10.0)])  # a part, no call
    assert BudgetTracker.merged([unseen, restored]).status("b")["period_start"] == (
        "2025-03-02T00:00:00Z"
    )


def test_a_budget_on_a_tracker_that_has_seen_no_call_is_as_of_nothing_not_1970():
    """Time is the events' time: before any call no period is current, so as_of and the
    period are None (they said 1970-01-01), and the rest of the status is 0."""
    bt = BudgetTracker([Budget("b", "team", "support", "day", 10.0)])
    status = bt.status("b")
    assert (status["period_start"], status["period_end"], status["as_of"]) == (None, None, None)
    assert status["pacing"]["period_end"] is None
    assert bt.pacing("b")["period_end"] is None
    assert (status["spend_usd"], status["calls"], status["forecast_usd"]) == (0.0, 0, 0.0)
    assert status["pacing"]["action"] == "none"
    assert bt.due_alerts() == []
    state = bt.to_state()
    assert state["watermark"] is None and state["states"] == {}  # the checkpoint as before
    unseen = BudgetTracker.merged([BudgetTracker.from_state(state), BudgetTracker(bt.budgets())])
    assert unseen.status("b")["as_of"] is None
    dated = bt.status("b", at=at(5))  # an explicit time still dates the answer
    assert (dated["period_start"], dated["as_of"]) == (
        "2025-03-01T00:00:00Z",
        "2025-03-01T05:00:00Z",
    )
    bt.observe(call("bot", 0.5, at(30)))  # a call no budget counts: the period is now known
    status = bt.status("b")
    assert (status["period_start"], status["period_end"], status["as_of"]) == (
        "2025-03-02T00:00:00Z",
        "2025-03-03T00:00:00Z",
        "2025-03-02T06:00:00Z",
    )
    assert status["pacing"]["period_end"] == "2025-03-03T00:00:00Z"

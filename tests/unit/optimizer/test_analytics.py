"""Spend analytics: exact counts per dimension, exactly-once, windows, quantiles, state."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from finops.common.events import LlmCallEvent, llm_call_event
from finops.optimizer.domain.analytics import (
    GRANULARITIES,
    NONE_KEY,
    OTHER_KEY,
    IdDedupe,
    LatencySketch,
    SpendAnalytics,
)

T0 = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)


def call(
    agent: str = "bot",
    *,
    at: datetime = T0,
    cost: float | None = 0.01,
    team: str | None = "search",
    task: str = "qa",
    provider: str = "openai",
    model: str = "gpt-4o-mini",
    inp: int = 1000,
    out: int = 100,
    cached: int = 0,
    reasoning: int = 0,
    latency: float = 500.0,
    success: bool = True,
    quality: float | None = None,
    eid: uuid.UUID | None = None,
) -> LlmCallEvent:
    return LlmCallEvent.model_validate(
        llm_call_event(
            {
                "agent_id": agent,
                "team": team,
                "task_type": task,
                "provider": provider,
                "model": model,
                "usage": {
                    "input_tokens": inp,
                    "output_tokens": out,
                    "cached_input_tokens": cached,
                    "reasoning_tokens": reasoning,
                },
                "cost_usd": cost,
                "latency_ms": latency,
                "success": success,
                "quality": quality,
            },
            time=at,
            event_id=eid,
        )
    )


def by_key(rows: list[dict]) -> dict[str, dict]:
    return {r["key"]: r for r in rows}


def stream() -> list[LlmCallEvent]:
    return [
        call("a1", cost=0.10, inp=1000, out=100, cached=200, latency=100, quality=0.9),
        call("a1", cost=0.30, inp=3000, out=300, reasoning=50, latency=300, success=False),
        call(
            "a2",
            cost=0.05,
            team="ads",
            provider="anthropic",
            model="claude-3-5-haiku",
            task="summarize",
            inp=500,
            out=50,
            latency=200,
            quality=0.5,
        ),
        call("a3", cost=None, team=None, inp=10, out=1, latency=50),
        call(
            "a2",
            cost=0.15,
            team="ads",
            provider="anthropic",
            model="claude-3-5-haiku",
            task="summarize",
            inp=1500,
            out=150,
            latency=400,
            quality=0.7,
        ),
    ]


def test_cost_per_success_is_over_the_priced_successes_only():
    # a model reported at $0.01 a call but mostly unpriced read $0.0033 per success: the
    # successes of its unpriced calls were counted over the priced calls' spend
    sa = SpendAnalytics()
    sa.observe_many(
        [
            call(model="m", cost=0.01),
            call(model="m", cost=0.01, success=False),
            call(model="m", cost=0.01),
            *(call(model="m", cost=None) for _ in range(4)),
            call(model="m", cost=None, success=False),
            call(model="priced", cost=0.02),
            call(model="unpriced", cost=None),
        ]
    )
    models = by_key(sa.totals("model"))
    m = models["m"]
    assert (m["calls"], m["successes"], m["unpriced_calls"]) == (8, 6, 5)
    assert m["priced_successes"] == 2 and m["unpriced_outcome_unknown"] == 0
    assert m["cost_per_success"] == pytest.approx(0.03 / 2)
    assert models["priced"]["cost_per_success"] == pytest.approx(0.02)
    assert models["unpriced"]["cost_per_success"] is None  # no priced success: unknown
    # the fleet row, a window, the top list and a restored state say the same
    fleet = sa.summary()["fleet"]
    assert (fleet["priced_successes"], fleet["unpriced_calls"]) == (3, 6)
    assert fleet["cost_per_success"] == pytest.approx(0.05 / 3)
    [hour] = sa.window("model", "hour")
    assert by_key(hour["rows"])["m"]["cost_per_success"] == pytest.approx(0.015)
    assert sa.top("model", by="cost_per_success", n=1)[0]["key"] == "priced"
    restored = SpendAnalytics.from_state(json.loads(json.dumps(sa.to_state())))
    assert restored.totals("model") == sa.totals("model")
    assert restored.window("model", "hour") == sa.window("model", "hour")
    # and the merge of two partitions' analytics (one holds the unpriced calls)
    other = SpendAnalytics()
    other.observe_many([call(model="m", cost=None), call(model="m", cost=0.01)])
    merged = by_key(SpendAnalytics.merged([sa, other]).totals("model"))["m"]
    assert (merged["priced_successes"], merged["unpriced_calls"]) == (3, 6)
    assert merged["cost_per_success"] == pytest.approx(0.04 / 3)


def test_counts_spend_and_tokens_per_dimension():
    sa = SpendAnalytics()
    assert sa.observe_many(stream()) == 5

    agents = by_key(sa.totals("agent"))
    assert set(agents) == {"a1", "a2", "a3"}
    a1 = agents["a1"]
    assert a1["calls"] == 2
    assert a1["spend_usd"] == pytest.approx(0.40)
    assert (a1["input_tokens"], a1["output_tokens"]) == (4000, 400)
    assert (a1["cached_input_tokens"], a1["reasoning_tokens"]) == (200, 50)
    assert a1["successes"] == 1 and a1["success_rate"] == 0.5
    assert a1["cost_per_success"] == pytest.approx(0.40)  # failed calls' spend included
    assert a1["quality_mean"] == pytest.approx(0.9)
    a3 = agents["a3"]
    assert a3["unpriced_calls"] == 1 and a3["spend_usd"] == 0.0
    assert a3["cost_per_success"] is None  # its one success's cost is unknown, not $0
    assert (a3["priced_successes"], a3["unpriced_outcome_unknown"]) == (0, 0)
    assert agents["a2"]["quality_mean"] == pytest.approx(0.6)

    teams = by_key(sa.totals("team"))
    assert {k: r["calls"] for k, r in teams.items()} == {"search": 2, "ads": 2, NONE_KEY: 1}
    assert teams["ads"]["spend_usd"] == pytest.approx(0.20)

    providers = by_key(sa.totals("provider"))
    assert providers["openai"]["calls"] == 3 and providers["anthropic"]["calls"] == 2
    assert providers["openai"]["spend_usd"] == pytest.approx(0.40)
    models = by_key(sa.totals("model"))
    assert models["claude-3-5-haiku"]["input_tokens"] == 2000
    tasks = by_key(sa.totals("task_type"))
    assert tasks["qa"]["calls"] == 3 and tasks["summarize"]["calls"] == 2

    (fleet,) = sa.totals("fleet")
    assert fleet["calls"] == 5 and fleet["spend_usd"] == pytest.approx(0.60)
    assert fleet["successes"] == 4 and fleet["unpriced_calls"] == 1
    assert fleet["input_tokens"] == 6010 and fleet["output_tokens"] == 601
    # sorted by spend, descending
    assert [r["key"] for r in sa.totals("agent")] == ["a1", "a2", "a3"]
    assert sa.totals("agent", key="a2")[0]["calls"] == 2
    assert sa.totals("agent", key="nobody") == []

    s = sa.summary()
    assert s["events"] == 5 and s["duplicates"] == 0
    assert s["keys"] == {"agent": 3, "team": 3, "task_type": 2, "provider": 2, "model": 2}
    assert s["fleet"]["calls"] == 5
    json.dumps(s)  # JSON-ready
    with pytest.raises(ValueError):
        sa.totals("region")


def test_duplicate_ids_are_counted_once():
    sa = SpendAnalytics()
    events = stream()
    for e in events:
        assert sa.observe(e) is True
    before = sa.to_state()["totals"]
    for e in events:
        assert sa.observe(e) is False
    # same id, different content (a client retry that re-serialised the call): still once
    assert sa.observe(call("a1", cost=9.99, eid=events[0].id)) is False
    assert sa.to_state()["totals"] == before
    assert sa.summary()["duplicates"] == 6
    assert sa.totals("fleet")[0]["calls"] == 5
    assert sa.seen(events[0].id) and not sa.seen(uuid.uuid4())


def test_dedupe_memory_is_bounded_with_a_documented_horizon():
    d = IdDedupe(capacity=400, generations=4)
    assert d.horizon == 300
    for i in range(1000):
        assert d.add(i)
    assert len(d) <= 400
    assert all(i in d for i in range(700, 1000))  # the last `horizon` ids are remembered
    assert 0 not in d
    sa = SpendAnalytics(dedupe_capacity=8)
    es = [call() for _ in range(20)]
    assert sa.observe_many(es) == 20
    assert sa.summary()["dedupe"]["remembered"] <= 8
    assert not sa.observe(es[-1])


def test_windows_bucket_by_event_time_and_evict():
    sa = SpendAnalytics(retain={"minute": 3, "hour": 2})
    m = lambda minutes, seconds=0: T0 + timedelta(minutes=minutes, seconds=seconds)  # noqa: E731
    sa.observe(call(at=m(0, 10), cost=1.0))
    sa.observe(call(at=m(1, 5), cost=2.0))
    sa.observe(call(at=m(0, 50), cost=4.0))  # out of order, same minute as the first
    wins = sa.window("agent", "minute")
    assert [(w["start"], w["rows"][0]["calls"], w["rows"][0]["spend_usd"]) for w in wins] == [
        ("2025-03-01T10:00:00Z", 2, 5.0),
        ("2025-03-01T10:01:00Z", 1, 2.0),
    ]
    assert wins[0]["end"] == "2025-03-01T10:01:00Z"

    sa.observe(call(at=m(3), cost=8.0))  # retains 10:01..10:03
    assert [w["start"][11:16] for w in sa.window("agent", "minute")] == ["10:01", "10:03"]
    sa.observe(call(at=m(0, 30), cost=16.0))  # too late for the minute windows
    assert sa.summary()["late_for_windows"] == {"minute": 1, "hour": 0, "day": 0}
    assert [w["start"][11:16] for w in sa.window("agent", "minute")] == ["10:01", "10:03"]
    (hour,) = sa.window("fleet", "hour")
    assert hour["rows"][0]["calls"] == 5 and hour["rows"][0]["spend_usd"] == 31.0
    assert sa.totals("fleet")[0]["spend_usd"] == 31.0

    sa.observe(call(at=T0 + timedelta(hours=2, minutes=1), cost=32.0))  # evicts hour 10:00
    assert [w["start"][11:16] for w in sa.window("fleet", "hour")] == ["12:00"]
    assert [w["start"][11:16] for w in sa.window("fleet", "minute")] == ["12:01"]
    (day,) = sa.window("agent", "day")
    assert day["rows"][0]["calls"] == 6 and day["start"] == "2025-03-01T00:00:00Z"

    # start / limit / key selection
    sa2 = SpendAnalytics()
    for i in range(10):
        sa2.observe(call("a" if i % 2 else "b", at=m(i)))
    assert len(sa2.window("agent", "minute", limit=4)) == 4
    assert sa2.window("agent", "minute", limit=4)[-1]["start"][11:16] == "10:09"
    got = sa2.window("agent", "minute", start=m(5), limit=2)
    assert [w["start"][11:16] for w in got] == ["10:05", "10:06"]
    got = sa2.window("agent", "minute", key="a")
    assert [w["start"][14:16] for w in got] == ["01", "03", "05", "07", "09"]
    assert all(len(w["rows"]) == 1 for w in got)
    assert sa2.window("agent", "minute", start="2025-03-01T10:08:00Z")[0]["start_ts"] == int(
        m(8).timestamp()
    )
    with pytest.raises(ValueError):
        sa2.window("agent", "week")


def test_latency_quantiles_match_numpy_within_two_percent():
    # The sketch guarantees 1 % relative error on the sample at the quantile's rank; numpy
    # interpolates between neighbouring samples, so we allow 2 % relative.
    rng = np.random.default_rng(7)
    lat = rng.lognormal(mean=6.5, sigma=0.8, size=5000)
    sa = SpendAnalytics()
    for i, ms in enumerate(lat):
        sa.observe(call("a" if i % 2 else "b", latency=float(ms), at=T0 + timedelta(seconds=i)))
    fleet = sa.totals("fleet")[0]
    for q, field in ((0.5, "latency_p50_ms"), (0.95, "latency_p95_ms")):
        assert fleet[field] == pytest.approx(float(np.quantile(lat, q)), rel=0.02)
    a = sa.totals("agent", key="a")[0]
    assert a["latency_p95_ms"] == pytest.approx(float(np.quantile(lat[1::2], 0.95)), rel=0.02)
    # the sketch alone, and its merge
    s1, s2 = LatencySketch(), LatencySketch()
    for x in lat[:2500]:
        s1.update(float(x))
    for x in lat[2500:]:
        s2.update(float(x))
    s1.merge(s2)
    assert s1.n == 5000
    assert s1.quantile(0.5) == pytest.approx(float(np.quantile(lat, 0.5)), rel=0.02)
    assert LatencySketch().quantile(0.5) is None


def test_state_round_trips_exactly():
    rng = random.Random(3)
    events = [
        call(
            f"a{rng.randrange(7)}",
            at=T0 + timedelta(seconds=rng.randrange(3 * 3600)),
            cost=None if rng.random() < 0.05 else rng.random() / 10,
            team=rng.choice(["x", "y", None]),
            model=rng.choice(["m1", "m2", "m3"]),
            latency=rng.lognormvariate(6, 1),
            success=rng.random() < 0.9,
            quality=rng.random(),
        )
        for _ in range(3000)
    ]
    first, second = events[:2000], events[2000:]
    sa = SpendAnalytics(retain={"minute": 30})
    sa.observe_many(first + first[:100])
    state = json.loads(json.dumps(sa.to_state()))
    restored = SpendAnalytics.from_state(state)
    assert restored.to_state() == sa.to_state()
    for dim in ("fleet", "agent", "team", "task_type", "provider", "model"):
        assert restored.totals(dim) == sa.totals(dim)
        for g in ("minute", "hour", "day"):
            assert restored.window(dim, g) == sa.window(dim, g)
    assert restored.summary() == sa.summary()
    # same decisions afterwards: redeliveries of the first part are refused by both
    for e in first[::50] + second:
        assert restored.observe(e) == sa.observe(e)
    assert restored.to_state() == sa.to_state()
    assert restored.top_k_with_other("agent", 3) == sa.top_k_with_other("agent", 3)


def test_top_and_top_k_with_other():
    sa = SpendAnalytics()
    spends = {"a": 5.0, "b": 4.0, "c": 3.0, "d": 2.0, "e": 1.0}
    for agent, spend in spends.items():
        sa.observe(call(agent, cost=spend / 2, latency=100))
        sa.observe(call(agent, cost=spend / 2, latency=300, success=agent != "e"))
    assert [r["key"] for r in sa.top("agent", n=2)] == ["a", "b"]
    assert sa.top("agent", by="calls", n=10)[0]["calls"] == 2
    assert [r["key"] for r in sa.top("agent", n=3, granularity="minute")] == ["a", "b", "c"]
    with pytest.raises(ValueError):
        sa.top("agent", by="nonsense")

    rows = sa.top_k_with_other("agent", k=2)
    assert [r["key"] for r in rows] == ["a", "b", OTHER_KEY]
    other = rows[-1]
    assert other["calls"] == 6 and other["spend_usd"] == pytest.approx(6.0)
    assert other["successes"] == 5
    assert other["latency_p50_ms"] == pytest.approx(100, rel=0.01)  # merged sketches
    assert [r["key"] for r in sa.top_k_with_other("agent", k=5)] == list("abcde")

    bounded = sa.bounded_totals(k=1)
    assert set(bounded) == {"fleet", "agent", "team", "task_type", "provider", "model"}
    assert all(len(rows) <= 2 for rows in bounded.values())
    assert [r["key"] for r in bounded["agent"]] == ["a", OTHER_KEY]
    assert [r["key"] for r in bounded["team"]] == ["search"]  # one key: no "other"
    json.dumps(bounded)


def _synthetic(n: int, agents: int = 50, span_s: float = 86400.0) -> list[LlmCallEvent]:
    rng = random.Random(11)
    models = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-3-5-haiku")]
    out = []
    for i in range(n):
        a = rng.randrange(agents)
        provider, model = rng.choice(models)
        out.append(
            call(
                f"agent-{a}",
                team=f"team-{a % 5}",
                task=f"task-{a % 8}",
                provider=provider,
                model=model,
                at=T0 + timedelta(seconds=i * span_s / n),
                cost=rng.random() / 100,
                inp=rng.randint(100, 5000),
                out=rng.randint(10, 800),
                latency=rng.lognormvariate(6.5, 0.6),
                success=rng.random() < 0.95,
                quality=rng.random(),
            )
        )
    return out


def test_state_is_compact():
    sa = SpendAnalytics()
    for e in _synthetic(10_000):
        sa.observe(e)
    size = len(json.dumps(sa.to_state(), separators=(",", ":")))
    # measured with 100k events over 50 agents: 2.6 MB over a day, 3.3 MB over two hours
    assert size < 1_000_000, size


# ---------------------------------------------------------------------------- extreme times
END_OF_9999 = datetime(9999, 12, 31, 12, 0, tzinfo=UTC)


def test_an_event_dated_9999_12_31_counts_in_the_totals_and_breaks_no_window():
    sa = SpendAnalytics()
    sa.observe(call(at=T0))
    sa.observe(call(at=END_OF_9999))
    # +14:00 offset: 10000-01-01 in UTC is past what datetime represents
    sa.observe(call(at=datetime.fromisoformat("9999-12-31T23:00:00-05:00")))
    sa.observe(call(at=T0 + timedelta(seconds=20)))
    assert sa.totals("fleet")[0]["calls"] == 4
    for granularity in ("minute", "hour", "day"):
        windows = sa.window("model", granularity)
        assert [(w["start_ts"], w["rows"][0]["calls"]) for w in windows] == [
            (int(T0.timestamp()) // GRANULARITIES[granularity] * GRANULARITIES[granularity], 2)
        ]
    assert sa.top("model", granularity="day")[0]["calls"] == 2
    summary = sa.summary()
    assert summary["out_of_range_for_windows"] == 2
    assert summary["late_for_windows"] == {"minute": 0, "hour": 0, "day": 0}
    assert summary["watermark"] == "2025-03-01T10:00:20Z"
    restored = SpendAnalytics.from_state(json.loads(json.dumps(sa.to_state())))
    assert restored.summary() == summary


def _checkpoint_after_an_event_in_9999() -> dict:
    """The state an earlier version checkpointed after one event dated 9999-12-31: every
    window of that event in 9999, the watermarks there, the real windows evicted."""
    sa = SpendAnalytics()
    sa.observe(call(at=T0))
    state = json.loads(json.dumps(sa.to_state()))
    shift = int(END_OF_9999.timestamp() - T0.timestamp())
    for granularity, windows in state["windows"].items():
        for window in windows:
            window[0] += shift
        state["watermark"][granularity] += shift
    state["max_ts"] += shift
    return state


def test_a_restored_state_with_windows_in_9999_serves_every_stats_request(caplog):
    with caplog.at_level("WARNING", logger="finops.optimizer.domain.analytics"):
        sa = SpendAnalytics.from_state(_checkpoint_after_an_event_in_9999())
    assert "dropped 3 windows outside the representable time range" in caplog.text
    assert sa.totals("fleet")[0]["calls"] == 1  # the totals keep every event
    for granularity in ("minute", "hour", "day"):
        assert sa.window("model", granularity) == []
    assert sa.summary()["watermark"] is None
    # the windows work again from the next event on
    sa.observe(call(at=T0 + timedelta(days=1)))
    day = sa.window("fleet", "day")
    assert [(w["start"], w["rows"][0]["calls"]) for w in day] == [("2025-03-02T00:00:00Z", 1)]
    assert sa.summary()["late_for_windows"] == {"minute": 0, "hour": 0, "day": 0}


def test_a_key_named_like_the_other_row_is_summed_into_it_not_listed_twice():
    """A task type (or agent) an agent names ``__other__`` would be a second series of the
    label set ``key="__other__"`` on /metrics, which Prometheus keeps only one of."""
    sa = SpendAnalytics()
    for agent, spend in {"a": 5.0, "b": 4.0, "c": 3.0, OTHER_KEY: 9.0}.items():
        sa.observe(call(agent, cost=spend, latency=100))
    rows = sa.top_k_with_other("agent", k=2)
    assert [r["key"] for r in rows] == ["a", "b", OTHER_KEY]
    assert (rows[-1]["calls"], rows[-1]["spend_usd"]) == (2, pytest.approx(12.0))
    # every key fits in k: the named one is still the only __other__ row
    rows = sa.top_k_with_other("agent", k=10)
    assert [r["key"] for r in rows] == ["a", "b", "c", OTHER_KEY]
    assert rows[-1]["spend_usd"] == pytest.approx(9.0)

"""The report's timeline, its summary and its page (charts drawn, no browser)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
import pytest

from finops.cli.report import model, page, store
from finops.cli.report.store import LastRun
from finops.cli.simulation.catalog import GPT_4O, GPT_4O_MINI, MODELS, STRONGEST
from finops.cli.simulation.faults import default_schedule
from finops.cli.simulation.fleet import RUN_MS, make_tasks
from finops.cli.simulation.providers import SimulatedProviders
from finops.cli.simulation.strategies import Healing, NaiveRetries
from finops.cli.simulation.tally import run_fixed_policy
from finops.cli.simulation.timeline import Timeline
from finops.cli.simulation_driver.timeline_sampler import PlatformSampler


async def _offline_timeline(calls: int = 400) -> tuple[Timeline, float, float]:
    """Both policies over the same tasks and faults; (timeline, optimized, baseline spend)."""
    tasks = make_tasks(seed=5, calls=calls, agents=2)
    providers = SimulatedProviders(default_schedule())
    timeline = Timeline.empty(buckets=12)
    optimized = await run_fixed_policy(
        tasks, GPT_4O_MINI, Healing(MODELS), providers, observe=timeline.add_optimized
    )
    baseline = await run_fixed_policy(
        tasks, STRONGEST, NaiveRetries(), providers, observe=timeline.add_baseline
    )
    return timeline, optimized.cost_usd, baseline.cost_usd


async def test_the_timeline_adds_up_to_the_runs_tallies():
    timeline, optimized, baseline = await _offline_timeline()

    cumulative_opt, cumulative_base = timeline.cumulative_spend()
    assert cumulative_opt[-1] == pytest.approx(optimized)
    assert cumulative_base[-1] == pytest.approx(baseline)
    assert cumulative_opt == sorted(cumulative_opt)
    # the openai storm (30-40% of the run) shows as rate limits in its buckets only
    storm = [b for b in timeline.buckets if b.errors_per_kind.get("rate_limit")]
    assert storm and all(0.25 * RUN_MS <= b.start_min * 60_000 < 0.45 * RUN_MS for b in storm)
    healed = sum(sum(b.healed_per_kind.values()) for b in timeline.buckets)
    errors = sum(sum(b.errors_per_kind.values()) for b in timeline.buckets)
    assert 0 < healed <= errors
    # traffic per provider/model: a model two providers serve is two rows, not one
    served = {arm for b in timeline.buckets for arm in b.calls_per_model}
    assert GPT_4O_MINI.arm in served and served <= {m.arm for m in MODELS}


async def test_the_page_holds_the_summary_and_every_chart_as_inline_svg(tmp_path):
    timeline, optimized, baseline = await _offline_timeline()
    result = {
        "saving": 1 - optimized / baseline,
        "quality_ratio": 0.96,
        "healed_ratio": 1.0,
        "healed": 3,
        "recoverable_errors": 3,
        "lost_events": 0,
        "events_sent": 410,
        "optimized_cost_usd": optimized,
        "baseline_cost_usd": baseline,
        "optimized_quality": 0.8,
        "baseline_quality": 0.83,
        "calls": 400,
        "agents": 2,
        "seed": 5,
        "experiments": [
            {
                "name": "e1",
                "kind": "a_a",
                "decision": "stopped",
                "winner": None,
                "promoted": False,
                "samples": [12, 11],
                "fallbacks": [0, 3],
                "reason": "stopped at the end of the run, no winner, as an A/A test should",
            },
            # a run's result written before the fallbacks were counted
            {
                "name": "e0",
                "kind": "a_a",
                "decision": "stopped",
                "winner": None,
                "promoted": False,
                "samples": [5, 4],
                "reason": None,
            },
        ],
    }
    report = model.from_simulation(result, timeline, datetime(2026, 1, 2, tzinfo=UTC), "test")

    written = page.write(report, tmp_path / "reports")

    html = written.read_text()
    assert written.name == "finops-report-20260102-000000.html"
    assert re.findall(
        r"<figure class='chart' id='chart-(\w+)'><figcaption>[^<]*</figcaption><svg", html
    ) == ["spend", "traffic", "errors", "breakers", "experiments"]
    assert f"{1 - optimized / baseline:.1%}" in html
    assert "<td>12 / 11</td><td>0 / 3</td>" in html  # of them answered after a fallback
    assert "<td>5 / 4</td><td>-</td>" in html
    assert "<td>stopped at the end of the run, no winner, as an A/A test should</td>" in html
    # nothing to fetch: no script, stylesheet or image from elsewhere (namespaces are names,
    # url(#…) an in-page clip path)
    assert not re.search(r"(src|href)=['\"]?(https?:|//)|<link|url\((?!#)", html)


def test_the_last_run_kept_in_the_stack_folder_reads_back_the_same(tmp_path):
    timeline = Timeline.empty(buckets=3)
    timeline.buckets[1].calls_per_model[GPT_4O.arm] = 4
    saved = LastRun({"saving": 0.5}, timeline)

    store.save(tmp_path, saved)

    assert store.load(tmp_path) == saved
    assert store.load(tmp_path / "elsewhere") is None


async def test_the_sampler_records_breakers_and_experiments_at_the_fleets_progress():
    def platform(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/healing/circuits":
            circuit = {"provider": "openai", "model": "gpt-4o", "state": "open"}
            return httpx.Response(200, json={"circuits": [circuit], "count": 1})
        assert request.url.path == "/api/experiments/x1/results"
        variants = [{"name": "A", "n": 5, "probability_best": 0.2}]
        return httpx.Response(
            200, json={"status": "decided", "decision": {"winner": "A"}, "variants": variants}
        )

    timeline = Timeline.empty()
    urls = {"healer": "http://healer", "experiments": "http://experiments"}
    async with httpx.AsyncClient(transport=httpx.MockTransport(platform)) as http:
        sampler = PlatformSampler(http, urls, timeline, lambda: 0.25, lambda: [("exp", "x1")])
        await sampler.sample()

    assert [(s.progress, s.breakers[0].state) for s in timeline.breakers] == [(0.25, "open")]
    sample = timeline.experiments[0]
    assert (sample.progress, sample.status, sample.winner) == (0.25, "decided", "A")
    assert [(v.name, v.n, v.probability_best) for v in sample.variants] == [("A", 5, 0.2)]
    assert sampler.missed == 0


async def test_a_sample_the_platform_cannot_answer_is_counted_not_raised():
    def platform(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/healing/circuits":
            return httpx.Response(200, json={"circuits": [{"provider": "openai"}]})  # no state
        return httpx.Response(503, json={"error": {"code": "dependency_unavailable"}})

    timeline = Timeline.empty()
    urls = {"healer": "http://healer", "experiments": "http://experiments"}
    async with httpx.AsyncClient(transport=httpx.MockTransport(platform)) as http:
        sampler = PlatformSampler(http, urls, timeline, lambda: 0.5, lambda: [("exp", "x1")])
        await sampler.sample()

    assert sampler.missed == 1
    assert timeline.breakers == [] and timeline.experiments == []

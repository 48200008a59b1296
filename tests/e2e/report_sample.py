"""A report built offline from the simulation's own code (no stack): the same tasks, faults and
strategies as ``finops simulate``, with breaker and experiment samples as the platform gives."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from finops.cli.report.model import Report, from_simulation
from finops.cli.simulation.catalog import GPT_4O_MINI, MODELS, STRONGEST
from finops.cli.simulation.faults import default_schedule
from finops.cli.simulation.fleet import make_tasks
from finops.cli.simulation.providers import SimulatedProviders
from finops.cli.simulation.strategies import Healing, NaiveRetries
from finops.cli.simulation.tally import Comparison, run_fixed_policy
from finops.cli.simulation.timeline import (
    BreakerSample,
    BreakerState,
    ExperimentSample,
    Timeline,
    VariantProgress,
)


def offline_run(calls: int = 600, seed: int = 7) -> tuple[dict, Timeline]:
    """(a ``--json``-shaped result, its timeline): the fleet on the cheap model with healing,
    the baseline on the strongest with naive retries, over the same tasks and faults."""
    tasks = make_tasks(seed, calls, agents=2)
    providers = SimulatedProviders(default_schedule())
    timeline = Timeline.empty()

    async def both():
        optimized = await run_fixed_policy(
            tasks, GPT_4O_MINI, Healing(MODELS), providers, observe=timeline.add_optimized
        )
        baseline = await run_fixed_policy(
            tasks, STRONGEST, NaiveRetries(), providers, observe=timeline.add_baseline
        )
        return Comparison(baseline=baseline, optimized=optimized)

    comparison = asyncio.run(both())
    for step in range(11):
        at = step / 10
        state = "open" if 0.3 <= at < 0.4 else "closed"
        timeline.breakers.append(BreakerSample(at, (BreakerState("openai", "gpt-4o", state, 0.5),)))
        decided = at >= 0.8
        timeline.experiments.append(
            ExperimentSample(
                at,
                "sim-abc123-summarize-cheaper-variant",
                "decided" if decided else "running",
                (
                    VariantProgress("A", 10 * step, 0.5 - 0.04 * step),
                    VariantProgress("B", 10 * step, 0.5 + 0.04 * step),
                ),
                "B" if decided else None,
            )
        )
    base, opt = comparison.baseline, comparison.optimized
    result = {
        "calls": calls,
        "agents": 2,
        "seed": seed,
        "events_sent": opt.errors + opt.answered,
        "lost_events": 0,
        "saving": comparison.saving,
        "quality_ratio": comparison.quality_ratio,
        "healed_ratio": opt.healed_ratio,
        "healed": opt.healed,
        "recoverable_errors": opt.recoverable_errors,
        "optimized_cost_usd": opt.cost_usd,
        "baseline_cost_usd": base.cost_usd,
        "optimized_quality": opt.mean_quality,
        "baseline_quality": base.mean_quality,
        "experiments": [
            {
                "name": "sim-abc123-summarize-cheaper-variant",
                "kind": "cheaper_variant",
                "decision": "decided",
                "winner": "B",
                "promoted": True,
                "samples": [100, 100],
            }
        ],
    }
    return result, timeline


def offline_report() -> Report:
    result, timeline = offline_run()
    return from_simulation(result, timeline, datetime(2026, 12, 2, 16, 0, tzinfo=UTC), "offline")

"""One experiment's running state (its definition, per-variant statistics, the event ids
remembered to drop a redelivery, its conclusion) and the results the API shows from it."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from finops.experiments.domain.allocation import figures_rng, probability_best
from finops.experiments.domain.decision import Analysis, analyse
from finops.experiments.domain.definition import Definition
from finops.experiments.domain.sequential import answered_quality, metric_value, quality_per_call
from finops.experiments.domain.srm import srm_p_value
from finops.experiments.domain.stats import VariantStats

# Event ids remembered per experiment to drop a redelivered event (a client retry that sent
# the same event twice); the checkpoint's offsets already stop a replay from counting twice.
DEDUPE_WINDOW = 100_000


@dataclass
class ExperimentState:
    definition: Definition
    started_at: float  # epoch seconds
    stats: list[VariantStats]
    recent_ids: deque[str] = field(default_factory=lambda: deque(maxlen=DEDUPE_WINDOW))
    seen: set[str] = field(default_factory=set)
    conclusion: dict[str, Any] | None = None
    duplicates: int = 0
    #: the decision PostgreSQL recorded (:func:`recorded_decision`) when no checkpoint held
    #: the experiment: its calls are counted again up to the decision's counts, then it is
    #: the conclusion (see :meth:`ExperimentAnalysis.track_recorded`)
    recorded: dict[str, Any] | None = None

    def remember(self, event_id: str) -> bool:
        """False when the id was seen already (a duplicate)."""
        if event_id in self.seen:
            self.duplicates += 1
            return False
        if len(self.recent_ids) == self.recent_ids.maxlen:
            self.seen.discard(self.recent_ids[0])
        self.recent_ids.append(event_id)
        self.seen.add(event_id)
        return True

    def srm_p(self) -> float | None:
        if self.definition.allocation != "fixed":
            return None  # a bandit's split moves on purpose
        return float(srm_p_value([s.n for s in self.stats], self.definition.weights))

    def analysis(self) -> Analysis:
        d = self.definition
        return analyse(d.variant_names, self.stats, d.analysis_settings(), self.srm_p())

    def snapshot(self) -> dict[str, Any]:
        """Everything the results need, without the event ids kept for deduplication."""
        return {
            "definition": self.definition.to_dict(),
            "started_at": self.started_at,
            "stats": [s.to_dict() for s in self.stats],
            "conclusion": self.conclusion,
            "duplicates": self.duplicates,
        }

    def to_dict(self) -> dict[str, Any]:
        data = {**self.snapshot(), "recent_ids": list(self.recent_ids)}
        if self.recorded is not None:
            data["recorded"] = self.recorded
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentState:
        """From :meth:`to_dict`, or from a :meth:`snapshot` (with no event ids remembered)."""
        ids = deque(data.get("recent_ids", ()), maxlen=DEDUPE_WINDOW)
        return cls(
            definition=Definition.from_dict(data["definition"]),
            started_at=float(data["started_at"]),
            stats=[VariantStats.from_dict(s) for s in data["stats"]],
            recent_ids=ids,
            seen=set(ids),
            conclusion=data["conclusion"],
            duplicates=int(data["duplicates"]),
            recorded=data.get("recorded"),
        )


def experiment_results(
    experiment_id: str, definition: Definition, state: ExperimentState | None
) -> dict[str, Any]:
    """The results body of the API from an experiment's state (zeros when there is none)."""
    state = state or ExperimentState(definition, 0.0, [VariantStats() for _ in definition.variants])
    analysis = state.analysis()
    best = probability_best(state.stats, definition.metric, figures_rng(experiment_id))
    variants = []
    for variant, stats, report, p_best in zip(
        definition.variants, state.stats, analysis.variants, best, strict=True
    ):
        variants.append(
            {
                "name": variant.name,
                "n": int(stats.n),
                "successes": int(stats.successes),
                "fallbacks": int(stats.fallbacks),
                "cost_usd": round(float(stats.cost_sum), 10),
                "mean_cost_per_success": _number(metric_value(stats, "cost_per_success")),
                "mean_quality": _number(answered_quality(stats)),
                "quality_per_call": _number(quality_per_call(stats)),
                "unrated_failures": int(stats.unrated_failures),
                "p95_latency_ms": stats.p95_latency_ms(),
                "interval": list(report.interval) if report.interval else None,
                "probability_best": p_best,
                "guardrails_ok": report.guardrails_ok,
                "guardrail_reasons": report.guardrail_reasons,
            }
        )
    conclusion = state.conclusion
    return {
        "metric": definition.metric,
        "decision": (
            {
                "winner": conclusion["winner"],
                "reason": conclusion["reason"],
                "decided_at": conclusion["decided_at"],
            }
            if conclusion
            else None
        ),
        "srm": {"p_value": analysis.srm_p_value, "ok": analysis.srm_ok},
        "variants": variants,
        "duplicates_dropped": state.duplicates,
    }


def _number(x: Any) -> float | None:
    value = float(x)
    return value if np.isfinite(value) else None

"""The report's charts, each drawn with matplotlib to an SVG string to inline in the page.

Text is drawn as paths (matplotlib's default), so a chart needs no font on the reader's side.
Each chart says so in its plot when it has nothing to show, rather than being left blank.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from finops.cli.simulation.fleet import RUN_MS
from finops.cli.simulation.timeline import ExperimentSample, Timeline

RUN_MIN = RUN_MS / 60_000
STATE_COLOURS = {"closed": "#2e9d5b", "half_open": "#e3a21a", "open": "#d2423b"}
OPTIMIZED, BASELINE = "#2a6fdb", "#9a9a9a"


@dataclass(frozen=True)
class Chart:
    """A drawn chart: its id in the page, its caption and its SVG."""

    id: str
    caption: str
    svg: str


def _figure(height: float = 3.4) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(9.0, height), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _svg(fig: Figure) -> str:
    """The figure as an ``<svg>`` element (no XML prologue: it goes inside HTML)."""
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    return text[text.index("<svg") :]


def _legend_outside(ax: Axes) -> None:
    """The legend right of the plot, where it hides no data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)


def _nothing(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


def _bucket_ends(timeline: Timeline) -> list[float]:
    return [b.start_min + timeline.bucket_min for b in timeline.buckets]


def _bucket_centres(timeline: Timeline) -> list[float]:
    return [b.start_min + timeline.bucket_min / 2 for b in timeline.buckets]


def spend_chart(timeline: Timeline) -> Chart:
    fig, ax = _figure()
    optimized, baseline = timeline.cumulative_spend()
    x = [0.0, *_bucket_ends(timeline)]
    ax.plot(x, [0.0, *baseline], color=BASELINE, lw=2, label="baseline (strongest model)")
    ax.plot(x, [0.0, *optimized], color=OPTIMIZED, lw=2, label="optimized fleet")
    ax.fill_between(x, [0.0, *optimized], [0.0, *baseline], color=OPTIMIZED, alpha=0.12)
    ax.set_xlabel("simulated minutes")
    ax.set_ylabel("cumulative spend (USD)")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return Chart("spend", "Spend over time: optimized fleet vs baseline", _svg(fig))


def traffic_chart(timeline: Timeline) -> Chart:
    fig, ax = _figure()
    models = timeline.models()
    if not models:
        _nothing(ax, "no answered call")
        return Chart("traffic", "Traffic share per model", _svg(fig))
    shares = [
        [
            100.0 * b.calls_per_model.get(m, 0) / max(1, sum(b.calls_per_model.values()))
            for b in timeline.buckets
        ]
        for m in models
    ]
    ax.stackplot(_bucket_centres(timeline), shares, labels=models, alpha=0.85)
    ax.set_ylim(0, 100)
    ax.set_xlim(0, RUN_MIN)
    ax.set_xlabel("simulated minutes")
    ax.set_ylabel("share of calls (%)")
    _legend_outside(ax)
    return Chart("traffic", "Traffic share per model", _svg(fig))


def errors_chart(timeline: Timeline) -> Chart:
    fig, ax = _figure()
    kinds = timeline.error_kinds()
    if not kinds:
        _nothing(ax, "no error")
        return Chart("errors", "Errors and healing", _svg(fig))
    x = _bucket_centres(timeline)
    bottom = [0] * len(x)
    for kind in kinds:
        counts = [b.errors_per_kind.get(kind, 0) for b in timeline.buckets]
        ax.bar(x, counts, width=timeline.bucket_min * 0.85, bottom=bottom, label=kind)
        bottom = [s + c for s, c in zip(bottom, counts, strict=True)]
    healed = [sum(b.healed_per_kind.values()) for b in timeline.buckets]
    ax.plot(x, healed, color="black", marker="o", ms=3, lw=1.5, label="healed")
    ax.set_xlabel("simulated minutes")
    ax.set_ylabel("failed attempts")
    _legend_outside(ax)
    return Chart("errors", "Errors per kind and errors healed", _svg(fig))


def breakers_chart(timeline: Timeline) -> Chart:
    samples = sorted(timeline.breakers, key=lambda s: s.progress)
    arms = sorted({b.arm for s in samples for b in s.breakers})
    fig, ax = _figure(height=max(2.4, 0.9 + 0.45 * len(arms)))
    if not arms:
        _nothing(ax, "no breaker reported by the healer")
        return Chart("breakers", "Circuit breaker states", _svg(fig))
    for row, arm in enumerate(arms):
        for n, sample in enumerate(samples):
            state = next((b.state for b in sample.breakers if b.arm == arm), None)
            if state is None:
                continue
            end = samples[n + 1].progress if n + 1 < len(samples) else 1.0
            span = (sample.progress * RUN_MIN, max(end - sample.progress, 0.004) * RUN_MIN)
            ax.broken_barh([span], (row - 0.35, 0.7), color=STATE_COLOURS.get(state, "#555"))
    ax.set_yticks(range(len(arms)), arms)
    ax.set_xlim(0, RUN_MIN)
    ax.set_xlabel("simulated minutes (when the healer was asked)")
    for state, colour in STATE_COLOURS.items():
        ax.bar(0, 0, color=colour, label=state.replace("_", "-"))
    _legend_outside(ax)
    return Chart("breakers", "Circuit breaker states", _svg(fig))


def experiments_chart(timeline: Timeline) -> Chart:
    fig = Figure(figsize=(9.0, 4.6), dpi=100, layout="constrained")
    samples_ax, best_ax = fig.subplots(2, 1, sharex=True)
    names = sorted({s.experiment for s in timeline.experiments})
    if not names:
        _nothing(samples_ax, "no experiment ran")
        _nothing(best_ax, "")
        return Chart("experiments", "Experiment progress", _svg(fig))
    for name in names:
        series = sorted(
            (s for s in timeline.experiments if s.experiment == name), key=lambda s: s.progress
        )
        x = [s.progress * RUN_MIN for s in series]
        for variant in [v.name for v in series[-1].variants]:
            n = [next((v.n for v in s.variants if v.name == variant), 0) for s in series]
            best = [
                next((v.probability_best for v in s.variants if v.name == variant), None)
                for s in series
            ]
            label = f"{_short(name)} {variant}"
            samples_ax.plot(x, n, lw=1.6, label=label)
            best_ax.plot(x, [float("nan") if b is None else b for b in best], lw=1.6, label=label)
        _mark_decision(best_ax, series, _short(name))
    samples_ax.set_ylabel("samples")
    _legend_outside(samples_ax)
    best_ax.set_ylabel("P(best)")
    best_ax.set_ylim(-0.05, 1.05)
    best_ax.set_xlim(0, RUN_MIN)
    best_ax.set_xlabel("simulated minutes (when the experiments service was asked)")
    return Chart("experiments", "Experiment progress: samples and probability best", _svg(fig))


def _mark_decision(ax: Axes, series: list[ExperimentSample], name: str) -> None:
    decided = next((s for s in series if s.status != "running"), None)
    if decided is None:
        return
    ax.axvline(decided.progress * RUN_MIN, color="#444", ls="--", lw=1)
    text = f"{name} {decided.status}" + (f": {decided.winner}" if decided.winner else "")
    ax.annotate(
        text,
        (decided.progress * RUN_MIN, 0.5),
        fontsize="x-small",
        rotation=90,
        ha="right",
        va="center",
    )


def _short(name: str) -> str:
    """``sim-1a2b3c-summarize-cheaper-variant`` -> ``summarize-cheaper-variant``."""
    parts = name.split("-", 2)
    return parts[2] if len(parts) == 3 and parts[0] == "sim" else name


CHARTS: tuple[Callable[[Timeline], Chart], ...] = (
    spend_chart,
    traffic_chart,
    errors_chart,
    breakers_chart,
    experiments_chart,
)


def draw_all(timeline: Timeline) -> list[Chart]:
    return [draw(timeline) for draw in CHARTS]

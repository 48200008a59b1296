"""The summary of ``bench/backtest.py``'s runs: the table per file and target, the reference
learner next to the policy, and issue 15's "Done when" checks (recorded as figures)."""

from __future__ import annotations

import statistics

from _figures import Measurement, at_least, record
from _thompson_baseline import PENALTIES, BaselineRun, frontier

#: the allowed shortfall below the target before a run counts as a miss (issue 15)
MISS_TOLERANCE = 0.005
#: mean saving issue 15 asks at a quality target, per data set
SAVING_FLOORS = {
    ("synthetic_one_task_12_models.csv", 0.95): 0.80,
    ("synthetic_one_task_12_models.csv", 0.99): 0.30,
    ("routellm_mmlu.csv", 0.95): 0.45,
    ("routellm_gsm8k.csv", 0.95): 0.15,
}


def summarise(runs: list[dict], target: float) -> dict[str, float]:
    """The runs of one file at one target: mean and worst ratio and saving, misses, best model."""
    ratios = [r["quality_ratio"] for r in runs]
    savings = [r["saving"] for r in runs]
    return {
        "runs": len(runs),
        "ratio_mean": statistics.fmean(ratios),
        "ratio_worst": min(ratios),
        "saving_mean": statistics.fmean(savings),
        "saving_worst": min(savings),
        "misses": sum(r < target - MISS_TOLERANCE for r in ratios),
        "best_quality": statistics.fmean(r["best_quality"] for r in runs),
        "best_cost_per_prompt": statistics.fmean(r["best_cost_per_prompt"] for r in runs),
    }


def done_when(summary: dict[tuple[str, float], dict[str, float]]) -> list[tuple[str, bool]]:
    """The "Done when" checks of issue 15 that these runs can decide, each recorded as a
    figure next to the best single model of the same runs (its baseline)."""
    checks = []
    for (name, target), s in sorted(summary.items()):
        best_quality = Measurement("best single model's quality", s["best_quality"], "")
        if target in (0.95, 0.99):
            hits = s["runs"] - s["misses"]
            ok = hits >= 0.9 * s["runs"]
            checks.append(
                (f"{name} at {target}: ratio >= target - 0.005 in {hits}/{s['runs']}", ok)
            )
            record(
                Measurement(
                    f"{name} at quality target {target}: runs within {MISS_TOLERANCE} of it",
                    100 * hits / s["runs"],
                    "%",
                ),
                best_quality,
                at_least(90, "#15"),
                detail=f"{hits}/{s['runs']} seeds",
            )
        need = SAVING_FLOORS.get((name, target))
        if need is not None:
            mean = s["saving_mean"]
            checks.append(
                (f"{name} at {target}: mean saving {mean:.1%} >= {need:.0%}", mean >= need)
            )
            record(
                Measurement(f"{name} at quality target {target}: mean saving", 100 * mean, "%"),
                Measurement("best single model's cost", s["best_cost_per_prompt"], "USD/prompt"),
                at_least(100 * need, "#15"),
                detail=f"quality ratio {s['ratio_mean']:.3f}",
            )
    return checks


def print_summary(summary: dict[tuple[str, float], dict[str, float]], seeds: int) -> None:
    """The table of the runs per file and target."""
    print(f"\nseeds 0-{seeds - 1}, bandit feedback; miss: ratio < target - {MISS_TOLERANCE}")
    header = "data", "target", "ratio mean", "worst", "saving mean", "worst", "misses", "s/run"
    print("{:<34} {:>6} {:>10} {:>6} {:>11} {:>6} {:>7} {:>6}".format(*header))
    for (name, target), s in summary.items():
        print(
            f"{name:<34} {target:>6.2f} {s['ratio_mean']:>10.3f} {s['ratio_worst']:>6.3f} "
            f"{s['saving_mean']:>11.1%} {s['saving_worst']:>6.1%} "
            f"{s['misses']:>3}/{s['runs']:<3} {s['seconds']:>6.1f}"
        )


def print_baseline(
    summary: dict[tuple[str, float], dict[str, float]],
    baseline: dict[str, list[BaselineRun]],
    targets: list[float],
) -> None:
    """The policy next to the reference learner at its penalty picked in hindsight."""
    print(
        "\nthe policy next to issue 15's reference learner, per-task Thompson sampling with a "
        "cost penalty:\nmean costs known from the start; the penalty picked in hindsight per "
        f"file and target, of {len(PENALTIES)},\nas the most saving one that misses in at most a "
        "tenth of the seeds (else the fewest misses);\nthe same seeds and prompt orders"
    )
    columns = "{:<34} {:>6} {:>13} {:>7} {:>10} {:>6} {:>7} {:>7}"
    print(columns.format("", "", "policy", "", "learner", "", "", "").rstrip())
    names = "data", "target", "saving", "misses", "penalty", "ratio", "saving", "misses"
    print(columns.format(*names))
    for name, runs in baseline.items():
        for point in frontier(runs, targets, MISS_TOLERANCE):
            s = summary[(name, point.target)]
            line = (
                f"{name:<34} {point.target:>6.2f} {s['saving_mean']:>13.1%} "
                f"{s['misses']:>3}/{s['runs']:<3} {point.penalty:>10g} {point.ratio_mean:>6.3f} "
                f"{point.saving_mean:>7.1%} {point.misses:>3}/{point.runs:<3}"
            )
            print(line.rstrip() if point.holds else f"{line} no penalty holds the target")

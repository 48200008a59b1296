"""Routing-policy proving ground: backtests over data sets, quality targets and seeds.

Replays every outcomes file in ``../shared/data/outcomes`` (the RouteLLM evaluations: two models
each) and synthetic sets this script writes itself (``--no-synthetic`` leaves them out) through
the live routing policy with bandit feedback, at several fleet quality targets and seeds, and
prints per file and target the mean and worst quality ratio and saving against the best single
model, and how often the ratio fell more than 0.005 below the target (a *miss*). It ends with
the "Done when" checks of issue 15.

The synthetic sets are made up, not history:

* ``synthetic_11_models`` (many task types): 11 models over 7 task families (33 task types),
  correctness from a logistic skill-versus-difficulty model with per-family affinities, prices
  spanning two orders of magnitude -- ten arms to try on every task type.
* ``synthetic_one_task_12_models`` (the held-out shape of issue 15): one task type, 12 models,
  2,160 prompts; the best two models within 0.1 point of quality, the second 1.5x cheaper; one
  model 15x cheaper than the best at 95 % of its quality; nine weak ones (51-88 % of the best's
  quality) from 130x cheaper than the best to about as expensive.

    .venv/bin/python bench/backtest.py [--seeds 10] [--targets 0.9 0.95 0.99] [--no-synthetic]
        [--only NAME ...] [--json RESULTS.json] [--shift MODEL=QUALITY ...] [--policy KEY=VALUE ...]
        [--no-baseline]

Next to the policy it prints issue 15's reference learner, per-task Thompson sampling with a
cost penalty picked in hindsight (``_thompson_baseline.py``), on the same seeds and prompt orders.

Two options check that the policy is not fitted to these sets. ``--shift cheap-95=0.93`` writes
the one-task set of a *nearby world*: that model at 93 % of the best's quality instead of 95 %
(any model of the set, quality relative to the best); ``--policy target_z=0.5`` replays with a
knob of ``PolicyConfig`` changed (its value as JSON).  Either one leaves the "Done when" checks
out and records no figure: they are about the policy as it ships, on the sets as they are.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import json
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from _figures import Measurement, at_least, record
from _thompson_baseline import PENALTIES, BaselineRun, frontier, replay

from finops.optimizer.adapters.outcome_files import load_outcomes
from finops.optimizer.domain.backtest import Outcomes, run_backtest
from finops.optimizer.domain.policy import PolicyConfig

OUTCOMES = Path(__file__).resolve().parents[2] / "shared" / "data" / "outcomes"
COLUMNS = "prompt_id task_type model quality cost_usd input_tokens output_tokens prompt".split()
TARGETS = {"routellm_mmlu.csv": 0.45, "routellm_gsm8k.csv": 0.15}

# model -> (skill, USD per 1M input tokens, USD per 1M output tokens)
SYNTHETIC_MODELS = {
    "gpt-4": (2.2, 30, 60),
    "claude-2": (1.7, 8, 24),
    "claude-v1": (1.5, 8, 24),
    "mixtral-8x7b": (1.1, 0.6, 0.6),
    "gpt-3.5-turbo": (1.0, 0.5, 1.5),
    "claude-instant": (0.9, 0.8, 2.4),
    "yi-34b": (0.9, 0.8, 0.8),
    "llama-70b": (0.8, 0.9, 0.9),
    "code-llama-34b": (0.5, 0.78, 0.78),
    "mistral-7b": (0.2, 0.2, 0.2),
    "wizardlm-13b": (0.1, 0.3, 0.3),
}
# family -> (mean difficulty, task types, output tokens, graded score instead of 0/1)
VOCABULARY = ["solve", "why", "code", "list", "prove"]
SYNTHETIC_FAMILIES = {
    "mmlu": (0.5, 20, 5, False),
    "gsm8k": (1.6, 1, 200, False),
    "mbpp": (1.2, 1, 150, False),
    "hellaswag": (0.0, 1, 5, False),
    "arc": (0.3, 1, 5, False),
    "winogrande": (0.8, 1, 5, False),
    "mtbench": (0.4, 8, 300, True),
}


def write_synthetic(path: Path, seed: int = 0) -> int:
    """Write the many-model stress set; return its number of prompts."""
    rng = random.Random(seed)
    affinity = {(f, m): rng.gauss(0, 0.4) for f in SYNTHETIC_FAMILIES for m in SYNTHETIC_MODELS}
    prompts = 0
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(COLUMNS)
        for fam, (difficulty, n_types, out_tokens, graded) in SYNTHETIC_FAMILIES.items():
            for t in range(n_types):
                task = f"{fam}/s{t}" if n_types > 1 else fam
                task_difficulty = difficulty + rng.gauss(0, 0.5)
                for p in range(rng.randint(80, 400) if n_types > 1 else 1500):
                    d = task_difficulty + rng.gauss(0, 1.2)
                    in_tokens = rng.randint(50, 1500)
                    words = rng.choices(VOCABULARY, k=in_tokens // 20)
                    prompts += 1
                    for model, (skill, usd_in, usd_out) in SYNTHETIC_MODELS.items():
                        p_ok = 1 / (1 + math.exp(-2.0 * (skill + affinity[(fam, model)] - d)))
                        if graded:
                            q = min(1.0, max(0.0, round(rng.gauss(p_ok, 0.15) * 10) / 10))
                        else:
                            q = float(rng.random() < p_ok)
                        cost = (in_tokens * usd_in + out_tokens * usd_out) / 1e6
                        row = f"{task}-{p}", task, model, q, f"{cost:.6g}", in_tokens, out_tokens
                        out.writerow([*row, " ".join(words)])
    return prompts


# the held-out shape: (quality relative to the best, cost relative to the best) per model
ONE_TASK_BEST_QUALITY = 0.80
ONE_TASK_BEST_COST_USD = 0.01
ONE_TASK_PROMPTS = 2160
ONE_TASK_MODELS = {
    "best": (1.0, 1.0),
    "runner-up": (0.99875, 1 / 1.5),  # 0.1 point below the best at 80 % quality
    "cheap-95": (0.95, 1 / 15),
    **{
        f"weak-{i}": (quality, cost)
        for i, (quality, cost) in enumerate(
            zip(
                [0.51, 0.55, 0.6, 0.64, 0.69, 0.73, 0.78, 0.83, 0.88],
                # from 130x cheaper to about as expensive, not in step with quality
                [1 / 130, 0.9, 1 / 60, 0.35, 1 / 25, 1 / 8, 0.6, 1 / 100, 1 / 3],
                strict=True,
            )
        )
    },
}


def _skill_for(mean_quality: float, difficulties: list[float]) -> float:
    """Skill whose mean success probability over the prompts is ``mean_quality`` (bisection)."""
    lo, hi = -10.0, 10.0
    for _ in range(60):
        mid = (lo + hi) / 2
        mean = statistics.fmean(1 / (1 + math.exp(-2.0 * (mid - d))) for d in difficulties)
        lo, hi = (mid, hi) if mean < mean_quality else (lo, mid)
    return (lo + hi) / 2


def _correct_prompts(rng: random.Random, p_ok: list[float], k: int) -> set[int]:
    """Exactly ``k`` prompts answered correctly, drawn with weights ``p_ok`` (Efraimidis-Spirakis):
    the realised quality is the shape's, the easy prompts are the ones more often right."""
    keys = sorted(((rng.random() ** (1 / p), i) for i, p in enumerate(p_ok)), reverse=True)
    return {i for _key, i in keys[:k]}


def write_one_task(path: Path, seed: int = 0, shift: Mapping[str, float] | None = None) -> int:
    """Write the set of the held-out shape (one task type, 12 models); return its prompts.

    ``shift`` moves models to other qualities relative to the best (a nearby world, see
    ``--shift``); every other model and every cost is drawn as without it.
    """
    rng = random.Random(seed)
    difficulties = [rng.gauss(0, 1.2) for _ in range(ONE_TASK_PROMPTS)]
    correct = {}
    for model, (rel_q, _c) in ONE_TASK_MODELS.items():
        rel_q = (shift or {}).get(model, rel_q)
        skill = _skill_for(rel_q * ONE_TASK_BEST_QUALITY, difficulties)
        p_ok = [1 / (1 + math.exp(-2.0 * (skill - d))) for d in difficulties]
        k = round(rel_q * ONE_TASK_BEST_QUALITY * ONE_TASK_PROMPTS)
        correct[model] = _correct_prompts(rng, p_ok, k)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(COLUMNS)
        for p in range(ONE_TASK_PROMPTS):
            in_tokens = rng.randint(50, 1500)
            words = " ".join(rng.choices(VOCABULARY, k=in_tokens // 20))
            for model, (_q, rel_cost) in ONE_TASK_MODELS.items():
                q = float(p in correct[model])
                size = in_tokens / 775 * math.exp(rng.gauss(0, 0.2))  # 775: mean input tokens
                cost = ONE_TASK_BEST_COST_USD * rel_cost * size
                row = f"heldout-{p}", "heldout", model, q, f"{cost:.6g}", in_tokens, 100
                out.writerow([*row, words])
    return ONE_TASK_PROMPTS


def parse_shift(text: str) -> tuple[str, float]:
    """``MODEL=QUALITY`` of ``--shift``: a model of the one-task set and its quality relative
    to the best model's, above 0 and at most ``1 / ONE_TASK_BEST_QUALITY``.

    Examples
    --------
    >>> parse_shift("cheap-95=0.93")
    ('cheap-95', 0.93)
    >>> parse_shift("gpt-5=0.9")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: unknown model 'gpt-5' (the one-task set has best, runner-up, ...)
    """
    model, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected MODEL=QUALITY, got {text!r}")
    if model not in ONE_TASK_MODELS:
        known = ", ".join(ONE_TASK_MODELS)
        raise argparse.ArgumentTypeError(f"unknown model {model!r} (the one-task set has {known})")
    try:
        quality = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{model}: quality {value!r} is not a number") from None
    if not 0.0 < quality <= 1.0 / ONE_TASK_BEST_QUALITY:
        raise argparse.ArgumentTypeError(
            f"{model}: quality {quality} relative to the best must be in (0, "
            f"{1.0 / ONE_TASK_BEST_QUALITY:g}]"
        )
    return model, quality


_POLICY_KNOBS = {f.name: f for f in dataclasses.fields(PolicyConfig)}


def parse_policy(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` of ``--policy``: a knob of ``PolicyConfig`` (not the target or the seed,
    which the replay sets) and its value as JSON.

    Examples
    --------
    >>> parse_policy("target_z=0.5")
    ('target_z', 0.5)
    >>> parse_policy("threshold_test_mixture=null")
    ('threshold_test_mixture', None)
    >>> parse_policy("target=0.5")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: 'target' is not a PolicyConfig knob
    """
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    if key not in _POLICY_KNOBS or key in ("fleet_quality_target", "seed"):
        raise argparse.ArgumentTypeError(f"{key!r} is not a PolicyConfig knob")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        raise argparse.ArgumentTypeError(
            f"{key}: {value!r} is not JSON (a string needs quotes)"
        ) from None
    default = _POLICY_KNOBS[key].default
    same_kind = (
        isinstance(parsed, bool) == isinstance(default, bool)
        and isinstance(parsed, int | float) == isinstance(default, int | float)
        and isinstance(parsed, str) == isinstance(default, str)
    )
    if not same_kind and not (parsed is None and "None" in str(_POLICY_KNOBS[key].type)):
        raise argparse.ArgumentTypeError(f"{key}: {value} is not a value like {default!r}")
    return key, parsed


SYNTHETIC_SETS = {
    "synthetic_11_models.csv": write_synthetic,
    "synthetic_one_task_12_models.csv": write_one_task,
}
#: the allowed shortfall below the target before a run counts as a miss (issue 15)
MISS_TOLERANCE = 0.005
#: mean saving issue 15 asks at a quality target, per data set
SAVING_FLOORS = {
    ("synthetic_one_task_12_models.csv", 0.95): 0.80,
    ("synthetic_one_task_12_models.csv", 0.99): 0.30,
    ("routellm_mmlu.csv", 0.95): 0.45,
    ("routellm_gsm8k.csv", 0.95): 0.15,
}
QUICK_ARGS = ["--seeds", "1", "--targets", "0.95", "--no-synthetic", "--only", "gsm8k"]
QUICK_SECONDS = 5


@dataclasses.dataclass(frozen=True)
class _Job:
    """One replay: an outcomes file at one target and seed, with the policy's knobs."""

    path: str
    target: float
    seed: int
    config: PolicyConfig | None = None


@functools.cache
def _outcomes(path: str) -> Outcomes:
    """An outcomes file, read once per worker process: every replay of it only reads it."""
    return load_outcomes(path)


def _one(job: _Job) -> tuple[_Job, dict, float]:
    data = _outcomes(job.path)
    t0 = time.perf_counter()
    result = run_backtest(data, job.target, job.seed, config=job.config)
    return job, result, time.perf_counter() - t0


@dataclasses.dataclass(frozen=True)
class _BaselineJob:
    """The reference learner's replays of one outcomes file at one penalty, seeds 0..N-1."""

    path: str
    penalty: float
    seeds: int


def _baseline(job: _BaselineJob) -> tuple[str, list[BaselineRun]]:
    data = _outcomes(job.path)
    return job.path, [replay(data, job.penalty, seed) for seed in range(job.seeds)]


def _summarise(runs: list[dict], target: float) -> dict[str, float]:
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


def _done_when(summary: dict[tuple[str, float], dict[str, float]]) -> list[tuple[str, bool]]:
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


def add_policy_option(parser: argparse.ArgumentParser) -> None:
    """``--policy KEY=VALUE ...``: replay with these ``PolicyConfig`` knobs changed."""
    parser.add_argument(
        "--policy",
        type=parse_policy,
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="replay with these PolicyConfig knobs changed (values as JSON, e.g. target_z=0.5)",
    )


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    parser.add_argument(
        "--targets", type=float, nargs="+", default=[0.90, 0.95, 0.99], help="quality targets"
    )
    parser.add_argument(
        "--synthetic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add the synthetic sets (default: on)",
    )
    parser.add_argument("--data", type=Path, default=OUTCOMES, help="folder of outcomes files")
    parser.add_argument("--only", nargs="+", help="only files whose name contains one of these")
    parser.add_argument("--json", type=Path, help="also write every run's result to this file")
    parser.add_argument(
        "--shift",
        type=parse_shift,
        nargs="+",
        default=[],
        metavar="MODEL=QUALITY",
        help="write the one-task set with these models moved to another quality relative to "
        "the best (a nearby world, e.g. cheap-95=0.93)",
    )
    parser.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also replay issue 15's reference learner (per-task Thompson sampling with a "
        "cost penalty, the penalty picked in hindsight from twelve; about a sixth more run "
        "time) and print it next to the policy (default: on)",
    )
    add_policy_option(parser)
    args = parser.parse_args()
    if args.shift and not args.synthetic:
        parser.error("--shift moves models of the synthetic one-task set: drop --no-synthetic")
    return args


def _write_synthetic_sets(folder: Path, shift: Mapping[str, float]) -> list[str]:
    """Write the synthetic sets into ``folder`` (the one-task set moved by ``shift``)."""
    paths = []
    for name, write in SYNTHETIC_SETS.items():
        if write is write_one_task and shift:
            moved = ",".join(f"{m}={q:g}" for m, q in sorted(shift.items()))
            name = name.replace(".csv", f"[{moved}].csv")
            n = write_one_task(folder / name, shift=shift)
        else:
            n = write(folder / name)
        print(f"wrote {name}: {n} prompts", flush=True)
        paths.append(str(folder / name))
    return paths


def _print_summary(summary: dict[tuple[str, float], dict[str, float]], seeds: int) -> None:
    print(f"\nseeds 0-{seeds - 1}, bandit feedback; miss: ratio < target - {MISS_TOLERANCE}")
    header = "data", "target", "ratio mean", "worst", "saving mean", "worst", "misses", "s/run"
    print("{:<34} {:>6} {:>10} {:>6} {:>11} {:>6} {:>7} {:>6}".format(*header))
    for (name, target), s in summary.items():
        print(
            f"{name:<34} {target:>6.2f} {s['ratio_mean']:>10.3f} {s['ratio_worst']:>6.3f} "
            f"{s['saving_mean']:>11.1%} {s['saving_worst']:>6.1%} "
            f"{s['misses']:>3}/{s['runs']:<3} {s['seconds']:>6.1f}"
        )


def _print_baseline(
    summary: dict[tuple[str, float], dict[str, float]],
    baseline: dict[str, list[BaselineRun]],
    targets: list[float],
) -> None:
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


def main() -> int:
    args = _arguments()
    shift = dict(args.shift)
    config = PolicyConfig(**dict(args.policy)) if args.policy else None
    files = sorted(str(p) for p in args.data.glob("*.csv*"))
    tmp = tempfile.TemporaryDirectory()
    if args.synthetic:
        files += _write_synthetic_sets(Path(tmp.name), shift)
    if args.only:
        files = [f for f in files if any(o in Path(f).name for o in args.only)]
    if not files:
        print(f"no outcomes files in {args.data}", file=sys.stderr)
        return 2

    jobs = [_Job(f, t, s, config) for f in files for t in args.targets for s in range(args.seeds)]
    results: dict[tuple[str, float], list[dict]] = {}
    seconds: dict[str, list[float]] = {}
    records = []
    with ProcessPoolExecutor(max_workers=2) as pool:
        for done, (job, result, secs) in enumerate(pool.map(_one, jobs), 1):
            name = Path(job.path).name
            results.setdefault((name, job.target), []).append(result)
            seconds.setdefault(name, []).append(secs)
            records.append({"data": name, "target": job.target, "seed": job.seed, **result})
            print(f"  [{done}/{len(jobs)}] {name} target {job.target} seed {job.seed}", flush=True)
        baseline: dict[str, list[BaselineRun]] = {}
        if args.baseline:
            print("reference learner: replaying every file at each penalty", flush=True)
            ts_jobs = [_BaselineJob(f, p, args.seeds) for f in files for p in PENALTIES]
            for path, runs in pool.map(_baseline, ts_jobs):
                baseline.setdefault(Path(path).name, []).extend(runs)
    tmp.cleanup()
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))

    summary = {
        key: {**_summarise(runs, key[1]), "seconds": statistics.fmean(seconds[key[0]])}
        for key, runs in results.items()
    }
    _print_summary(summary, args.seeds)
    if baseline:
        _print_baseline(summary, baseline, args.targets)
    if shift or config is not None:
        print("\nissue 15, done when: not checked (--shift or --policy; no figure recorded)")
        return 0
    print("\nissue 15, done when:")
    for text, ok in _done_when(summary):
        print(f"  {'met   ' if ok else 'MISSED'} {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Routing-policy backtests across data sets and seeds, against the single best model.

Replays every outcomes file in ``../shared/data/outcomes`` (the RouteLLM evaluations: two
models each) through the live routing policy with bandit feedback, for several seeds, and
prints quality ratio and saving next to the issue's targets (issue #5: quality ratio >= 0.945
at target 0.95; saving >= 0.45 on MMLU, >= 0.15 on GSM8K).

It also runs a many-model stress set this script writes itself (``--no-synthetic`` leaves it
out): 11 models over 7 task families (33 task types), correctness drawn from a logistic
skill-versus-difficulty model with per-family affinities, and prices spanning two orders of
magnitude. It is made up, not history:
it shows how the policy copes when exploration has ten arms to try on every task type.

    .venv/bin/python bench/backtest.py [--seeds 5] [--target 0.95] [--no-synthetic]
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from finops.optimizer.domain.backtest import run_backtest

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


def _one(job: tuple[str, float, int]) -> tuple[str, int, dict, float]:
    path, target, seed = job
    t0 = time.perf_counter()
    result = run_backtest(path, target, seed)
    return path, seed, result, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    parser.add_argument("--target", type=float, default=0.95, help="fleet quality target")
    parser.add_argument(
        "--synthetic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add the many-model stress set (default: on)",
    )
    parser.add_argument("--data", type=Path, default=OUTCOMES, help="folder of outcomes files")
    args = parser.parse_args()

    files = sorted(str(p) for p in args.data.glob("*.csv*"))
    tmp = tempfile.TemporaryDirectory()
    if args.synthetic:
        synthetic = Path(tmp.name) / "synthetic_11_models.csv"
        n = write_synthetic(synthetic)
        print(f"wrote {synthetic.name}: {n} prompts x {len(SYNTHETIC_MODELS)} models", flush=True)
        files.append(str(synthetic))
    if not files:
        print(f"no outcomes files in {args.data}", file=sys.stderr)
        return 2

    jobs = [(f, args.target, s) for f in files for s in range(args.seeds)]
    rows: dict[str, list[tuple[int, dict, float]]] = {}
    with ProcessPoolExecutor(max_workers=2) as pool:
        for done, (path, seed, result, secs) in enumerate(pool.map(_one, jobs), start=1):
            rows.setdefault(path, []).append((seed, result, secs))
            print(f"  [{done}/{len(jobs)}] {Path(path).name} seed {seed}", flush=True)
    tmp.cleanup()

    print(f"\ntarget {args.target}, seeds 0-{args.seeds - 1}, bandit feedback")
    header = "data", "prompts", "models", "quality ratio min-max (mean)", "saving", "min", "s/run"
    print("{:<26} {:>7} {:>6}  {:<28} {:>11} {:>6} {:>6}".format(*header))
    for path, runs in rows.items():
        name = Path(path).name
        ratios = [r["quality_ratio"] for _s, r, _t in runs]
        savings = [r["saving"] for _s, r, _t in runs]
        first = runs[0][1]
        print(
            f"{name:<26} {first['prompts']:>7} {len(first['models']):>6} "
            f" {min(ratios):.3f}-{max(ratios):.3f} ({statistics.mean(ratios):.3f}){'':<9} "
            f"{statistics.mean(savings):>11.1%} {min(savings):>6.1%} "
            f"{statistics.mean(t for _s, _r, t in runs):>6.1f}"
        )
        need = TARGETS.get(name)
        if need is not None:
            meets = [r >= 0.945 and s >= need for r, s in zip(ratios, savings, strict=True)]
            verdict = "met" if meets[0] else "MISSED"
            print(
                f"{'':<26} target ratio >= 0.945 and saving >= {need:.0%}: seed 0 {verdict}, "
                f"{sum(meets)}/{len(meets)} seeds meet it"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

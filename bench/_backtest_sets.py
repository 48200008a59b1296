"""The synthetic outcome sets of ``bench/backtest.py``: made up, not history.

* ``synthetic_11_models`` (:func:`write_synthetic`): 11 models over 7 task families (33 task
  types), correctness from a logistic skill-versus-difficulty model with per-family affinities.
* ``synthetic_one_task_12_models`` (:func:`write_one_task`): the held-out shape of issue 15, one
  task type and 12 models (``--shift`` moves models of it to a nearby world).

:data:`SYNTHETIC_SETS` maps each file name to its writer.
"""

from __future__ import annotations

import csv
import math
import random
import statistics
from collections.abc import Mapping
from pathlib import Path

COLUMNS = "prompt_id task_type model quality cost_usd input_tokens output_tokens prompt".split()

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


SYNTHETIC_SETS = {
    "synthetic_11_models.csv": write_synthetic,
    "synthetic_one_task_12_models.csv": write_one_task,
}

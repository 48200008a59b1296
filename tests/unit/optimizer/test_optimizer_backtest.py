"""Unit tests of the offline backtest and the frontier plot on synthetic outcome files."""

from __future__ import annotations

import csv
import gzip
import io
import os
import random
from pathlib import Path

import pytest

from finops.optimizer.adapters.outcome_files import load_outcomes
from finops.optimizer.domain.backtest import run_backtest

EXPECTED_KEYS = {
    "prompts",
    "models",
    "best_model",
    "best_quality",
    "best_cost_per_prompt",
    "policy_quality",
    "policy_cost_per_prompt",
    "quality_ratio",
    "saving",
    "oracle_quality",
    "oracle_cost_per_prompt",
}

# model -> per-task success probability; price per input token
TASKS = {"demo/easy": 0.4, "demo/mid": 0.3, "demo/hard": 0.3}
MODELS = {
    "big-model": ({"demo/easy": 0.95, "demo/mid": 0.85, "demo/hard": 0.80}, 1e-5),
    "small-model": ({"demo/easy": 0.93, "demo/mid": 0.70, "demo/hard": 0.30}, 2e-7),
}
HEADER = [
    "prompt_id",
    "task_type",
    "model",
    "quality",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "prompt",
]


def _rows(n_prompts: int, seed: int = 0, drop_every: int = 0):
    rng = random.Random(seed)
    tasks = list(TASKS)
    weights = [TASKS[t] for t in tasks]
    for i in range(n_prompts):
        task = rng.choices(tasks, weights)[0]
        tokens = rng.randint(20, 200)
        prompt = f"Question {i} about {task}: " + "word " * tokens
        for j, (model, (acc, price)) in enumerate(MODELS.items()):
            if drop_every and i % drop_every == 0 and j == 1:
                continue  # this prompt has no outcome for the small model
            quality = 1 if rng.random() < acc[task] else 0
            yield [
                f"p{i}",
                task,
                model,
                quality,
                round(price * (tokens + 5), 10),
                tokens,
                5,
                prompt,
            ]


def _write(path: Path, rows, gz: bool = False) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(HEADER)
    w.writerows(rows)
    data = buf.getvalue().encode()
    if gz:
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def _reference(path: Path):
    """Independent computation of the reference numbers from the raw rows."""
    by_prompt: dict[str, dict[str, tuple[float, float]]] = {}
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", newline="") as fh:
        for row in csv.DictReader(fh):
            by_prompt.setdefault(row["prompt_id"], {})[row["model"]] = (
                float(row["quality"]),
                float(row["cost_usd"]),
            )
    n = len(by_prompt)
    means = {}
    for m in MODELS:
        vals = [o[m] for o in by_prompt.values() if m in o]
        means[m] = (sum(v[0] for v in vals) / len(vals), sum(v[1] for v in vals) / len(vals))
    best = max(means, key=lambda m: means[m][0])
    oq = sum(max(q for q, _ in o.values()) for o in by_prompt.values()) / n
    oc = (
        sum(
            min(c for q, c in o.values() if q >= max(q2 for q2, _ in o.values()))
            for o in by_prompt.values()
        )
        / n
    )
    return n, best, means[best], oq, oc


@pytest.fixture()
def synthetic_csv(tmp_path):
    return _write(tmp_path / "outcomes.csv", _rows(1500, seed=1))


def test_backtest_keys_and_reference_values(synthetic_csv):
    result = run_backtest(load_outcomes(synthetic_csv), quality_target=0.95, seed=0)
    assert set(result) == EXPECTED_KEYS
    n, best, (bq, bc), oq, oc = _reference(synthetic_csv)
    assert result["prompts"] == n == 1500
    assert result["models"] == sorted(MODELS)
    assert result["best_model"] == best == "big-model"
    assert result["best_quality"] == pytest.approx(bq)
    assert result["best_cost_per_prompt"] == pytest.approx(bc)
    assert result["oracle_quality"] == pytest.approx(oq)
    assert result["oracle_cost_per_prompt"] == pytest.approx(oc)
    assert result["oracle_quality"] >= result["best_quality"]
    assert result["quality_ratio"] == pytest.approx(result["policy_quality"] / bq)
    assert result["saving"] == pytest.approx(1 - result["policy_cost_per_prompt"] / bc)
    assert 0.0 < result["policy_cost_per_prompt"] < bc


def test_backtest_finds_the_cheap_model_where_it_is_nearly_as_good(synthetic_csv):
    # the cheap model is nearly as good on 40% of the traffic: the policy must find that,
    # on average over seeds (one seed's start can be unlucky), without losing the target
    data = load_outcomes(synthetic_csv)
    results = [run_backtest(data, quality_target=0.95, seed=seed) for seed in range(4)]
    assert min(r["quality_ratio"] for r in results) >= 0.93
    assert sum(r["saving"] for r in results) / len(results) >= 0.3


def test_backtest_is_deterministic_and_seed_dependent(synthetic_csv):
    a = run_backtest(load_outcomes(synthetic_csv), 0.95, seed=3)
    b = run_backtest(load_outcomes(synthetic_csv), 0.95, seed=3)
    c = run_backtest(load_outcomes(synthetic_csv), 0.95, seed=4)
    assert a == b
    assert a["policy_cost_per_prompt"] != c["policy_cost_per_prompt"]


def test_backtest_quality_target_moves_along_the_frontier(synthetic_csv):
    strict = run_backtest(load_outcomes(synthetic_csv), 0.99, seed=0)
    loose = run_backtest(load_outcomes(synthetic_csv), 0.85, seed=0)
    assert strict["quality_ratio"] > loose["quality_ratio"]
    assert strict["saving"] < loose["saving"]


def test_backtest_progress_callback_and_details(synthetic_csv):
    calls = []
    details: dict = {}
    run_backtest(
        load_outcomes(synthetic_csv),
        0.95,
        0,
        progress=lambda d, t, m: calls.append((d, t, m)),
        progress_every=400,
        details=details,
    )
    assert [c[0] for c in calls] == [400, 800, 1200, 1500]
    assert all(c[1] == 1500 for c in calls)
    assert 0.0 < calls[-1][2]["quality"] <= 1.0 and calls[-1][2]["cost_per_prompt"] > 0
    assert sum(details["choices"].values()) == 1500
    assert details["policy_status"]["reference_arm"].startswith("big-model|")
    assert details["runtime_s"] > 0


def test_backtest_reads_gzip(tmp_path):
    path = _write(tmp_path / "outcomes.csv.gz", _rows(600, seed=2), gz=True)
    data = load_outcomes(path)
    assert len(data.prompts) == 600
    assert all(len(p.outcomes) == len(MODELS) for p in data.prompts)
    result = run_backtest(load_outcomes(path), 0.95, seed=0)
    assert set(result) == EXPECTED_KEYS
    _n, _best, (bq, _bc), _oq, oc = _reference(path)
    assert result["best_quality"] == pytest.approx(bq)
    assert result["oracle_cost_per_prompt"] == pytest.approx(oc)


def test_a_file_with_prompts_missing_a_model_is_refused(tmp_path):
    # over rows missing here and there the best single model and the oracle are means over
    # different prompts: the oracle could come out worse than the best model
    path = _write(tmp_path / "outcomes.csv.gz", _rows(600, seed=2, drop_every=7), gz=True)
    with pytest.raises(ValueError) as refused:
        load_outcomes(path)
    assert str(refused.value) == (
        "line 2: prompt p0 has no row for model small-model; each prompt needs a row per model:"
        " big-model, small-model"
    )


def test_plot_frontier_writes_png(tmp_path, synthetic_csv):
    pytest.importorskip("matplotlib")
    from finops.optimizer.adapters.frontier_plot import plot_frontier

    out = tmp_path / "plots" / "frontier.png"
    pts = plot_frontier(load_outcomes(synthetic_csv), out, targets=(0.9, 0.98), seed=0)
    assert out.exists() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [t for t, _ in pts["policy"]] == [0.9, 0.98]
    assert set(pts["models"]) == set(MODELS)
    oq, oc = pts["oracle"]
    assert oq >= pts["models"]["big-model"][0]
    assert oc < pts["models"]["big-model"][1]


def _shared_data_file(name: str) -> Path:
    root = os.environ.get("FINOPS_SHARED_DATA")
    base = Path(root) if root else Path(__file__).resolve().parents[3].parent / "shared" / "data"
    return base / "outcomes" / name


@pytest.mark.skipif(
    not _shared_data_file("routellm_gsm8k.csv").exists(),
    reason="shared reference data not available",
)
def test_backtest_gsm8k_reference_targets():
    outcomes = load_outcomes(_shared_data_file("routellm_gsm8k.csv"))
    result = run_backtest(outcomes, quality_target=0.95, seed=0)
    assert result["prompts"] == 1319
    assert result["quality_ratio"] >= 0.945
    assert result["saving"] >= 0.15

"""Offline replay of logged outcomes through :class:`.policy.RoutingPolicy` (bandit feedback).

Input: long-format outcome rows, one per ``(prompt, model)``, as read from a file by
:mod:`finops.optimizer.adapters.outcome_files`::

    prompt_id, task_type, model, quality, cost_usd, input_tokens, output_tokens, prompt

The replay shuffles the prompts with a seeded RNG, asks the policy for one model per prompt
(features come from the prompt text and ``input_tokens`` only), reveals only that model's outcome
and reports the realised quality and cost against the best single model and the per-prompt
oracle.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .arm_identity import Arm
from .features import prompt_features
from .policy import PolicyConfig, RoutingPolicy

__all__ = [
    "DEFAULT_TARGETS",
    "BestModel",
    "Outcomes",
    "ProgressCallback",
    "PromptRecord",
    "best_single_model",
    "frontier_points",
    "run_backtest",
]

#: the quality targets of a cost-quality frontier
DEFAULT_TARGETS: tuple[float, ...] = (0.85, 0.9, 0.93, 0.95, 0.97, 0.99)

#: called as ``progress(done, total, running_metrics)`` every ``progress_every`` prompts
ProgressCallback = Callable[[int, int, dict[str, float]], None]

REPLAY_PROVIDER = "replay"
REPLAY_CONFIG = "default"


@dataclass
class PromptRecord:
    prompt_id: str
    task_type: str
    prompt: str
    input_tokens: float | None
    outcomes: dict[str, tuple[float, float]] = field(default_factory=dict)  # model -> (q, cost)


@dataclass
class Outcomes:
    prompts: list[PromptRecord]
    models: list[str]

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, str | None]]) -> Outcomes:
        """One :class:`PromptRecord` per prompt (first-seen order kept) from outcome rows.

        A missing required column raises ``KeyError`` naming it; a value that is not a
        number raises ``ValueError``.
        """
        by_id: dict[str, PromptRecord] = {}
        models: dict[str, None] = {}
        for row in rows:
            pid = str(row["prompt_id"])
            rec = by_id.get(pid)
            if rec is None:
                tok = row.get("input_tokens")
                rec = by_id[pid] = PromptRecord(
                    prompt_id=pid,
                    task_type=str(row["task_type"]),
                    prompt=row.get("prompt") or "",
                    input_tokens=float(tok) if tok not in (None, "") else None,
                )
            model = str(row["model"])
            models[model] = None
            rec.outcomes[model] = (float(str(row["quality"])), float(str(row["cost_usd"])))
        return cls(prompts=list(by_id.values()), models=sorted(models))


def _arm_key(model: str) -> str:
    return Arm(model, REPLAY_PROVIDER, REPLAY_CONFIG).key


def _reference_numbers(data: Outcomes) -> dict[str, Any]:
    sums: dict[str, list[float]] = {m: [0.0, 0.0, 0.0] for m in data.models}
    oracle_q = 0.0
    oracle_c = 0.0
    for rec in data.prompts:
        best_q = max(q for q, _ in rec.outcomes.values())
        oracle_q += best_q
        oracle_c += min(c for q, c in rec.outcomes.values() if q >= best_q)
        for m, (q, c) in rec.outcomes.items():
            s = sums[m]
            s[0] += q
            s[1] += c
            s[2] += 1
    means = {m: (s[0] / s[2], s[1] / s[2]) for m, s in sums.items() if s[2] > 0}
    best = max(means, key=lambda m: (means[m][0], -means[m][1]))
    n = len(data.prompts)
    return {
        "models": {m: {"quality": q, "cost_per_prompt": c} for m, (q, c) in means.items()},
        "best_model": best,
        "best_quality": means[best][0],
        "best_cost_per_prompt": means[best][1],
        "oracle_quality": oracle_q / n,
        "oracle_cost_per_prompt": oracle_c / n,
    }


@dataclass(frozen=True)
class BestModel:
    """The best single model of a backtest: the reference of its quality ratio and saving."""

    name: str
    #: mean quality per prompt
    quality: float
    #: mean cost per prompt (USD)
    cost_per_prompt: float


def best_single_model(data: Outcomes) -> BestModel:
    """The model of the highest mean quality (the cheaper one on a tie), with its mean quality
    and cost per prompt.

    Examples
    --------
    >>> rec = PromptRecord("p", "t", "", None, {"a": (1.0, 0.02), "b": (1.0, 0.01)})
    >>> best_single_model(Outcomes([rec], ["a", "b"]))
    BestModel(name='b', quality=1.0, cost_per_prompt=0.01)
    """
    ref = _reference_numbers(data)
    return BestModel(ref["best_model"], ref["best_quality"], ref["best_cost_per_prompt"])


def run_backtest(
    data: Outcomes,
    quality_target: float = 0.95,
    seed: int = 0,
    *,
    progress: ProgressCallback | None = None,
    progress_every: int = 1000,
    config: PolicyConfig | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Replay outcomes through the routing policy.

    Parameters
    ----------
    data
        The outcomes (see :meth:`Outcomes.from_rows`).
    quality_target
        Fleet-wide quality to keep relative to the best single model (e.g. ``0.95``).
    seed
        Seeds the prompt order and the policy's randomisation.
    progress
        Optional callback ``progress(done, total, metrics)`` called every ``progress_every``
        prompts and at the end; ``metrics`` has the running ``quality`` and ``cost_per_prompt``.
    config
        Policy configuration (its ``fleet_quality_target`` and ``seed`` are overridden).
    details
        If a dict is given it is filled with extra information (runtime, per-model means, policy
        status, drift events, choice counts).

    Returns
    -------
    dict
        ``prompts, models, best_model, best_quality, best_cost_per_prompt, policy_quality,
        policy_cost_per_prompt, quality_ratio, saving, oracle_quality, oracle_cost_per_prompt``.
    """
    t0 = time.perf_counter()
    if not data.prompts:
        raise ValueError("no prompts in the outcomes")
    ref = _reference_numbers(data)
    policy, arms = _policy_for(data, quality_target, seed, config)
    order = list(range(len(data.prompts)))
    rng = random.Random(seed)
    rng.shuffle(order)
    replay = _replay(data, policy, arms, order, rng, progress, max(1, int(progress_every)))
    result = _result(ref, replay, len(order), list(data.models))
    if details is not None:
        details.update(
            {
                "runtime_s": time.perf_counter() - t0,
                "per_model": ref["models"],
                "choices": replay.choices,
                "policy_status": policy.status(),
                "drift_events": replay.drift_events,
            }
        )
    return result


@dataclass(frozen=True)
class _ReplayArms:
    """The policy's arm key of every model, and back."""

    arm_of: dict[str, str]
    model_of: dict[str, str]


@dataclass
class _Replay:
    """What a replay realised: quality and cost sums, choices per model, drift events."""

    quality_sum: float = 0.0
    cost_sum: float = 0.0
    choices: dict[str, int] = field(default_factory=dict)
    drift_events: list[dict[str, Any]] = field(default_factory=list)


def _policy_for(
    data: Outcomes, quality_target: float, seed: int, config: PolicyConfig | None
) -> tuple[RoutingPolicy, _ReplayArms]:
    """A fresh policy at this target and seed, with every task type's models as arms."""
    cfg = PolicyConfig(**{**(config.__dict__ if config else {})})
    cfg.fleet_quality_target = quality_target
    cfg.seed = seed
    arm_of = {m: _arm_key(m) for m in data.models}
    model_of = {a: m for m, a in arm_of.items()}
    policy = RoutingPolicy(config=cfg)
    for task_type in sorted({r.task_type for r in data.prompts}):
        present = sorted({m for r in data.prompts if r.task_type == task_type for m in r.outcomes})
        policy.register_arms(task_type, [arm_of[m] for m in present])
    return policy, _ReplayArms(arm_of, model_of)


def _replay(
    data: Outcomes,
    policy: RoutingPolicy,
    arms: _ReplayArms,
    order: list[int],
    rng: random.Random,
    progress: ProgressCallback | None,
    every: int,
) -> _Replay:
    """Ask the policy for one model per prompt in ``order`` and show it only that outcome."""
    total = len(order)
    replay = _Replay(choices={m: 0 for m in data.models})
    for done, idx in enumerate(order, start=1):
        rec = data.prompts[idx]
        feats = prompt_features(rec.prompt, rec.input_tokens)
        if len(rec.outcomes) == len(data.models):
            decision = policy.recommend(rec.task_type, feats, rng)
        else:
            decision = policy.recommend(
                rec.task_type, feats, rng, candidates=[arms.arm_of[m] for m in rec.outcomes]
            )
        model = arms.model_of[decision.arm]
        q, c = rec.outcomes[model]
        policy.update(rec.task_type, decision.arm, feats, q, c, None, True)
        replay.quality_sum += q
        replay.cost_sum += c
        replay.choices[model] += 1
        if progress is not None and (done % every == 0 or done == total):
            progress(
                done,
                total,
                {"quality": replay.quality_sum / done, "cost_per_prompt": replay.cost_sum / done},
            )
        if policy._drift_events:
            replay.drift_events.extend(policy.drain_drift_events())
    return replay


def _result(ref: dict[str, Any], replay: _Replay, n: int, models: list[str]) -> dict[str, Any]:
    """The report of a replay of ``n`` prompts against the reference numbers."""
    policy_q = replay.quality_sum / n
    policy_c = replay.cost_sum / n
    return {
        "prompts": n,
        "models": models,
        "best_model": ref["best_model"],
        "best_quality": ref["best_quality"],
        "best_cost_per_prompt": ref["best_cost_per_prompt"],
        "policy_quality": policy_q,
        "policy_cost_per_prompt": policy_c,
        "quality_ratio": policy_q / ref["best_quality"] if ref["best_quality"] > 0 else 0.0,
        "saving": 1.0 - policy_c / ref["best_cost_per_prompt"]
        if ref["best_cost_per_prompt"] > 0
        else 0.0,
        "oracle_quality": ref["oracle_quality"],
        "oracle_cost_per_prompt": ref["oracle_cost_per_prompt"],
    }


def frontier_points(
    data: Outcomes,
    targets: Sequence[float] = DEFAULT_TARGETS,
    seed: int = 0,
    *,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Backtest the policy at several quality targets.

    Returns ``{"policy": [(target, result), ...], "models": {model: (quality, cost)},
    "oracle": (quality, cost), "best_model": name}`` (qualities are mean quality per prompt, costs
    mean USD per prompt).
    """
    runs = []
    first: dict[str, Any] | None = None
    for target in targets:
        details: dict[str, Any] = {}
        result = run_backtest(data, target, seed, details=details, progress=progress)
        runs.append((float(target), result))
        if first is None:
            first = {"result": result, "details": details}
    assert first is not None, "at least one target is required"
    per_model = first["details"]["per_model"]
    res = first["result"]
    return {
        "policy": runs,
        "models": {m: (v["quality"], v["cost_per_prompt"]) for m, v in per_model.items()},
        "oracle": (res["oracle_quality"], res["oracle_cost_per_prompt"]),
        "best_model": res["best_model"],
    }

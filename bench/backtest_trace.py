"""Where a backtest's quality and saving go: one replay, block by block.

Replays one outcomes file at one quality target and seed through the routing policy (bandit
feedback, as ``bench/backtest.py`` does) and prints, for every block of requests, the realised
quality ratio and saving so far, the fleet planner's state at the end of the block and the block's
traffic per model.  The planner's state: the quality ratio as the policy estimates it (against its
reference arm's estimated total: the gap to the realised ratio is the reference's estimation
error), the aim (the target times the reference's upper bound, ``se`` the standard error of the
ratio it adds ``target_z`` of), the paced ratio (the aim once the surplus or deficit so far is
paced out), the planned ratio (paced plus the expected exploration loss), that expected loss per
request as a share of the best model's quality, the headroom exploration is budgeted from
(``slack_from_headroom``), and the share of the block's requests served at shadow price 0, i.e.
with the plan saturated (planned above what every request's best estimate delivers).  A
diagnostic, not a figure: it records nothing in ``bench/out``.

    .venv/bin/python bench/backtest_trace.py FILE [--target 0.95] [--seed 0] [--block 240] [--arms]
        [--policy KEY=VALUE ...]

A block's traffic per model counts, in parentheses, the requests the policy explored (served
another arm than its greedy one).  A second line sorts the block's requests by what made the
pick -- ``greedy``, or for an explored one what gave the arm its probability
(``Decision.exploration``: Thompson sampling, identification of the best arm, reference audit,
threshold test, fair trial, floor) -- with the quality they gave up against the best single
model on those same prompts, in percent of the whole run's quality: where the run's shortfall
went (its cells add up to the block's shortfall).  ``--policy`` replays with ``PolicyConfig``
knobs changed, as ``bench/backtest.py --policy`` does.

``FILE`` may also name a synthetic set of ``bench/backtest.py`` (``synthetic_one_task_12_models``
or ``synthetic_11_models``); it is written to a temporary folder first.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backtest import SYNTHETIC_SETS, add_policy_option

from finops.optimizer.adapters.outcome_files import load_outcomes
from finops.optimizer.domain.arm_identity import Arm
from finops.optimizer.domain.backtest import (
    REPLAY_CONFIG,
    REPLAY_PROVIDER,
    Outcomes,
    best_single_model,
)
from finops.optimizer.domain.features import prompt_features
from finops.optimizer.domain.policy import PolicyConfig, RoutingPolicy


@dataclass
class _Block:
    """What one block of requests realised."""

    traffic: Counter[str] = field(default_factory=Counter)
    explored: Counter[str] = field(default_factory=Counter)
    saturated: int = 0
    #: requests by what made the pick ("greedy" or a mechanism of exploration), and the quality
    #: they gave up against the best model
    picked_by: Counter[str] = field(default_factory=Counter)
    given_up: dict[str, float] = field(default_factory=dict)

    def add_pick(self, made_by: str, given_up: float) -> None:
        """Count one request ``made_by`` that gave up ``given_up`` against the best model."""
        self.picked_by[made_by] += 1
        self.given_up[made_by] = self.given_up.get(made_by, 0.0) + given_up

    def given_up_line(self, run_quality: float) -> str:
        """``what made the pick: requests (quality given up, % of the run's)``, most requests
        first.

        Examples
        --------
        >>> block = _Block()
        >>> block.add_pick("greedy", 0.0)
        >>> block.add_pick("thompson", 0.5)
        >>> block.add_pick("greedy", 1.0)
        >>> block.add_pick("fair trial", 1.0)
        >>> block.add_pick("thompson", -0.5)
        >>> block.given_up_line(run_quality=100.0)
        'given up by  greedy: 2 (+1.00%)  thompson: 2 (+0.00%)  fair trial: 1 (+1.00%)'
        >>> _Block().given_up_line(run_quality=100.0)
        'given up by  -'
        """
        cells = [
            f"{why}: {n} ({100 * self.given_up[why] / run_quality:+.2f}%)"
            for why, n in self.picked_by.most_common()
        ]
        return "given up by  " + ("  ".join(cells) or "-")


def trace(
    data: Outcomes,
    target: float,
    seed: int,
    block: int,
    arms: bool = False,
    knobs: Mapping[str, Any] | None = None,
) -> None:
    """Replay ``data`` and print one line per ``block`` requests (with ``arms``, then each arm's
    estimate on each task type); ``knobs`` change ``PolicyConfig`` settings."""
    # the arms of bench/backtest.py's replay, in the same order: the same decisions
    arm_of = {m: Arm(m, REPLAY_PROVIDER, REPLAY_CONFIG).key for m in data.models}
    model_of = {a: m for m, a in arm_of.items()}
    config = PolicyConfig(fleet_quality_target=target, seed=seed, **(knobs or {}))
    policy = RoutingPolicy(config)
    for task_type in sorted({r.task_type for r in data.prompts}):
        present = sorted({m for r in data.prompts if r.task_type == task_type for m in r.outcomes})
        policy.register_arms(task_type, [arm_of[m] for m in present])
    best = best_single_model(data)
    best_q, best_c = best.quality, best.cost_per_prompt
    order = list(range(len(data.prompts)))
    rng = random.Random(seed)
    rng.shuffle(order)
    q_sum = c_sum = 0.0
    current = _Block()
    for done, idx in enumerate(order, start=1):
        rec = data.prompts[idx]
        feats = prompt_features(rec.prompt, rec.input_tokens)
        current.saturated += policy.mu == 0.0
        candidates = None
        if len(rec.outcomes) < len(data.models):
            candidates = [arm_of[m] for m in rec.outcomes]
        decision = policy.recommend(rec.task_type, feats, rng, candidates=candidates)
        model = model_of[decision.arm]
        q, c = rec.outcomes[model]
        policy.update(rec.task_type, decision.arm, feats, q, c, None, True)
        q_sum += q
        c_sum += c
        current.traffic[model] += 1
        current.explored[model] += decision.explored
        made_by = str(decision.exploration) if decision.explored else "greedy"
        # a prompt the best model has no outcome for gives up nothing against it
        best_outcome = rec.outcomes.get(best.name)
        current.add_pick(made_by, 0.0 if best_outcome is None else best_outcome[0] - q)
        if done % block == 0 or done == len(order):
            st = policy.status()
            picks = " ".join(
                f"{m}:{k}({current.explored[m]})" for m, k in current.traffic.most_common()
            )
            saving = 1 - c_sum / done / best_c
            print(
                f"{done:6d}  ratio {q_sum / done / best_q:.3f}"
                f" (estimated {st.get('estimated_quality_ratio', 0.0):.3f})  saving {saving:6.1%}"
                f"  aim {st.get('aim', 0.0):.3f} (se {st.get('ratio_se', 0.0):.3f})"
                f"  paced {st.get('paced_ratio', 0.0):.3f}"
                f"  planned {st.get('planned_ratio', 0.0):.3f}"
                f"  exploration loss {st.get('exploration_loss', 0.0) / best_q:.3f}"
                f"  headroom {st.get('headroom') or 0.0:.3f}"
                f"  price 0: {current.saturated / sum(current.traffic.values()):4.0%}"
                f"  reference {model_of.get(st.get('reference_arm') or '', '-')}  |  {picks}"
            )
            print(f"        {current.given_up_line(best_q * len(order))}")
            if arms:
                _print_arms(policy, model_of, sorted({r.task_type for r in data.prompts}))
            current = _Block()


def _print_arms(policy: RoutingPolicy, model_of: dict[str, str], task_types: list[str]) -> None:
    """Each task type's arms, the best estimate first: quality +- sd (outcomes)."""
    for task_type in task_types:
        summary = policy.arm_summary(task_type)
        ranked = sorted(summary.items(), key=lambda kv: -kv[1]["quality"])
        cells = [
            f"{model_of[a]} {s['quality']:.3f}+-{s['quality_sd']:.3f} ({s['observations']})"
            for a, s in ranked
        ]
        print(f"        {task_type}: " + "  ".join(cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="outcomes file, or the name of a synthetic set")
    parser.add_argument("--target", type=float, default=0.95, help="fleet quality target")
    parser.add_argument("--seed", type=int, default=0, help="prompt order and policy seed")
    parser.add_argument("--block", type=int, default=240, help="requests per line")
    parser.add_argument("--arms", action="store_true", help="also print every arm's estimate")
    add_policy_option(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.file)
        synthetic = [name for name in SYNTHETIC_SETS if name.startswith(path.stem)]
        if not path.exists() and synthetic:
            path = Path(tmp) / synthetic[0]
            SYNTHETIC_SETS[synthetic[0]](path)
        data = load_outcomes(str(path))
    trace(data, args.target, args.seed, args.block, args.arms, dict(args.policy))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

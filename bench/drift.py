"""The optimizer's cost drift detector: found rises, false alarms, backtest alarms.

Compares, from the same run, the cost detector before ``cost_drift_ranks`` (Page-Hinkley on
the log-cost residual standardised by its first 30 values, frozen: the *baseline*) with the
CUSUM on sequential ranks (``RankDriftMonitor``) on the residual against the learning cost
model, against the model's level kept as it was when the detector settled, and against a
reference halfway (in log) between the two (``PolicyConfig.cost_drift_level_weight`` 0, 1 and
0.5, the policy's default), all fed through the policy's own ``learn_cost`` (the cost model restarts
on an alarm, as in the platform):

(a) per-call cost streams built like the demo's (``finops.cli.simulation``: input tokens
    lognormal around the task type's, output tokens lognormal with sd 0.3, priced with
    genai-prices list prices), with a 15 % rise in output tokens after ``--change-at`` calls
    (300: the cost model, a running mean, soon takes in much of the rise; 2,000: a settled
    arm): in how many seeds it was found within 1,000 calls, the median delay, and in how
    many an alarm came before the rise;
(b) the same streams without a change over ``--calls`` calls, and a skewed, heavy-tailed one
    (output tokens lognormal with sd 1): runs with a false alarm, and alarms in all;
(c) the cost alarms raised while replaying the backtest's one-task set
    (``bench/_backtest_sets.py``) at targets 0.9, 0.95 and 0.99, seeds 0-9 (the policy
    raises none);
(d) the streams of (a) with the prompts four times longer from call 300 on and no price
    change (an arm the router starts sending longer prompts to): runs with an alarm, all
    false.

Seeds are fixed and the output deterministic::

    .venv/bin/python bench/drift.py [--seeds 20] [--calls 10000] [--change-at 300 2000]
        [--backtest-seeds 10] [--quick]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from _backtest_sets import write_one_task

from finops.cli.simulation.catalog import TASK_TYPES, TaskType
from finops.common.events import price_call
from finops.optimizer.adapters.outcome_files import load_outcomes
from finops.optimizer.domain.arms import ArmStats
from finops.optimizer.domain.backtest import run_backtest
from finops.optimizer.domain.policy import PolicyConfig
from finops.optimizer.domain.policy.costs import CostBook
from finops.optimizer.domain.policy.learning import learn_cost

#: the detectors compared, by their ``PolicyConfig``
DETECTORS = {
    "baseline (Page-Hinkley)": PolicyConfig(cost_drift_ranks=False, cost_drift_level_weight=0.0),
    "ranks, learning model": PolicyConfig(cost_drift_ranks=True, cost_drift_level_weight=0.0),
    "ranks, frozen level": PolicyConfig(cost_drift_ranks=True, cost_drift_level_weight=1.0),
    "ranks, halfway": PolicyConfig(cost_drift_ranks=True, cost_drift_level_weight=0.5),
}
BACKTEST_TARGETS = (0.9, 0.95, 0.99)
RISE = 1.15  # output tokens after the change
GROWN = 4.0  # input tokens after the prompts grow (no price change)
FOUND_WITHIN = 1000
GROW_AT = 300


@dataclass(frozen=True)
class CostStream:
    """One task type served by one model: per-call input/output tokens and their price."""

    label: str
    task: TaskType
    provider: str
    model: str
    output_sd: float = 0.3  # of the log of the output tokens (the demo's)

    def usd_per_token(self) -> tuple[float, float]:
        """List prices (genai-prices) of one input and one output token."""
        per_m = []
        for tokens_in, tokens_out in ((10**6, 0), (0, 10**6)):
            usage = {"input_tokens": tokens_in, "output_tokens": tokens_out}
            price = price_call(self.provider, self.model, usage)
            assert price.total_usd is not None, f"no price for {self.model}"
            per_m.append(float(price.total_usd) / 1e6)
        return per_m[0], per_m[1]

    def calls(
        self, seed: int, n: int, change_at: int | None, grow_at: int | None = None
    ) -> Iterator[tuple[int, float]]:
        """``(input_tokens, cost_usd)`` of ``n`` calls, output tokens x ``RISE`` from
        ``change_at`` on, input tokens x ``GROWN`` from ``grow_at`` on (drawn like
        ``finops.cli.simulation.fleet.make_tasks``)."""
        rng = random.Random(f"{self.label}:{seed}")
        p_in, p_out = self.usd_per_token()
        kind = self.task
        for i in range(n):
            if rng.random() < kind.long_prompt_share:
                tokens = kind.long_prompt_tokens + rng.randrange(kind.long_prompt_tokens // 2)
            else:
                tokens = max(10, round(kind.input_tokens * math.exp(rng.gauss(0, 0.5))))
            out = kind.output_tokens * math.exp(rng.gauss(0, self.output_sd))
            if change_at is not None and i >= change_at:
                out *= RISE
            if grow_at is not None and i >= grow_at:
                tokens = round(tokens * GROWN)
            yield tokens, tokens * p_in + max(1, round(out)) * p_out


def _task(name: str) -> TaskType:
    return next(t for t in TASK_TYPES if t.name == name)


PLATFORM_STREAMS = (
    CostStream("chat on gpt-4o", _task("chat"), "openai", "gpt-4o"),
    CostStream("extract on gpt-4o-mini", _task("extract"), "openai", "gpt-4o-mini"),
    CostStream("math on claude-haiku-4-5", _task("math"), "anthropic", "claude-haiku-4-5"),
    CostStream("summarize on gpt-4o (2 % long)", _task("summarize"), "openai", "gpt-4o"),
)
HEAVY_STREAM = CostStream("chat on gpt-4o, output sd 1", _task("chat"), "openai", "gpt-4o", 1.0)


def alarms(
    stream: CostStream,
    config: PolicyConfig,
    seed: int,
    n: int,
    change_at: int | None,
    grow_at: int | None = None,
) -> list[int]:
    """The calls at which the cost detector alarmed, fed through ``learn_cost``."""
    costs, st = CostBook(), ArmStats(cost_ranks=config.cost_drift_ranks)
    weight = config.cost_drift_level_weight
    found = []
    for i, (tokens, cost) in enumerate(stream.calls(seed, n, change_at, grow_at)):
        if learn_cost(costs, "arm", st, tokens, cost, weight) is not None:
            found.append(i)
    return found


def _rises(job: tuple[CostStream, PolicyConfig, int, int]) -> list[int]:
    stream, config, seed, change_at = job
    return alarms(stream, config, seed, change_at + FOUND_WITHIN, change_at)


def _stationary(job: tuple[CostStream, PolicyConfig, int, int]) -> list[int]:
    stream, config, seed, n = job
    return alarms(stream, config, seed, n, None)


def _grown(job: tuple[CostStream, PolicyConfig, int, int]) -> list[int]:
    stream, config, seed, n = job
    return alarms(stream, config, seed, n, None, grow_at=GROW_AT)


def _backtest_cost_alarms(job: tuple[str, PolicyConfig, float, int]) -> int:
    path, config, target, seed = job
    details: dict = {}
    run_backtest(load_outcomes(path), target, seed, config=config, details=details)
    return sum(1 for e in details["drift_events"] if e["metric"] == "cost")


def _rise_row(change_at: int, found: list[list[int]]) -> str:
    delays = [next((a - change_at for a in run if a >= change_at), None) for run in found]
    hits = [d for d in delays if d is not None]
    early = sum(1 for run in found if any(a < change_at for a in run))
    median = f"{statistics.median(hits):.0f}" if hits else "-"
    return f"found {len(hits):2d}/{len(found)}, median delay {median:>4}, alarm before it {early}"


def _stationary_row(found: list[list[int]]) -> str:
    runs = sum(1 for run in found if run)
    return f"runs with a false alarm {runs:2d}/{len(found)}, alarms {sum(map(len, found))}"


def _print_rises(pool: ProcessPoolExecutor, seeds: range, change_at: int) -> None:
    print(f"(a) output tokens x{RISE} from call {change_at} on, {len(seeds)} seeds:")
    for stream in PLATFORM_STREAMS:
        for name, config in DETECTORS.items():
            jobs = [(stream, config, s, change_at) for s in seeds]
            row = _rise_row(change_at, list(pool.map(_rises, jobs)))
            print(f"  {stream.label:32s} {name:24s} {row}")


def _print_stationary(pool: ProcessPoolExecutor, seeds: range, calls: int) -> None:
    print(f"(b) no change, {calls:,} calls, {len(seeds)} seeds:")
    for stream in (*PLATFORM_STREAMS, HEAVY_STREAM):
        for name, config in DETECTORS.items():
            jobs = [(stream, config, s, calls) for s in seeds]
            row = _stationary_row(list(pool.map(_stationary, jobs)))
            print(f"  {stream.label:32s} {name:24s} {row}")


def _print_grown(pool: ProcessPoolExecutor, seeds: range, calls: int) -> None:
    print(f"(d) input tokens x{GROWN:g} from call {GROW_AT} on, no price change, {calls:,} calls:")
    for stream in PLATFORM_STREAMS:
        for name, config in DETECTORS.items():
            jobs = [(stream, config, s, calls) for s in seeds]
            row = _stationary_row(list(pool.map(_grown, jobs)))
            print(f"  {stream.label:32s} {name:24s} {row}")


def _print_backtest(pool: ProcessPoolExecutor, seeds: int) -> None:
    print(f"(c) backtest one-task set, seeds 0-{seeds - 1}:")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "synthetic_one_task_12_models.csv")
        write_one_task(Path(path))
        for target in BACKTEST_TARGETS:
            for name, config in DETECTORS.items():
                jobs = [(path, config, target, s) for s in range(seeds)]
                counts = list(pool.map(_backtest_cost_alarms, jobs))
                with_alarm = [s for s, c in enumerate(counts) if c]
                row = f"runs with a cost alarm {len(with_alarm)}/{len(counts)} {with_alarm}"
                print(f"  target {target:<4} {name:24s} {row}, alarms {sum(counts)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per stream (default 20)")
    parser.add_argument("--calls", type=int, default=10_000, help="calls of a stationary run")
    parser.add_argument(
        "--change-at", type=int, nargs="+", default=[300, 2000], help="calls of the rise"
    )
    parser.add_argument("--backtest-seeds", type=int, default=10, help="one-task set seeds")
    parser.add_argument("--quick", action="store_true", help="5 seeds, 2,000 calls, 2 replay seeds")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.calls, args.backtest_seeds, args.change_at = 5, 2000, 2, [300]
    seeds = range(args.seeds)
    with ProcessPoolExecutor(max_workers=2) as pool:
        for change_at in args.change_at:
            _print_rises(pool, seeds, change_at)
        _print_stationary(pool, seeds, args.calls)
        _print_backtest(pool, args.backtest_seeds)
        _print_grown(pool, seeds, args.calls)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

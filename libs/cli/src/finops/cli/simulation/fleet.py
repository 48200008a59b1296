"""The fleet's work: a seeded list of tasks, each with its own random numbers.

Fairness between two policies comes from common random numbers: a task's prompt, and the
numbers every attempt of it draws (is it rate-limited, is its output malformed, is its answer
right, how long does it take), depend only on the seed, the task's number and the attempt's
number, never on what ran before. Two policies given the same tasks meet the same prompts and
the same luck; only their choices differ.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from finops.cli.simulation.catalog import TASK_TYPES, TaskType

#: simulated length of a run: the fault windows are fractions of it
RUN_MS = 2 * 3600 * 1000.0


@dataclass(frozen=True)
class AttemptDraws:
    """The random numbers one attempt of one task uses (uniforms in [0, 1), normals)."""

    fault: float
    quality: float
    z_ttft: float
    z_itl: float
    wait: float

    @classmethod
    def of(cls, seed: int, task: int, attempt: int) -> AttemptDraws:
        rng = random.Random(f"{seed}:{task}:{attempt}")
        return cls(rng.random(), rng.random(), rng.gauss(0, 1), rng.gauss(0, 1), rng.random())


@dataclass(frozen=True)
class Task:
    """One unit of an agent's work: a prompt of a task type, due at ``start_ms``."""

    seed: int
    number: int
    agent: int
    task_type: TaskType
    input_tokens: int
    output_tokens: int
    start_ms: float

    def draws(self, attempt: int) -> AttemptDraws:
        return AttemptDraws.of(self.seed, self.number, attempt)


def make_tasks(seed: int, calls: int, agents: int) -> list[Task]:
    """``calls`` tasks spread evenly over the run, dealt to ``agents`` agents in turn.

    Examples
    --------
    >>> tasks = make_tasks(seed=7, calls=4, agents=2)
    >>> [t.agent for t in tasks], tasks == make_tasks(seed=7, calls=4, agents=2)
    ([0, 1, 0, 1], True)
    """
    tasks = []
    for number in range(calls):
        rng = random.Random(f"{seed}:task:{number}")
        kind = TASK_TYPES[rng.randrange(len(TASK_TYPES))]
        if rng.random() < kind.long_prompt_share:
            input_tokens = kind.long_prompt_tokens + rng.randrange(kind.long_prompt_tokens // 2)
        else:
            input_tokens = max(10, round(kind.input_tokens * math.exp(rng.gauss(0, 0.5))))
        output_tokens = max(1, round(kind.output_tokens * math.exp(rng.gauss(0, 0.3))))
        start_ms = RUN_MS * number / max(1, calls)
        tasks.append(
            Task(seed, number, number % agents, kind, input_tokens, output_tokens, start_ms)
        )
    return tasks


def run_fraction(at_ms: float) -> float:
    """Where ``at_ms`` falls in the run (0 = start, 1 = end; later waits can pass 1)."""
    return at_ms / RUN_MS

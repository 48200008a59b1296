"""Which remedy heals: a Beta-Bernoulli Thompson sampler per (kind, provider, action).

Pure: no I/O. Every advice names the remedy it chose; its outcome (the call that followed
succeeded, or failed again) is one Bernoulli trial of that remedy for that kind at that
provider. :meth:`RemedyLearner.choose` samples each candidate's posterior and takes the best,
so a remedy that keeps failing is chosen less and less, and one that heals more and more,
while every candidate keeps a chance (exploration). It only ever chooses among the candidates
it is given, which are the safe ones (:func:`~finops.healer.domain.remedies.candidate_remedies`).

Before anything is learned, advice follows the rules of :mod:`~finops.healer.domain.remedies`:
the default remedy (the first candidate) is chosen until it has :data:`WARM_UP` outcomes
for that (kind, provider), and keeps a head start (``Beta(1 + DEFAULT_PRIOR, 1)``) after.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from finops.common.provider_errors.taxonomy import ErrorKind
from finops.healer.domain.remedies import Action

#: Extra prior successes of the default remedy.
DEFAULT_PRIOR = 3.0
#: Outcomes of the default remedy (per kind and provider) before any other is tried.
WARM_UP = 5


@dataclass
class Trials:
    """Outcomes of one remedy for one (kind, provider)."""

    healed: int = 0
    failed: int = 0

    def sample(self, rng: random.Random, head_start: float) -> float:
        return rng.betavariate(1.0 + head_start + self.healed, 1.0 + self.failed)


class RemedyLearner:
    """Thompson sampling over the candidate remedies of each (kind, provider).

    Examples
    --------
    >>> learner = RemedyLearner()
    >>> rng = random.Random(7)
    >>> for _ in range(30):
    ...     learner.observe(ErrorKind.OVERLOADED, "openai", Action.RETRY, healed=False)
    ...     learner.observe(ErrorKind.OVERLOADED, "openai", Action.FALLBACK, healed=True)
    >>> picks = [learner.choose(ErrorKind.OVERLOADED, "openai",
    ...                         [Action.RETRY, Action.FALLBACK], rng) for _ in range(20)]
    >>> picks.count(Action.FALLBACK) >= 19
    True
    """

    def __init__(self) -> None:
        self.trials: dict[tuple[ErrorKind, str, Action], Trials] = {}

    def choose(
        self, kind: ErrorKind, provider: str, actions: Sequence[Action], rng: random.Random
    ) -> Action:
        """One of ``actions`` (the first is the default), by Thompson sampling."""
        default = self.trials.get((kind, provider, actions[0]), Trials())
        if len(actions) == 1 or default.healed + default.failed < WARM_UP:
            return actions[0]
        best, best_draw = actions[0], -1.0
        for index, action in enumerate(actions):
            trials = self.trials.get((kind, provider, action), Trials())
            draw = trials.sample(rng, DEFAULT_PRIOR if index == 0 else 0.0)
            if draw > best_draw:
                best, best_draw = action, draw
        return best

    def observe(self, kind: ErrorKind, provider: str, action: Action, *, healed: bool) -> None:
        trials = self.trials.setdefault((kind, provider, action), Trials())
        if healed:
            trials.healed += 1
        else:
            trials.failed += 1

    def to_state(self) -> list[dict[str, Any]]:
        return [
            {
                "kind": k.value,
                "provider": p,
                "action": a.value,
                "healed": t.healed,
                "failed": t.failed,
            }
            for (k, p, a), t in self.trials.items()
        ]

    @classmethod
    def from_state(cls, state: list[dict[str, Any]]) -> RemedyLearner:
        learner = cls()
        for row in state:
            key = (ErrorKind(row["kind"]), str(row["provider"]), Action(row["action"]))
            learner.trials[key] = Trials(int(row["healed"]), int(row["failed"]))
        return learner

"""Which model an injected quality drift lands on: :class:`DriftTargets`.

A drift that follows the traffic lands on the model the fleet relies on for its task type
when it starts, not on a model named in advance: the optimizer may have moved the task type
to another model by then (a cheaper fallback the healer introduced, served as a stand-in),
and a drift of a model that only gets exploratory calls says little about whether the
platform notices one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from finops.cli.simulation.faults import QualityDrift

__all__ = ["LOOKBACK", "DriftTargets", "ServedShare"]

#: the share of the run before a drift's start whose answered calls choose its model
LOOKBACK = 0.1


@dataclass(frozen=True)
class ServedShare:
    """The share of a drift's task type's answered tasks its model served, in the tenth of
    the run before the drift and in the tenth after it (``None``: no answered task there):
    whether the routing moved off the model, alert or not."""

    before: float | None
    after: float | None


def _share(counts: Counter[str], model: str | None) -> float | None:
    total = sum(counts.values())
    return counts[model] / total if total and model is not None else None


@dataclass
class _Target:
    drift: QualityDrift
    #: answered calls of the drift's task type per model, in the lookback window
    recent: Counter[str] = field(default_factory=Counter)
    #: answered calls of the drift's task type per model, before the lookback window
    earlier: Counter[str] = field(default_factory=Counter)
    model: str | None = None
    #: the model is the one the counts chose (not the drift's own, for want of a call)
    followed: bool = False
    #: answered calls of the drift's task type per model, in the tenth of the run after it
    following: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if not self.drift.follow_traffic:
            self.model = self.drift.model

    def answered(self, model: str, fraction: float) -> None:
        start = self.drift.start
        if fraction < start:
            window = self.recent if fraction >= start - LOOKBACK else self.earlier
            window[model] += 1
        elif fraction < start + LOOKBACK:
            self.following[model] += 1

    def served(self) -> ServedShare:
        """Of the tasks its model was chosen from (the tenth before, else all before), and
        of the tenth after; unknown for a drift that never began."""
        return ServedShare(
            _share(self.recent or self.earlier, self.model),
            _share(self.following, self.model),
        )

    def model_at(self, fraction: float) -> str | None:
        """The drifted model at ``fraction`` of the run (None before the drift starts)."""
        if fraction < self.drift.start:
            return None
        if self.model is None:
            counts = self.recent or self.earlier  # all answered before the first after it
            # the most answered; ties go to the model named first (Counter keeps insertion
            # order), and with no answered call at all, to the drift's own model
            self.model = counts.most_common(1)[0][0] if counts else self.drift.model
            self.followed = bool(counts)
        return self.model


class DriftTargets:
    """The quality drifts of a run, each with the model it lands on.

    Fractions are the tasks' (where each starts in the run), not their attempts': a drift
    hits every attempt of the tasks that start from its start on, and a retry of an earlier
    task counts with that task. A drift with ``follow_traffic`` lands on the model that
    answered most tasks of its task type that started in the tenth of the run before its
    start (before that, if none did), chosen at the first attempt of a task of that type
    from its start on (the simulator's rounds run one after the other, so every earlier
    round has answered by then); with no answered call at all, on its own ``model``. Once
    chosen, the model stays (the baseline, run afterwards over the same tasks, meets the
    same drift).

    Examples
    --------
    >>> targets = DriftTargets([QualityDrift("a", "qa", start=0.5, drop=0.3, follow_traffic=True)])
    >>> for model, at in [("a", 0.1), ("b", 0.42), ("b", 0.45), ("a", 0.47)]:
    ...     targets.answered(model, "qa", at)
    >>> targets.quality_drop("b", "qa", 0.49), targets.quality_drop("b", "qa", 0.5)
    (0.0, 0.3)
    >>> targets.quality_drop("a", "qa", 0.9), targets.injected()[0].model
    (0.0, 'b')
    >>> for model in ("b", "a", "a", "a"):
    ...     targets.answered(model, "qa", 0.55)
    >>> targets.served()
    (ServedShare(before=0.6666666666666666, after=0.25),)
    """

    def __init__(self, drifts: Iterable[QualityDrift]) -> None:
        self._targets = [_Target(d) for d in drifts]

    def answered(self, model: str, task_type: str, fraction: float) -> None:
        """An attempt of ``task_type`` answered on ``model`` at ``fraction`` of the run."""
        for target in self._targets:
            if target.drift.task_type == task_type:
                target.answered(model, fraction)

    def quality_drop(self, model: str, task_type: str, fraction: float) -> float:
        """How much less often ``model``'s answers on ``task_type`` are right at ``fraction``."""
        return sum(
            (
                t.drift.drop
                for t in self._targets
                if t.drift.task_type == task_type and t.model_at(fraction) == model
            ),
            0.0,
        )

    def served(self) -> tuple[ServedShare, ...]:
        """Per drift (as :meth:`injected` lists them), the share of its task type's answered
        tasks its model served just before it and just after it."""
        return tuple(t.served() for t in self._targets)

    def injected(self) -> tuple[QualityDrift, ...]:
        """The drifts with the model each landed on, ``follow_traffic`` only for one the
        traffic chose (a drift that never began, or whose task type had no answered call:
        its own model)."""
        return tuple(
            replace(t.drift, model=t.model or t.drift.model, follow_traffic=t.followed)
            for t in self._targets
        )

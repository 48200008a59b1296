"""Why a breaker opens, or would have but for the quorum. Pure: no I/O.

A :class:`Trip` is a case for opening a breaker (its rule, its reason, the span of the window
whose faults make it); a :class:`HeldBack` is one not taken because it does not hold without
the faults of the ``quorum - 1`` agents that reported the most (:mod:`.breakers`), which the
healer counts and logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from finops.healer.domain.breaker_window import Split

__all__ = ["HeldBack", "Trip", "TripRule", "whose_faults"]


class TripRule(StrEnum):
    """What would open a breaker: the window's failure rate, DDM's signal, a probe's fault."""

    FAILURE_RATE = "failure_rate"
    DETECTOR = "detector"
    PROBE = "probe"


@dataclass(frozen=True)
class Trip:
    """A case for opening a breaker: by ``rule``, saying ``reason``, made by the faults of the
    newest ``span_s`` seconds of the window (None: the whole window)."""

    rule: TripRule
    reason: str
    span_s: float | None


@dataclass(frozen=True)
class HeldBack:
    """A trip not taken because it does not hold without the faults of the agents that
    reported the most (``split``, :func:`~.breaker_window.leave_out_top_faulters`).
    ``first``: the first of a run of them (the breaker's last outcome opened nothing for want
    of one)."""

    provider: str
    model: str
    rule: TripRule
    split: Split
    quorum: int
    at: float
    first: bool

    @property
    def message(self) -> str:
        """What an operator reads: whose faults, and what is left without them."""
        split = self.split
        whose = f"the {split.left_out} agent(s) that reported the most, of {split.callers} calling"
        if split.unknown_left_out:
            whose += " (and from agents unknown)"
        return (
            f"{self.provider}/{self.model}: not opened ({self.rule.value}):"
            f" {split.left_out_faults} of its {split.total.failures} faults come from {whose};"
            f" without them {split.kept.failures} of {split.kept.calls} calls failed;"
            f" FINOPS_BREAKER_QUORUM is {self.quorum}"
        )


def whose_faults(split: Split, quorum: int) -> str:
    """What a breaker's reason adds about the agents whose faults opened it: the case held
    without the faults of the ``split.left_out`` known agents that reported the most (and the
    unknown agent's), so the faults that remain come from another known agent, and each one
    left out reported at least as many.

    Examples
    --------
    >>> from finops.healer.domain.breaker_window import Counts
    >>> counts = Counts(20, 20)
    >>> whose_faults(Split(3, 1, False, counts, Counts(10, 10)), 2)
    '; faults from 2+ agents'
    >>> whose_faults(Split(1, 0, True, counts, Counts(10, 10)), 2)
    '; faults from its only caller'
    >>> whose_faults(Split(2, 1, False, counts, Counts(10, 10)), 3)
    '; faults from all 2 agents that called'
    >>> whose_faults(Split(0, 0, False, counts, counts), 2)  # no agent known
    ''
    >>> whose_faults(Split(5, 0, False, counts, counts), 1)  # the rule before the quorum
    ''
    """
    if quorum <= 1 or split.callers == 0:
        return ""
    if split.left_out == 0:
        return "; faults from its only caller"
    if split.left_out >= quorum - 1:
        return f"; faults from {quorum}+ agents"
    return f"; faults from all {split.callers} agents that called"

"""Why a breaker opens, or would have but for the quorum. Pure: no I/O.

A :class:`Trip` is a case for opening a breaker (its rule, its reason, the span of the window
whose faults make it); a :class:`HeldBack` is one not taken because those faults came from
fewer agents than the quorum asks (:mod:`.breakers`), which the healer counts and logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from finops.healer.domain.breaker_window import Reporters

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
    """A trip not taken for want of a quorum: its faults came from ``reporters.faulters``
    agents while ``reporters.callers`` called (each counted up to ``quorum``). ``first``: the
    first of a run of them (the breaker's last outcome opened nothing for want of one)."""

    provider: str
    model: str
    rule: TripRule
    reporters: Reporters
    quorum: int
    at: float
    first: bool

    @property
    def message(self) -> str:
        """What an operator reads: whose faults, and why the breaker stays as it is."""
        faulters, callers = self.reporters.faulters, self.reporters.callers
        many = f"{callers}+" if callers >= self.quorum else str(callers)
        return (
            f"{self.provider}/{self.model}: not opened ({self.rule.value}): faults from"
            f" {faulters} agent(s) of {many} calling; FINOPS_BREAKER_QUORUM is {self.quorum}"
        )


def whose_faults(reporters: Reporters, quorum: int) -> str:
    """What a breaker's reason adds about the agents whose faults opened it.

    Examples
    --------
    >>> whose_faults(Reporters(callers=2, faulters=2), 2)
    '; faults from 2+ agents'
    >>> whose_faults(Reporters(callers=1, faulters=1), 2)
    '; faults from its only caller'
    >>> whose_faults(Reporters(callers=0, faulters=0), 2), whose_faults(Reporters(5, 1), 1)
    ('', '')
    """
    if quorum <= 1 or reporters.faulters == 0:
        return ""  # the rule before the quorum, or no agent known: nothing to say
    if reporters.faulters >= quorum:
        return f"; faults from {reporters.faulters}+ agents"
    if reporters.faulters == 1:
        return "; faults from its only caller"
    return f"; faults from all {reporters.faulters} agents that called"

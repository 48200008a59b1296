"""A breaker's sliding window: calls, faults and who reported them. Pure: no I/O.

The window holds one bucket a second. Besides its counts, a bucket keeps up to
``agents_kept`` distinct ids of the agents that called in that second, and as many of those
that reported a provider fault. A breaker only asks whether the faults come from at least
``quorum`` distinct agents (or from every agent that called, when fewer did), so it never
needs more than ``quorum`` ids of either kind: a bucket's memory is bounded whatever the size
of the fleet, and no map grows with the number of agents.

An outcome without an agent (forwarded by the version before the quorum, or counted in a
checkpoint it wrote) is counted in the calls and faults but adds no agent: see
:meth:`Reporters.quorum_met` for what that means.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Bucket", "Reporters", "SlidingWindow", "keep_agent"]


@dataclass
class Bucket:
    """One second of a window: its calls and faults, and up to the window's ``agents_kept``
    distinct agents that called and that reported a fault in it."""

    second: int
    calls: int = 0
    failures: int = 0
    callers: set[str] = field(default_factory=set)
    faulters: set[str] = field(default_factory=set)


def keep_agent(agents: set[str], agent: str | None, cap: int) -> None:
    """Add ``agent`` to ``agents`` unless it is unknown or ``agents`` holds ``cap`` already.

    Examples
    --------
    >>> kept = set()
    >>> for agent in ["a", "b", None, "c", "a"]:
    ...     keep_agent(kept, agent, 2)
    >>> sorted(kept)
    ['a', 'b']
    """
    if agent is not None and len(agents) < cap:
        agents.add(agent)


@dataclass(frozen=True)
class Reporters:
    """How many distinct agents called and how many of them reported a fault, each counted up
    to the quorum (the window keeps no more)."""

    callers: int
    faulters: int

    def quorum_met(self, quorum: int) -> bool:
        """Whether the faults come from enough agents to open a breaker: from ``quorum``
        distinct agents, or from every agent that called when fewer did (a model's only
        caller opens its breaker on its own faults). Outcomes of unknown agents count for no
        one: when no agent is known, this is the rule before the quorum (open on the counts).

        Examples
        --------
        >>> Reporters(callers=2, faulters=1).quorum_met(2)  # one agent among two
        False
        >>> Reporters(callers=1, faulters=1).quorum_met(2)  # the only caller
        True
        >>> Reporters(callers=2, faulters=1).quorum_met(1)  # quorum 1: any agent
        True
        """
        return self.faulters >= min(quorum, self.callers)


class SlidingWindow:
    """Calls and failures over the last ``window_s`` seconds, in one-second buckets, with up
    to ``agents_kept`` distinct agents per bucket (see the module's docstring).

    Examples
    --------
    >>> w = SlidingWindow(10.0, agents_kept=2)
    >>> w.add(100.0, failed=True, agent="a"); w.add(101.5, failed=False, agent="b")
    >>> (w.calls, w.failures, w.failure_rate)
    (2, 1, 0.5)
    >>> w.reporters()
    Reporters(callers=2, faulters=1)
    >>> w.add(110.2, failed=False)  # the call at 100 s is now out of the window
    >>> (w.calls, w.failures, w.reporters())
    (2, 0, Reporters(callers=1, faulters=0))
    """

    def __init__(self, window_s: float, agents_kept: int = 1) -> None:
        self.window_s = window_s
        self.agents_kept = agents_kept
        self.buckets: deque[Bucket] = deque()
        self.calls = 0
        self.failures = 0

    def add(self, at: float, *, failed: bool, agent: str | None = None) -> None:
        """Count one call of ``agent`` (None: unknown) at ``at``; ``failed``: a fault."""
        second = int(at)
        if not self.buckets or second > self.buckets[-1].second:
            self.buckets.append(Bucket(second))
        # An event older than the newest bucket (agents' clocks, partitions read out of step)
        # is counted in the newest one: the window moves forward only.
        bucket = self.buckets[-1]
        bucket.calls += 1
        bucket.failures += failed
        keep_agent(bucket.callers, agent, self.agents_kept)
        if failed:
            keep_agent(bucket.faulters, agent, self.agents_kept)
        self.calls += 1
        self.failures += failed
        self._evict(self.buckets[-1].second)

    def _evict(self, newest: int) -> None:
        while self.buckets and self.buckets[0].second <= newest - self.window_s:
            old = self.buckets.popleft()
            self.calls -= old.calls
            self.failures -= old.failures

    def seed(self, at: float, calls: int, failures: int) -> None:
        """Start from counts another instance published (as one bucket at ``at``; a
        published state names no agents)."""
        self.clear()
        self.buckets.append(Bucket(int(at), calls, failures))
        self.calls, self.failures = calls, failures

    def restore(self, buckets: Iterable[Bucket]) -> None:
        """Start from saved buckets, oldest first."""
        self.clear()
        for bucket in buckets:
            self.buckets.append(bucket)
            self.calls += bucket.calls
            self.failures += bucket.failures

    def _span(self, seconds: float | None) -> Iterable[Bucket]:
        """The buckets of the newest ``seconds`` of the window (None: all), newest first."""
        if not self.buckets:
            return
        newest = self.buckets[-1].second
        for bucket in reversed(self.buckets):
            if seconds is not None and bucket.second <= newest - seconds:
                return
            yield bucket

    def recent(self, seconds: float) -> tuple[int, int]:
        """Calls and failures in the newest ``seconds`` of the window."""
        calls = failures = 0
        for bucket in self._span(seconds):
            calls += bucket.calls
            failures += bucket.failures
        return calls, failures

    def reporters(self, seconds: float | None = None) -> Reporters:
        """The distinct agents that called, and that reported a fault, in the newest
        ``seconds`` of the window (None: the whole window), each counted up to
        ``agents_kept``. A bucket that met more agents kept ``agents_kept`` of them, so the
        union over the buckets reaches ``agents_kept`` whenever that many agents were there."""
        callers: set[str] = set()
        faulters: set[str] = set()
        cap = self.agents_kept
        for bucket in self._span(seconds):
            if len(callers) < cap:
                callers |= bucket.callers
            if len(faulters) < cap:
                faulters |= bucket.faulters
            if len(callers) >= cap and len(faulters) >= cap:
                break
        return Reporters(min(len(callers), cap), min(len(faulters), cap))

    def clear(self) -> None:
        self.buckets.clear()
        self.calls = self.failures = 0

    @property
    def failure_rate(self) -> float:
        return self.failures / self.calls if self.calls else 0.0

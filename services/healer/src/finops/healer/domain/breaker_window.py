"""A breaker's sliding window: calls, faults and whose they are. Pure: no I/O.

The window holds one bucket a second. Besides its counts, a bucket keeps the calls and faults
of up to ``agents_kept`` agents apart (:func:`tally`), so that a breaker can ask whether
a case for opening still holds without the faults of the agents that reported the most
(:func:`leave_out_top_faulters`). A bucket's memory is bounded whatever the size of the fleet,
and so is the window's running sum per agent (no more entries than its buckets hold): no map
grows with the number of agents.

An outcome without an agent (forwarded by the version before the quorum, or counted in a
checkpoint of a version that kept no counts per agent) is the unknown agent's, ``None``,
kept apart like any agent's. While it is the only caller, nothing is left out (the rule
before the quorum); beside a known agent its outcomes are left out (it may be anyone, the top
faulter too: :func:`leave_out_top_faulters`).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "AGENTS_KEPT",
    "Agent",
    "AgentCounts",
    "Bucket",
    "Counts",
    "SlidingWindow",
    "Split",
    "known_callers",
    "leave_out_top_faulters",
    "tally",
]

#: Agents whose counts a bucket (one second) keeps apart, at least (a window keeps
#: ``quorum + 1`` when that is more: it must tell ``quorum`` known callers from fewer, the
#: unknown agent aside). A second with more callers drops the counts of the one with the
#: fewest faults: an agent's faults of a second are lost only when 7 other agents reported at
#: least as many in that second, which is an outage many agents see, not one agent's say. 8
#: entries of a few dozen bytes each, 60 buckets: at most ~480 entries per breaker.
AGENTS_KEPT = 8

#: who reported an outcome: a user id or agent id; None: the unknown agent
Agent = str | None


@dataclass
class AgentCounts:
    """One agent's calls and faults (in a bucket, a span of buckets, or a breaker's probes)."""

    calls: int = 0
    faults: int = 0


def tally(
    agents: dict[Agent, AgentCounts], agent: Agent, *, failed: bool, cap: int
) -> tuple[Agent, AgentCounts] | None:
    """Count one call of ``agent`` (``failed``: a fault) in ``agents``, which keeps the
    counts of up to ``cap`` agents, space-saving style.

    Returns the agent dropped, with its counts, if any. When ``agents`` is full, a new agent
    takes the place of the one with the fewest faults
    (among equals, the fewest calls), whose counts are dropped: exact for an agent never
    dropped, too low for one that was (its dropped calls and faults still count in the
    bucket's totals, for no agent). An agent's counts are dropped only when ``cap - 1``
    others kept have at least as many faults. Left out as a top faulter, such an agent takes
    fewer faults with it than exact counting would (and a misranked one, whose counts were
    dropped, no more): the faults that remain are never fewer than exact counting leaves, so
    the approximation errs towards opening. (The remaining rate moves with the calls left
    out too, either way; only in seconds where ``cap - 1`` other agents faulted as much.)

    Examples
    --------
    >>> agents = {}
    >>> tally(agents, "a", failed=True, cap=2); tally(agents, "b", failed=False, cap=2)
    >>> tally(agents, "c", failed=False, cap=2)  # b, with no fault, is dropped
    ('b', AgentCounts(calls=1, faults=0))
    >>> {agent: (c.calls, c.faults) for agent, c in agents.items()}
    {'a': (1, 1), 'c': (1, 0)}
    """
    dropped = None
    counts = agents.get(agent)
    if counts is None:
        if len(agents) >= cap:
            fewest = min(agents, key=lambda kept: _rank(agents[kept]))
            dropped = fewest, agents.pop(fewest)
        counts = agents[agent] = AgentCounts()
    counts.calls += 1
    counts.faults += failed
    return dropped


def _rank(counts: AgentCounts) -> tuple[int, int]:
    """Who faulted the most: by faults, then by calls."""
    return counts.faults, counts.calls


@dataclass
class Bucket:
    """One second of a window: its calls and faults, and those of up to the window's
    ``agents_kept`` agents apart."""

    second: int
    calls: int = 0
    failures: int = 0
    agents: dict[Agent, AgentCounts] = field(default_factory=dict)


@dataclass(frozen=True)
class Counts:
    """Calls and how many of them failed."""

    calls: int
    failures: int


@dataclass(frozen=True)
class Split:
    """A span's counts, and what is left of them without its top faulters.

    ``callers``: the distinct known agents that called in the span (at least: a bucket keeps
    ``agents_kept`` of them); ``left_out``: how many of those that reported the most faults
    were left out; ``unknown_left_out``: whether the unknown agent's outcomes were too;
    ``kept``: the span's counts without theirs.
    """

    callers: int
    left_out: int
    unknown_left_out: bool
    total: Counts
    kept: Counts

    @property
    def left_out_faults(self) -> int:
        return self.total.failures - self.kept.failures


def leave_out_top_faulters(
    agents: Mapping[Agent, AgentCounts], total: Counts, callers: int, quorum: int
) -> Split:
    """``total`` without the calls and faults of the ``quorum - 1`` known agents of
    ``agents`` that reported the most faults, or of all but one of the ``callers`` (known
    agents) when fewer called, and without the unknown agent's while a known one called.
    Nothing is left out with ``quorum`` 1, nor of a sole caller's counts.

    The unknown agent (outcomes forwarded by the version before the quorum, or restored from
    a checkpoint that kept no counts per agent) may be anyone, the agent that faulted the
    most among them: beside a known agent its outcomes never make the case.

    Examples
    --------
    >>> agents = {"liar": AgentCounts(60, 60), "honest": AgentCounts(200, 1)}
    >>> split = leave_out_top_faulters(agents, Counts(260, 61), callers=2, quorum=2)
    >>> split.kept, split.left_out_faults
    (Counts(calls=200, failures=1), 60)
    >>> leave_out_top_faulters(agents, Counts(260, 61), callers=2, quorum=1).kept
    Counts(calls=260, failures=61)
    >>> leave_out_top_faulters({None: AgentCounts(9, 9)}, Counts(9, 9), 0, quorum=2).kept
    Counts(calls=9, failures=9)
    """
    if quorum <= 1:
        return Split(callers, 0, False, total, total)
    left_out = max(min(quorum - 1, callers - 1), 0)
    known = (counts for agent, counts in agents.items() if agent is not None)
    top = heapq.nlargest(left_out, known, key=_rank)
    unknown = agents.get(None) if callers else None
    if unknown is not None:
        top.append(unknown)
    kept = Counts(
        total.calls - sum(c.calls for c in top), total.failures - sum(c.faults for c in top)
    )
    return Split(callers, left_out, unknown is not None, total, kept)


def _summed(buckets: Iterable[Bucket]) -> dict[Agent, AgentCounts]:
    """Each agent's counts kept apart in ``buckets``, summed."""
    summed: dict[Agent, AgentCounts] = {}
    for bucket in buckets:
        for agent, counts in bucket.agents.items():
            total = summed.setdefault(agent, AgentCounts())
            total.calls += counts.calls
            total.faults += counts.faults
    return summed


def known_callers(agents: Mapping[Agent, AgentCounts]) -> int:
    """How many of ``agents`` are known (not the unknown agent)."""
    return len(agents) - (None in agents)


class SlidingWindow:
    """Calls and failures over the last ``window_s`` seconds, in one-second buckets, with
    those of up to ``agents_kept`` agents per bucket apart (see the module's docstring).

    Examples
    --------
    >>> w = SlidingWindow(10.0, agents_kept=8)
    >>> w.add(100.0, failed=True, agent="a"); w.add(101.5, failed=False, agent="b")
    >>> (w.calls, w.failures, w.failure_rate)
    (2, 1, 0.5)
    >>> w.split(None, quorum=2).kept  # without a's call and fault
    Counts(calls=1, failures=0)
    >>> w.add(110.2, failed=False)  # the call at 100 s is now out of the window
    >>> (w.calls, w.failures, w.split(None, quorum=2).callers)  # b, and the unknown agent
    (2, 0, 1)
    """

    def __init__(self, window_s: float, agents_kept: int = AGENTS_KEPT) -> None:
        self.window_s = window_s
        self.agents_kept = agents_kept
        self.buckets: deque[Bucket] = deque()
        self.calls = 0
        self.failures = 0
        #: each agent's counts kept apart in the buckets, summed (kept as they change: the
        #: failure rate's case asks for them on every outcome while it is held back)
        self.totals: dict[Agent, AgentCounts] = {}

    def add(self, at: float, *, failed: bool, agent: Agent = None) -> None:
        """Count one call of ``agent`` (None: unknown) at ``at``; ``failed``: a fault."""
        second = int(at)
        if not self.buckets or second > self.buckets[-1].second:
            self.buckets.append(Bucket(second))
        # An event older than the newest bucket (agents' clocks, partitions read out of step)
        # is counted in the newest one: the window moves forward only.
        bucket = self.buckets[-1]
        bucket.calls += 1
        bucket.failures += failed
        dropped = tally(bucket.agents, agent, failed=failed, cap=self.agents_kept)
        if dropped is not None:
            self._subtract(*dropped)
        total = self.totals.setdefault(agent, AgentCounts())
        total.calls += 1
        total.faults += failed
        self.calls += 1
        self.failures += failed
        self._evict(self.buckets[-1].second)

    def _evict(self, newest: int) -> None:
        while self.buckets and self.buckets[0].second <= newest - self.window_s:
            old = self.buckets.popleft()
            self.calls -= old.calls
            self.failures -= old.failures
            for agent, counts in old.agents.items():
                self._subtract(agent, counts)

    def _subtract(self, agent: Agent, counts: AgentCounts) -> None:
        total = self.totals[agent]
        total.calls -= counts.calls
        total.faults -= counts.faults
        if not total.calls:
            del self.totals[agent]

    def seed(self, at: float, calls: int, failures: int) -> None:
        """Start from counts another instance published (as one bucket at ``at``, of the
        unknown agent: a published state names no agents)."""
        self.restore([Bucket(int(at), calls, failures, {None: AgentCounts(calls, failures)})])

    def restore(self, buckets: Iterable[Bucket]) -> None:
        """Start from saved buckets, oldest first."""
        self.clear()
        for bucket in buckets:
            self.buckets.append(bucket)
            self.calls += bucket.calls
            self.failures += bucket.failures
        self.totals = _summed(self.buckets)

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

    def agents(self, seconds: float | None = None) -> Mapping[Agent, AgentCounts]:
        """The calls and faults of each agent a bucket of the newest ``seconds`` (None: the
        whole window, :attr:`totals`) kept apart, summed over those buckets."""
        return self.totals if seconds is None else _summed(self._span(seconds))

    def split(self, seconds: float | None, quorum: int) -> Split:
        """The newest ``seconds`` of the window (None: all) without its top faulters
        (:func:`leave_out_top_faulters`). A bucket that met more agents than it keeps holds
        ``agents_kept`` of them, at least ``quorum + 1``: the count of known callers reaches
        the quorum whenever that many agents called."""
        agents = self.agents(seconds)
        if seconds is None:
            total = Counts(self.calls, self.failures)
        else:
            total = Counts(*self.recent(seconds))
        return leave_out_top_faulters(agents, total, known_callers(agents), quorum)

    def clear(self) -> None:
        self.buckets.clear()
        self.calls = self.failures = 0
        self.totals = {}

    @property
    def failure_rate(self) -> float:
        return self.failures / self.calls if self.calls else 0.0

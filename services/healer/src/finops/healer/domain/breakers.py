"""Circuit breakers per (provider, model). Pure: no I/O, times are passed in.

A breaker counts the calls to one provider/model over a sliding window: every successful
call (``agent.llm_call``) and every error whose kind says the provider is unhealthy
(:data:`~finops.common.provider_errors.taxonomy.PROVIDER_FAULT_KINDS`: rate_limit, overloaded,
server_error, timeout, network). Other errors (bad_request, auth, ...) are the caller's
fault and say nothing about the provider: they are not counted at all.

* **closed → open** when the window's failure rate reaches ``failure_threshold`` with at
  least ``min_calls`` calls, or earlier when river's DDM detector on the stream of call
  outcomes (1 = provider fault, 0 = success) signals a rise of the error rate, provided the
  last ``detector_recent_s`` seconds hold ``min_detector_failures`` faults and a failure rate
  of at least ``detector_min_failure_rate`` (DDM alone also fires on a few errors after a
  long clean run, which is no reason to stop calling a provider). DDM (Gama et al. 2004) is
  made for exactly this stream: a binary error indicator whose rate it tracks against the
  lowest rate seen, so it fires on a *rise* in errors -- quickly when the breaker was
  healthy -- and never on a fall; its warm-up (``detector_warm_start`` outcomes) keeps it
  quiet until it has a baseline.
  Timeouts are faults, so a provider that becomes too slow to answer trips it too.
* **open → half_open** once ``cooldown_s`` has passed (``next_probe_at``): calls are let
  through at a small rate (the optimizer's probe rate) to test the provider.
* **half_open → closed** after ``probes_to_close`` successes; a fault re-opens it with the
  cool-down doubled (up to ``max_cooldown_s``).

**The quorum.** Every outcome names the agent that reported it. A case for opening (either
way) counts only if it still holds without the calls and faults of the ``quorum - 1`` agents
that reported the most faults (of all but one, when fewer called), and of the unknown agent
beside known ones: the window's for the failure rate (``min_calls`` included), the recent
span's for DDM, the probes' since it half-opened for a probe (a fault must remain). So one
agent (quorum 2) never tips it, however many faults it sends, while an outage several agents
see still opens it, and a model's only caller opens its own. Faults of fewer than ``quorum``
agents never remain: no count of distinct faulters is needed. A trip held back is reported
(:class:`HeldBack`); the outcomes still count. ``quorum`` 1: nothing is left out, the rule
before it. Per-agent counts are bounded (:mod:`.breaker_window`).
"""

from __future__ import annotations

from dataclasses import dataclass

from river import drift

from finops.common.circuits import CircuitState, CircuitStatus
from finops.common.provider_errors.taxonomy import PROVIDER_FAULT_KINDS, ErrorKind
from finops.healer.domain.breaker_trips import HeldBack, Trip, TripRule, whose_faults
from finops.healer.domain.breaker_window import (
    AGENTS_KEPT,
    Agent,
    AgentCounts,
    Counts,
    SlidingWindow,
    Split,
    known_callers,
    leave_out_top_faulters,
    tally,
)

BreakerKey = tuple[str, str]


def counts_against_provider(kind: ErrorKind) -> bool:
    """Whether an error of this kind says the provider/model is unhealthy.

    Examples
    --------
    >>> counts_against_provider(ErrorKind.OVERLOADED), counts_against_provider(ErrorKind.AUTH)
    (True, False)
    """
    return kind in PROVIDER_FAULT_KINDS


@dataclass(frozen=True)
class BreakerConfig:
    """When breakers open and close (the healer's settings fill it in).

    Examples
    --------
    >>> BreakerConfig().min_calls
    20
    """

    window_s: float = 60.0
    min_calls: int = 20
    failure_threshold: float = 0.5
    cooldown_s: float = 30.0
    max_cooldown_s: float = 600.0
    probes_to_close: int = 3
    detector_warm_start: int = 30
    detector_drift_threshold: float = 3.0
    min_detector_failures: int = 5
    detector_min_failure_rate: float = 0.2
    detector_recent_s: float = 10.0
    #: an opening must hold without the faults of the ``quorum - 1`` agents that reported the
    #: most (see the module)
    quorum: int = 2

    @property
    def agents_kept(self) -> int:
        """Agents whose counts each second of the window (and the probes) keep apart."""
        return max(AGENTS_KEPT, self.quorum + 1)


@dataclass(frozen=True)
class Transition:
    """A breaker changed state; ``state`` is what it is now."""

    before: CircuitStatus
    state: CircuitState

    @property
    def after(self) -> CircuitStatus:
        return self.state.state


class Breaker:
    """The breaker of one provider/model.

    Examples
    --------
    >>> b = Breaker("openai", "gpt-4o", BreakerConfig(min_calls=4, cooldown_s=30))
    >>> [b.record(False, at=float(t), agent="bot2") for t in range(2)]
    [None, None]
    >>> [b.record(True, at=float(t), agent="bot1") for t in range(2, 6)]  # 4 of 6 failed
    [None, None, None, None]
    >>> b.held_back.rule.value, b.held_back.split.kept  # without bot1's: 2 calls, no fault
    ('failure_rate', Counts(calls=2, failures=0))
    >>> b.record(True, at=6.0, agent="bot2")  # without bot1's: 1 of 3 failed, < min_calls
    >>> opened = b.record(True, at=7.0, agent="bot2")  # without bot1's: 2 of 4, 50 %
    >>> opened.after
    <CircuitStatus.OPEN: 'open'>
    >>> opened.state.reason
    'failure rate 75% over 8 calls in 60 s (threshold 50%); faults from 2+ agents'
    >>> b.tick(now=37.0).after        # cool-down over: probing
    <CircuitStatus.HALF_OPEN: 'half_open'>
    >>> [b.record(False, at=38.0 + i, agent="bot1") for i in range(2)]
    [None, None]
    >>> b.record(False, at=40.0, agent="bot2").after  # third probe succeeded
    <CircuitStatus.CLOSED: 'closed'>
    """

    def __init__(self, provider: str, model: str, config: BreakerConfig) -> None:
        self.provider = provider
        self.model = model
        self.config = config
        self.status = CircuitStatus.CLOSED
        self.window = SlidingWindow(config.window_s, agents_kept=config.agents_kept)
        self.detector = self._new_detector()
        self.alarm_until = float("-inf")
        self.opened_at: float | None = None
        self.next_probe_at: float | None = None
        self.cooldown_s = config.cooldown_s
        self.probe_successes = 0
        #: the probes' calls and faults since it half-opened, of up to ``agents_kept`` agents
        self.probe_agents: dict[Agent, AgentCounts] = {}
        self.reason = "never opened"
        self.updated_at = 0.0
        #: the trip the last :meth:`record` held back (no case without the top faulters), if any
        self.held_back: HeldBack | None = None
        #: whether the last trip was held back (so a run of them is reported once)
        self.holding_back = False

    def _new_detector(self) -> drift.binary.DDM:
        return drift.binary.DDM(
            warm_start=self.config.detector_warm_start,
            drift_threshold=self.config.detector_drift_threshold,
        )

    def record(self, failed: bool, *, at: float, agent: Agent = None) -> Transition | None:
        """Count one call of ``agent`` (None: unknown; ``failed``: a provider fault); the
        transition it caused, if any (:attr:`held_back` says whether it held one back)."""
        self.held_back = None
        self.updated_at = max(self.updated_at, at)
        self.window.add(at, failed=failed, agent=agent)
        if self.status is CircuitStatus.OPEN:
            if self.next_probe_at is None or at < self.next_probe_at:
                return None
            before = self._to_half_open(at)
            probe = self._probe(failed, at, agent)
            return probe or Transition(before, self.snapshot())
        if self.status is CircuitStatus.HALF_OPEN:
            return self._probe(failed, at, agent)
        self.detector.update(failed)
        trip = self._trip()
        if trip is None:
            self.holding_back = False
            return None
        split = self.window.split(trip.span_s, self.config.quorum)
        return self._take(trip, split, at, self.config.cooldown_s)

    def _take(self, trip: Trip, split: Split, at: float, cooldown_s: float) -> Transition | None:
        """Open the breaker on ``trip`` if it still holds without the top faulters of
        ``split``; else hold it back."""
        if not self._holds(trip.rule, split.kept):
            self._hold_back(trip.rule, split, at)
            return None
        return self._open(at, trip.reason + whose_faults(split, self.config.quorum), cooldown_s)

    def _holds(self, rule: TripRule, counts: Counts) -> bool:
        """Whether ``counts`` (of the window, the recent span, the probes) make a case by
        ``rule``."""
        config, calls, failures = self.config, counts.calls, counts.failures
        if rule is TripRule.FAILURE_RATE:
            return (
                calls >= max(config.min_calls, 1) and failures / calls >= config.failure_threshold
            )
        if rule is TripRule.DETECTOR:
            return (
                failures >= config.min_detector_failures
                and failures >= config.detector_min_failure_rate * calls
            )
        return failures > 0

    def _trip(self) -> Trip | None:
        window, config = self.window, self.config
        if self._holds(TripRule.FAILURE_RATE, Counts(window.calls, window.failures)):
            reason = (
                f"failure rate {window.failure_rate:.0%} over {window.calls} calls in "
                f"{config.window_s:g} s (threshold {config.failure_threshold:.0%})"
            )
            return Trip(TripRule.FAILURE_RATE, reason, None)
        if self.detector.drift_detected:
            # DDM signals once and starts over; the signal holds for the recent span, in
            # which the faults that confirm it may still arrive.
            self.alarm_until = self.updated_at + config.detector_recent_s
        if self.updated_at > self.alarm_until:
            return None
        calls, failures = window.recent(config.detector_recent_s)
        if self._holds(TripRule.DETECTOR, Counts(calls, failures)):
            reason = (
                f"error rate rose (DDM detector; {failures} of the last {calls} calls "
                f"failed in {config.detector_recent_s:g} s)"
            )
            # the recent faults make the case: they are the ones the top faulters leave
            return Trip(TripRule.DETECTOR, reason, config.detector_recent_s)
        return None

    def _hold_back(self, rule: TripRule, split: Split, at: float) -> None:
        self.held_back = HeldBack(
            self.provider,
            self.model,
            rule,
            split,
            self.config.quorum,
            at,
            first=not self.holding_back,
        )
        self.holding_back = True

    def _open(self, at: float, reason: str, cooldown_s: float) -> Transition:
        before = self.status
        self.status = CircuitStatus.OPEN
        self.opened_at = at
        self.cooldown_s = min(cooldown_s, self.config.max_cooldown_s)
        self.next_probe_at = at + self.cooldown_s
        self.probe_successes = 0
        self.probe_agents = {}
        self.holding_back = False
        self.reason = reason
        return Transition(before, self.snapshot())

    def _to_half_open(self, now: float) -> CircuitStatus:
        before = self.status
        self.status = CircuitStatus.HALF_OPEN
        self.probe_successes = 0
        self.probe_agents = {}
        self.holding_back = False
        self.updated_at = max(self.updated_at, now)
        self.reason = f"cool-down of {self.cooldown_s:g} s over: probing"
        return before

    def _probe(self, failed: bool, at: float, agent: Agent) -> Transition | None:
        tally(self.probe_agents, agent, failed=failed, cap=self.config.agents_kept)
        if failed:
            return self._probe_failed(at)
        self.probe_successes += 1
        if self.probe_successes < self.config.probes_to_close:
            return None
        self.status = CircuitStatus.CLOSED
        self.opened_at = self.next_probe_at = None
        self.cooldown_s = self.config.cooldown_s
        self.reason = f"{self.probe_successes} probes succeeded: recovered"
        self.window.clear()
        self.detector = self._new_detector()
        self.alarm_until = float("-inf")
        self.probe_agents = {}
        self.holding_back = False
        return Transition(CircuitStatus.HALF_OPEN, self.snapshot())

    def _probe_failed(self, at: float) -> Transition | None:
        """A probe's fault re-opens the breaker if some probe fault remains without those of
        the top faulters among the probes, out of the agents that called in the window (one
        agent's probe faults while another's probes succeed leave it probing)."""
        probes = Counts(
            sum(c.calls for c in self.probe_agents.values()),
            sum(c.faults for c in self.probe_agents.values()),
        )
        callers = known_callers(self.window.agents())
        split = leave_out_top_faulters(self.probe_agents, probes, callers, self.config.quorum)
        trip = Trip(TripRule.PROBE, "a probe failed", None)
        return self._take(trip, split, at, self.cooldown_s * 2)

    def tick(self, now: float) -> Transition | None:
        """Move an open breaker whose cool-down is over to half-open."""
        if self.status is not CircuitStatus.OPEN or self.next_probe_at is None:
            return None
        if now < self.next_probe_at:
            return None
        before = self._to_half_open(now)
        return Transition(before, self.snapshot())

    def adopt(self, published: CircuitState) -> None:
        """Take over the state another instance published (a partition moved here). A
        published state names no agents: its counts are of unknown agents."""
        self.status = published.state
        self.opened_at = published.opened_at
        self.next_probe_at = published.next_probe_at
        self.reason = published.reason
        self.updated_at = published.updated_at
        if published.state is CircuitStatus.CLOSED:
            self.window.seed(published.updated_at, published.calls, published.failures)
        if published.opened_at is not None and published.next_probe_at is not None:
            self.cooldown_s = max(published.next_probe_at - published.opened_at, 0.0)

    def snapshot(self) -> CircuitState:
        return CircuitState(
            provider=self.provider,
            model=self.model,
            state=self.status,
            failure_rate=round(self.window.failure_rate, 4),
            calls=self.window.calls,
            failures=self.window.failures,
            window_s=self.config.window_s,
            opened_at=self.opened_at,
            next_probe_at=self.next_probe_at,
            reason=self.reason,
            updated_at=self.updated_at,
        )

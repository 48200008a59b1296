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
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from river import drift

from finops.common.circuits import CircuitState, CircuitStatus
from finops.common.provider_errors.taxonomy import PROVIDER_FAULT_KINDS, ErrorKind

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


@dataclass
class _Bucket:
    second: int
    calls: int = 0
    failures: int = 0


class SlidingWindow:
    """Calls and failures over the last ``window_s`` seconds, in one-second buckets.

    Examples
    --------
    >>> w = SlidingWindow(10.0)
    >>> w.add(100.0, failed=True); w.add(101.5, failed=False)
    >>> (w.calls, w.failures, w.failure_rate)
    (2, 1, 0.5)
    >>> w.add(110.2, failed=False)  # the call at 100 s is now out of the window
    >>> (w.calls, w.failures)
    (2, 0)
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.buckets: deque[_Bucket] = deque()
        self.calls = 0
        self.failures = 0

    def add(self, at: float, *, failed: bool) -> None:
        second = int(at)
        if not self.buckets or second > self.buckets[-1].second:
            self.buckets.append(_Bucket(second))
        # An event older than the newest bucket (agents' clocks, partitions read out of step)
        # is counted in the newest one: the window moves forward only.
        bucket = self.buckets[-1]
        bucket.calls += 1
        bucket.failures += failed
        self.calls += 1
        self.failures += failed
        self._evict(self.buckets[-1].second)

    def _evict(self, newest: int) -> None:
        while self.buckets and self.buckets[0].second <= newest - self.window_s:
            old = self.buckets.popleft()
            self.calls -= old.calls
            self.failures -= old.failures

    def seed(self, at: float, calls: int, failures: int) -> None:
        """Start from counts another instance published (as one bucket at ``at``)."""
        self.clear()
        self.buckets.append(_Bucket(int(at), calls, failures))
        self.calls, self.failures = calls, failures

    def restore(self, buckets: list[tuple[int, int, int]]) -> None:
        """Start from saved ``(second, calls, failures)`` buckets, oldest first."""
        self.clear()
        for second, calls, failures in buckets:
            self.buckets.append(_Bucket(second, calls, failures))
            self.calls += calls
            self.failures += failures

    def recent(self, seconds: float) -> tuple[int, int]:
        """Calls and failures in the newest ``seconds`` of the window."""
        calls = failures = 0
        if not self.buckets:
            return calls, failures
        newest = self.buckets[-1].second
        for bucket in reversed(self.buckets):
            if bucket.second <= newest - seconds:
                break
            calls += bucket.calls
            failures += bucket.failures
        return calls, failures

    def clear(self) -> None:
        self.buckets.clear()
        self.calls = self.failures = 0

    @property
    def failure_rate(self) -> float:
        return self.failures / self.calls if self.calls else 0.0


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
    >>> [b.record(True, at=float(t)) for t in range(3)]
    [None, None, None]
    >>> b.record(True, at=3.0).after  # 4 calls, all failed
    <CircuitStatus.OPEN: 'open'>
    >>> b.tick(now=33.0).after        # cool-down over: probing
    <CircuitStatus.HALF_OPEN: 'half_open'>
    >>> [b.record(False, at=34.0 + i) for i in range(2)]
    [None, None]
    >>> b.record(False, at=36.0).after  # third probe succeeded
    <CircuitStatus.CLOSED: 'closed'>
    """

    def __init__(self, provider: str, model: str, config: BreakerConfig) -> None:
        self.provider = provider
        self.model = model
        self.config = config
        self.status = CircuitStatus.CLOSED
        self.window = SlidingWindow(config.window_s)
        self.detector = self._new_detector()
        self.alarm_until = float("-inf")
        self.opened_at: float | None = None
        self.next_probe_at: float | None = None
        self.cooldown_s = config.cooldown_s
        self.probe_successes = 0
        self.reason = "never opened"
        self.updated_at = 0.0

    def _new_detector(self) -> drift.binary.DDM:
        return drift.binary.DDM(
            warm_start=self.config.detector_warm_start,
            drift_threshold=self.config.detector_drift_threshold,
        )

    def record(self, failed: bool, *, at: float) -> Transition | None:
        """Count one call (``failed``: a provider fault); the transition it caused, if any."""
        self.updated_at = max(self.updated_at, at)
        self.window.add(at, failed=failed)
        if self.status is CircuitStatus.OPEN:
            if self.next_probe_at is None or at < self.next_probe_at:
                return None
            before = self._to_half_open(at)
            probe = self._probe(failed, at)
            return probe or Transition(before, self.snapshot())
        if self.status is CircuitStatus.HALF_OPEN:
            return self._probe(failed, at)
        self.detector.update(failed)
        reason = self._trip_reason()
        if reason is None:
            return None
        return self._open(at, reason, self.config.cooldown_s)

    def _trip_reason(self) -> str | None:
        window, config = self.window, self.config
        if window.calls >= config.min_calls and window.failure_rate >= config.failure_threshold:
            return (
                f"failure rate {window.failure_rate:.0%} over {window.calls} calls in "
                f"{config.window_s:g} s (threshold {config.failure_threshold:.0%})"
            )
        if self.detector.drift_detected:
            # DDM signals once and starts over; the signal holds for the recent span, in
            # which the faults that confirm it may still arrive.
            self.alarm_until = self.updated_at + config.detector_recent_s
        if self.updated_at > self.alarm_until:
            return None
        calls, failures = window.recent(config.detector_recent_s)
        if (
            failures >= config.min_detector_failures
            and failures >= config.detector_min_failure_rate * calls
        ):
            return (
                f"error rate rose (DDM detector; {failures} of the last {calls} calls "
                f"failed in {config.detector_recent_s:g} s)"
            )
        return None

    def _open(self, at: float, reason: str, cooldown_s: float) -> Transition:
        before = self.status
        self.status = CircuitStatus.OPEN
        self.opened_at = at
        self.cooldown_s = min(cooldown_s, self.config.max_cooldown_s)
        self.next_probe_at = at + self.cooldown_s
        self.probe_successes = 0
        self.reason = reason
        return Transition(before, self.snapshot())

    def _to_half_open(self, now: float) -> CircuitStatus:
        before = self.status
        self.status = CircuitStatus.HALF_OPEN
        self.probe_successes = 0
        self.updated_at = max(self.updated_at, now)
        self.reason = f"cool-down of {self.cooldown_s:g} s over: probing"
        return before

    def _probe(self, failed: bool, at: float) -> Transition | None:
        if failed:
            return self._open(at, "a probe failed", self.cooldown_s * 2)
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
        return Transition(CircuitStatus.HALF_OPEN, self.snapshot())

    def tick(self, now: float) -> Transition | None:
        """Move an open breaker whose cool-down is over to half-open."""
        if self.status is not CircuitStatus.OPEN or self.next_probe_at is None:
            return None
        if now < self.next_probe_at:
            return None
        before = self._to_half_open(now)
        return Transition(before, self.snapshot())

    def adopt(self, published: CircuitState) -> None:
        """Take over the state another instance published (a partition moved here)."""
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


class BreakerBoard:
    """Every breaker an instance owns, and which of them changed since the last publish.

    ``published`` looks up what the topic last said about a breaker this instance has not
    seen yet (it was owned elsewhere before a restart or rebalance): that state is adopted.

    Examples
    --------
    >>> board = BreakerBoard(BreakerConfig(min_calls=2))
    >>> board.success("openai", "gpt-4o", at=0.0)
    >>> board.failure("openai", "gpt-4o", ErrorKind.AUTH, at=1.0)  # not the provider's fault
    >>> board.failure("openai", "gpt-4o", ErrorKind.SERVER_ERROR, at=2.0).after
    <CircuitStatus.OPEN: 'open'>
    >>> [s.state.value for s in board.drain_changed()]
    ['open']
    >>> board.drain_changed(), [s.calls for s in board.snapshots()]
    ([], [2])
    """

    def __init__(
        self,
        config: BreakerConfig,
        published: Callable[[str, str], CircuitState | None] | None = None,
    ) -> None:
        self.config = config
        self.published = published
        self.breakers: dict[BreakerKey, Breaker] = {}
        self.changed: set[BreakerKey] = set()

    def breaker(self, provider: str, model: str) -> Breaker:
        key = (provider, model)
        found = self.breakers.get(key)
        if found is None:
            found = self.breakers[key] = Breaker(provider, model, self.config)
            known = self.published(provider, model) if self.published else None
            if known is not None:
                found.adopt(known)
        return found

    def failure(
        self, provider: str, model: str, kind: ErrorKind, *, at: float
    ) -> Transition | None:
        """One failed call; only provider faults count."""
        if not counts_against_provider(kind):
            return None
        return self._record(provider, model, True, at)

    def success(self, provider: str, model: str, *, at: float) -> Transition | None:
        return self._record(provider, model, False, at)

    def _record(self, provider: str, model: str, failed: bool, at: float) -> Transition | None:
        self.changed.add((provider, model))
        return self.breaker(provider, model).record(failed, at=at)

    def forget(self, key: BreakerKey) -> None:
        """Drop a breaker this instance no longer owns."""
        self.breakers.pop(key, None)
        self.changed.discard(key)

    def tick(self, now: float) -> list[Transition]:
        """Half-open every breaker whose cool-down is over."""
        moved = []
        for key, breaker in self.breakers.items():
            transition = breaker.tick(now)
            if transition is not None:
                self.changed.add(key)
                moved.append(transition)
        return moved

    def snapshots(self) -> list[CircuitState]:
        """The state of every breaker, changed or not (to publish again)."""
        return [self.breakers[key].snapshot() for key in sorted(self.breakers)]

    def drain_changed(self) -> list[CircuitState]:
        """The state of every breaker that changed since the last call (to publish)."""
        states = [self.breakers[key].snapshot() for key in sorted(self.changed)]
        self.changed.clear()
        return states

    def unpublished(self, states: list[CircuitState]) -> None:
        """Mark the breakers of ``states`` (drained, then not published) changed again, so
        that the next drain (the next publish, before any checkpoint) has them."""
        self.changed.update(
            key for key in ((s.provider, s.model) for s in states) if key in self.breakers
        )

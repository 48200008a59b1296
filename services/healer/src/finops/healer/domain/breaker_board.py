"""Every breaker one healer instance owns (:class:`BreakerBoard`), and which of them changed
since it last published them. Pure: no I/O, times are passed in; one breaker's rules are
:mod:`finops.healer.domain.breakers`."""

from __future__ import annotations

from collections.abc import Callable

from finops.common.circuits import CircuitState
from finops.common.provider_errors.taxonomy import ErrorKind
from finops.healer.domain.breaker_trips import HeldBack
from finops.healer.domain.breakers import (
    Breaker,
    BreakerConfig,
    BreakerKey,
    Transition,
    counts_against_provider,
)

__all__ = ["BreakerBoard"]


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
        #: the trip the last call given to :meth:`failure` or :meth:`success` held back for
        #: lack of a case without the top faulters, if any
        self.held_back: HeldBack | None = None

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
        self, provider: str, model: str, kind: ErrorKind, *, at: float, agent: str | None = None
    ) -> Transition | None:
        """One failed call of ``agent`` (None: unknown); only provider faults count."""
        self.held_back = None
        if not counts_against_provider(kind):
            return None
        return self._record(provider, model, True, at, agent)

    def success(
        self, provider: str, model: str, *, at: float, agent: str | None = None
    ) -> Transition | None:
        """One successful call of ``agent`` (None: unknown)."""
        self.held_back = None
        return self._record(provider, model, False, at, agent)

    def _record(
        self, provider: str, model: str, failed: bool, at: float, agent: str | None
    ) -> Transition | None:
        self.changed.add((provider, model))
        breaker = self.breaker(provider, model)
        transition = breaker.record(failed, at=at, agent=agent)
        self.held_back = breaker.held_back
        return transition

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

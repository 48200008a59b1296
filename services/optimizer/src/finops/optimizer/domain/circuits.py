"""Circuit breakers in routing: arms whose provider/model breaker is open are not offered.

The healer publishes every breaker's state (``finops.circuits.v1``); the optimizer reads it
into a table with :meth:`BreakerStates.state_of`. Pure: the table and the random draw are
passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

OPEN = "open"
HALF_OPEN = "half_open"


class BreakerStates(Protocol):
    """``"closed"``, ``"open"``, ``"half_open"``, or None when no breaker is known."""

    def state_of(self, provider: str, model: str) -> str | None: ...


class _Draw(Protocol):
    def random(self) -> float: ...


class _Arm(Protocol):
    @property
    def model(self) -> str: ...

    @property
    def provider(self) -> str: ...

    @property
    def arm_id(self) -> str: ...


@dataclass(frozen=True)
class SkippedArm:
    """An arm left out of a recommendation because of its breaker."""

    arm: str
    model: str
    provider: str
    breaker: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def screen(
    arms: Sequence[_Arm], breakers: BreakerStates, probe_rate: float, draw: _Draw
) -> tuple[list[str], list[SkippedArm]]:
    """The arms to offer and the ones skipped: open breakers always, half-open ones unless
    this request is one of the ``probe_rate`` share that probes them. When every arm would
    be skipped, none is (an answer is better than none; the caller says why).

    Examples
    --------
    >>> from types import SimpleNamespace as Arm
    >>> arms = [Arm(model="a", provider="p", arm_id="a|p|default"),
    ...         Arm(model="b", provider="p", arm_id="b|p|default")]
    >>> class Table:
    ...     def state_of(self, provider, model):
    ...         return {"a": "open"}.get(model)
    >>> kept, skipped = screen(arms, Table(), 0.05, draw=None)
    >>> kept, [s.breaker for s in skipped]
    (['b|p|default'], ['open'])
    """
    kept: list[str] = []
    skipped: list[SkippedArm] = []
    for arm in arms:
        state = breakers.state_of(arm.provider, arm.model)
        blocked = state == OPEN or (state == HALF_OPEN and draw.random() >= probe_rate)
        if blocked:
            skipped.append(SkippedArm(arm.arm_id, arm.model, arm.provider, str(state)))
        else:
            kept.append(arm.arm_id)
    if not kept:
        return [arm.arm_id for arm in arms], skipped
    return kept, skipped

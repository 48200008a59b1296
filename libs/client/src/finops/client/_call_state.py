"""Where a self-healing call stands (:class:`CallState`), how far it may go
(:class:`Limits`), what it does after a failure (:class:`Step`) and the error it would give
up after if it ended now (:class:`LastError`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass
class CallState:
    """Where a self-healing call stands: the model it uses now and what it changed."""

    task_type: str
    provider: str
    model: str
    params: dict[str, Any]
    input_tokens: int | None = None
    max_tokens: int | None = None
    attempt: int = 1
    advice_id: str | None = None
    #: the model and provider first asked for (a decision tag is about them)
    first_arm: tuple[str, str] = ("", "")

    def __post_init__(self) -> None:
        self.first_arm = (self.provider, self.model)

    @property
    def on_first_arm(self) -> bool:
        return (self.provider, self.model) == self.first_arm

    def arguments(self) -> dict[str, Any]:
        return {"provider": self.provider, "model": self.model, **self.params}


@dataclass(frozen=True)
class Step:
    """What to do after a failure: give up, or wait ``delay_s`` (after trimming to
    ``trim_to`` tokens through the agent's hook, when set) and call again."""

    give_up: bool
    delay_s: float = 0.0
    trim_to: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class Limits:
    """How far a self-healing call may go: attempts in all, and seconds from its start."""

    max_attempts: int = 5
    budget_s: float = 120.0


@dataclass
class LastError:
    """The ``agent.error`` of a call's last failed attempt: its event id and time, fixed
    when the attempt failed, so that the error sent again is the same event."""

    event_id: str
    time: str
    data: dict[str, Any]

    @classmethod
    def now(cls, data: dict[str, Any]) -> LastError:
        """The error of an attempt that failed now: a new event id, the time now."""
        return cls(str(uuid.uuid4()), time_now(), data)


def time_now() -> str:
    """The time now, as an event's ``time`` (ISO 8601, UTC)."""
    return datetime.now(UTC).isoformat()

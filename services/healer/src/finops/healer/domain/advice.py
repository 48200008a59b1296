"""One advice: the classified error, the remedy chosen among the safe ones, and why.

Pure: no I/O. Breaker states come through the :class:`BreakerStates` port (the circuit
breakers implement it; :class:`NoBreakers` knows none), so a fallback never chooses a
(provider, model) whose breaker is open.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Protocol

from finops.common.provider_errors.taxonomy import Classification, ErrorKind
from finops.healer.domain.catalog import ModelCatalog
from finops.healer.domain.effectiveness import RemedyLearner
from finops.healer.domain.remedies import (
    Action,
    Backoff,
    FailedCall,
    Remedy,
    RemedyContext,
    candidate_remedies,
)

OPEN = "open"


class BreakerStates(Protocol):
    """The circuit breakers as the advice sees them.

    ``state_of`` answers ``"closed"``, ``"open"`` or ``"half_open"``, or ``None`` when no
    breaker is known for that (provider, model).
    """

    def state_of(self, provider: str, model: str) -> str | None: ...


class NoBreakers:
    """A breaker view that knows no breaker: every state is ``None``.

    Examples
    --------
    >>> NoBreakers().state_of("openai", "gpt-4o") is None
    True
    """

    def state_of(self, provider: str, model: str) -> str | None:
        return None


@dataclass(frozen=True)
class Advice:
    """What the healer tells an agent about one failed call."""

    advice_id: str
    agent_id: str
    kind: ErrorKind
    rule: str
    remedy: Remedy
    breaker: str | None
    call: FailedCall
    stated_wait_ms: int | None = None
    #: the advice this failure followed (the agent applied it and failed again), if any
    follows: str | None = None
    candidates: tuple[Action, ...] = field(default_factory=tuple)

    @property
    def retryable(self) -> bool:
        return Classification(self.kind, self.rule).retryable

    def to_answer(self) -> dict[str, Any]:
        """The API's answer (and the core of the ``finops.healing.v1`` record)."""
        remedy = self.remedy
        return {
            "advice_id": self.advice_id,
            "kind": self.kind.value,
            "retryable": self.retryable,
            "remedy": {
                "action": remedy.action.value,
                "delay_ms": remedy.delay_ms,
                "model": remedy.model,
                "provider": remedy.provider,
                "max_input_tokens": remedy.max_input_tokens,
                "params": dict(remedy.params),
            },
            "reason": remedy.reason,
            "breaker": self.breaker,
        }


@dataclass
class Advisor:
    """Chooses remedies: the candidates of :func:`candidate_remedies`, picked by the learner."""

    catalog: ModelCatalog
    breakers: BreakerStates
    learner: RemedyLearner
    rng: random.Random = field(default_factory=random.Random)
    backoff: Backoff = field(default_factory=Backoff)

    def _open(self, provider: str, model: str) -> bool:
        return self.breakers.state_of(provider, model) == OPEN

    def advise(
        self,
        advice_id: str,
        agent_id: str,
        classification: Classification,
        call: FailedCall,
        follows: str | None = None,
    ) -> Advice:
        context = RemedyContext(
            call, classification.stated_wait_ms, self.catalog, self._open, self.rng, self.backoff
        )
        candidates = candidate_remedies(classification.kind, context)
        by_action = {remedy.action: remedy for remedy in candidates}
        chosen = self.learner.choose(classification.kind, call.provider, list(by_action), self.rng)
        return Advice(
            advice_id=advice_id,
            agent_id=agent_id,
            kind=classification.kind,
            rule=classification.rule,
            remedy=by_action[chosen],
            breaker=self.breakers.state_of(call.provider, call.model),
            call=call,
            stated_wait_ms=classification.stated_wait_ms,
            follows=follows,
            candidates=tuple(by_action),
        )

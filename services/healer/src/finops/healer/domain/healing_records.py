"""What the healing ledger counts: advices, their outcomes, and its stats per kind.

Pure: no I/O. The ledger itself is :class:`~finops.healer.domain.healing_stats.HealingLedger`;
how these are written into its checkpoint is :mod:`finops.healer.domain.ledger_checkpoint`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from finops.common.provider_errors.taxonomy import ErrorKind
from finops.healer.domain.remedies import Action


@dataclass(frozen=True)
class ModelRef:
    """A model as a provider names it."""

    provider: str
    model: str

    def names(self, provider: str | None, model: str | None) -> bool:
        """Whether ``provider`` and ``model`` are this one."""
        return (self.provider, self.model) == (provider, model)


@dataclass(frozen=True)
class AdviceRecord:
    """What the ledger needs of one advice (read back from ``finops.healing.v1``)."""

    advice_id: str
    kind: ErrorKind
    provider: str
    model: str
    action: Action
    at_s: float
    follows: str | None = None


@dataclass(frozen=True)
class Outcome:
    """A call that followed an advice: it succeeded (``healed``) or failed again."""

    advice_id: str
    healed: bool
    at_s: float
    cost_usd: float = 0.0
    #: what the same usage costs on the model the chain first asked for; None: the ledger
    #: prices it (``baseline_price``) from the call's provider, model and usage below when
    #: it applies the outcome, at once when the advice is known, else once it arrives
    baseline_cost_usd: float | None = 0.0
    provider: str | None = None
    model: str | None = None
    usage: dict[str, Any] | None = None


#: prices an outcome's usage on another (provider, model): None when it cannot
BaselinePrice = Callable[[str, str, Outcome], float | None]


@dataclass
class KindStats:
    """Per kind: errors seen, chains advised, chains healed, time to heal, extra cost."""

    occurrences: int = 0
    advised: int = 0
    healed: int = 0
    heal_time_s: float = 0.0
    extra_cost_usd: float = 0.0

    def report(self) -> dict[str, Any]:
        return {
            "occurrences": self.occurrences,
            "advised": self.advised,
            "healed": self.healed,
            "healed_ratio": self.healed / self.advised if self.advised else None,
            "mean_time_to_heal_ms": (
                round(self.heal_time_s / self.healed * 1000.0, 1) if self.healed else None
            ),
            "extra_cost_usd": round(self.extra_cost_usd, 9),
        }


@dataclass(frozen=True)
class PendingAdvice:
    """An advice awaiting its outcome. Immutable, so a checkpoint's changes may share it (see
    :meth:`~finops.healer.domain.healing_stats.HealingLedger.take_changes`); resolving it
    replaces the entry."""

    record: AdviceRecord
    chain: str  # the advice id that started the chain
    chain_start_s: float
    chain_kind: ErrorKind
    resolved: bool = False

"""Outcomes of advice: what healed, how fast, at what extra cost; the learner's trials.

Pure: no I/O. The healer reads three streams and hands this ledger what they say:

* every advice given (``finops.healing.v1``, from every instance): :meth:`HealingLedger.advised`;
* every error (``agent.error.v1``), classified: :meth:`HealingLedger.failed`. One that carries
  ``remedy.advice_id`` is a failed trial of that advice's remedy;
* every successful call that carries ``remedy.advice_id`` (``agent.cost.v1``):
  :meth:`HealingLedger.healed`, a healed trial.

An agent that applies advice and fails again asks again, naming the advice it followed
(``remedy.advice_id`` of its error): the advices of one failing call form a chain, counted
once, under the kind of its first error. A chain is healed when a call of it succeeds;
its time to heal runs from its first advice to that success, and its extra cost is what the
healing call cost over the same usage on the model first asked for.

The streams are separate topics, so an outcome can be read before its advice: it waits (at
most :data:`MAX_WAITING` of them) until the advice arrives.

The records the ledger counts are :mod:`finops.healer.domain.healing_records`; the form its
checkpoint saves is :mod:`finops.healer.domain.ledger_checkpoint`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from uuid import UUID

from finops.common.id_dedupe import IdDedupe, fingerprint
from finops.common.provider_errors.taxonomy import ErrorKind
from finops.healer.domain.effectiveness import RemedyLearner
from finops.healer.domain.healing_records import (
    AdviceRecord,
    BaselinePrice,
    KindStats,
    ModelRef,
    Outcome,
    PendingAdvice,
)
from finops.healer.domain.ledger_checkpoint import (
    LedgerChanges,
    outcome_state,
    pending_state,
    record_from_state,
)
from finops.healer.domain.ledger_segments import SegmentIndex

#: Advices remembered while their outcome is awaited (the oldest is forgotten first).
MAX_PENDING = 200_000
#: Outcomes that arrived before their advice, kept until it does.
MAX_WAITING = 20_000
#: Error event ids remembered, so a redelivered error is one occurrence (see IdDedupe; as
#: many as the breakers of a partition remember by default).
ERROR_IDS = 65_536


@dataclass
class HealingLedger:
    """Stats per kind and the learner's trials, from advice and outcomes.

    Examples
    --------
    >>> from finops.healer.domain.remedies import Action
    >>> ledger = HealingLedger()
    >>> first = AdviceRecord("a1", ErrorKind.OVERLOADED, "openai", "gpt-4o", Action.RETRY, 0.0)
    >>> ledger.failed(ErrorKind.OVERLOADED, None, 0.0)
    >>> ledger.advised(first)
    >>> ledger.failed(ErrorKind.OVERLOADED, "a1", 1.0)
    >>> ledger.advised(AdviceRecord("a2", ErrorKind.OVERLOADED, "openai", "gpt-4o",
    ...                             Action.FALLBACK, 1.0, follows="a1"))
    >>> ledger.healed(Outcome("a2", True, 2.5, cost_usd=0.03, baseline_cost_usd=0.02))
    >>> overloaded = ledger.report()["overloaded"]
    >>> overloaded["healed_ratio"], overloaded["mean_time_to_heal_ms"], overloaded["extra_cost_usd"]
    (1.0, 2500.0, 0.01)
    """

    learner: RemedyLearner = field(default_factory=RemedyLearner)
    kinds: dict[ErrorKind, KindStats] = field(default_factory=dict)
    pending: OrderedDict[str, PendingAdvice] = field(default_factory=OrderedDict)
    waiting: OrderedDict[str, Outcome] = field(default_factory=OrderedDict)
    healed_chains: OrderedDict[str, None] = field(default_factory=OrderedDict)
    error_ids: IdDedupe = field(default_factory=lambda: IdDedupe(ERROR_IDS))
    #: the segments of ``pending`` and ``healed_chains`` changed since the last checkpoint
    pending_index: SegmentIndex = field(default_factory=SegmentIndex)
    chain_index: SegmentIndex = field(default_factory=SegmentIndex)
    #: prices an outcome read before its advice once the advice says the first model (the
    #: adapter's genai-prices); without it such an outcome costs no more than it did
    baseline_price: BaselinePrice | None = field(default=None, repr=False, compare=False)

    def _stats(self, kind: ErrorKind) -> KindStats:
        return self.kinds.setdefault(kind, KindStats())

    def advised(self, record: AdviceRecord) -> None:
        if record.advice_id in self.pending:  # a copy of an advice counted already
            return
        before = self.pending.get(record.follows) if record.follows else None
        if before is not None:
            entry = PendingAdvice(record, before.chain, before.chain_start_s, before.chain_kind)
        else:
            entry = PendingAdvice(record, record.advice_id, record.at_s, record.kind)
            self._stats(record.kind).advised += 1
        self._remember(entry)
        early = self.waiting.pop(record.advice_id, None)
        if early is not None:
            self._resolve(entry, early)

    def _remember(self, entry: PendingAdvice) -> None:
        self.pending[entry.record.advice_id] = entry
        self.pending_index.add(entry.record.advice_id)
        while len(self.pending) > MAX_PENDING:
            forgotten, _ = self.pending.popitem(last=False)
            self.pending_index.forget(forgotten)

    def failed(
        self, kind: ErrorKind, advice_id: str | None, at_s: float, event_id: UUID | None = None
    ) -> None:
        """One classified error; ``advice_id`` is the advice the agent had applied, if any.
        An ``event_id`` already counted (a redelivered event) counts nothing."""
        if event_id is not None and not self.error_ids.add(fingerprint(event_id)):
            return
        self._stats(kind).occurrences += 1
        if advice_id is not None:
            self._outcome(Outcome(advice_id, healed=False, at_s=at_s))

    def healed(self, outcome: Outcome) -> None:
        self._outcome(outcome)

    def _outcome(self, outcome: Outcome) -> None:
        entry = self.pending.get(outcome.advice_id)
        if entry is None:
            self.waiting[outcome.advice_id] = outcome
            while len(self.waiting) > MAX_WAITING:
                self.waiting.popitem(last=False)
            return
        self._resolve(entry, outcome)

    def _resolve(self, entry: PendingAdvice, outcome: Outcome) -> None:
        if entry.resolved:  # a redelivered outcome counts once
            return
        self.pending[entry.record.advice_id] = replace(entry, resolved=True)
        self.pending_index.touch(entry.record.advice_id)
        record = entry.record
        self.learner.observe(record.kind, record.provider, record.action, healed=outcome.healed)
        if not outcome.healed or entry.chain in self.healed_chains:
            return
        self._chain_healed(entry.chain)
        stats = self._stats(entry.chain_kind)
        stats.healed += 1
        stats.heal_time_s += max(0.0, outcome.at_s - entry.chain_start_s)
        stats.extra_cost_usd += outcome.cost_usd - self._baseline(entry, outcome)

    def _baseline(self, entry: PendingAdvice, outcome: Outcome) -> float:
        """What the outcome's usage costs on the model its chain first asked for."""
        if outcome.baseline_cost_usd is not None:
            return outcome.baseline_cost_usd
        first = self.first_model(entry.record.advice_id)
        if (
            first is None
            or first.names(outcome.provider, outcome.model)
            or self.baseline_price is None
        ):
            return outcome.cost_usd
        priced = self.baseline_price(first.provider, first.model, outcome)
        return outcome.cost_usd if priced is None else priced

    def _chain_healed(self, chain: str) -> None:
        self.healed_chains[chain] = None
        self.chain_index.add(chain)
        while len(self.healed_chains) > MAX_PENDING:
            forgotten, _ = self.healed_chains.popitem(last=False)
            self.chain_index.forget(forgotten)

    def first_model(self, advice_id: str) -> ModelRef | None:
        """The model the chain of ``advice_id`` first asked for, if the advice is known."""
        entry = self.pending.get(advice_id)
        if entry is None:
            return None
        root = self.pending.get(entry.chain, entry)
        return ModelRef(root.record.provider, root.record.model)

    def report(self) -> dict[str, dict[str, Any]]:
        return {kind.value: stats.report() for kind, stats in sorted(self.kinds.items())}

    # ---- state --------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """The whole ledger as one dict (:meth:`from_state` reads it back)."""
        return {
            **self._small_parts(),
            "error_ids": self.error_ids.to_state(),
            "pending": [pending_state(entry) for entry in self.pending.values()],
            "healed_chains": list(self.healed_chains),
        }

    def _small_parts(self) -> dict[str, Any]:
        return {
            "learner": self.learner.to_state(),
            "kinds": {k.value: asdict(s) for k, s in self.kinds.items()},
            "waiting": [outcome_state(o) for o in self.waiting.values()],
        }

    def take_changes(self) -> LedgerChanges:
        """What changed since the last call: the small parts whole, the two large ones
        (``pending``, ``healed_chains``) as the segments changed (see
        :mod:`~finops.healer.domain.ledger_segments`). Until :meth:`give_back` the segments
        taken count as saved."""
        pending = self.pending_index.take_changed()
        chains = self.chain_index.take_changed()
        return LedgerChanges(
            small=self._small_parts(),
            error_ids=self.error_ids.copy(),  # packed on the thread that encodes
            pending={
                segment: [self.pending[key] for key in self.pending_index.keys(segment)]
                for segment in pending
            },
            chains={segment: self.chain_index.keys(segment) for segment in chains},
            complete=self.pending_index.members.keys() <= set(pending)
            and self.chain_index.members.keys() <= set(chains),
        )

    def give_back(self, changes: LedgerChanges) -> None:
        """``changes`` were not saved: their segments count as changed again."""
        self.pending_index.mark_changed(list(changes.pending))
        self.chain_index.mark_changed(list(changes.chains))

    def mark_all_changed(self) -> None:
        """The next :meth:`take_changes` holds every segment (the saved ones are gone)."""
        self.pending_index.mark_all_changed()
        self.chain_index.mark_all_changed()

    @classmethod
    def from_state(
        cls, state: dict[str, Any], baseline_price: BaselinePrice | None = None
    ) -> HealingLedger:
        """The ledger :meth:`to_state` (or a checkpoint's small parts and segments) saved,
        pricing with ``baseline_price`` (the function is not state); every segment of it
        counts as changed."""
        ledger = cls(
            learner=RemedyLearner.from_state(state["learner"]), baseline_price=baseline_price
        )
        ledger.kinds = {ErrorKind(k): KindStats(**v) for k, v in state["kinds"].items()}
        for row in state["pending"]:
            record = record_from_state(row)
            ledger._remember(
                PendingAdvice(
                    record,
                    row["chain"],
                    float(row["chain_start_s"]),
                    ErrorKind(row["chain_kind"]),
                    bool(row["resolved"]),
                )
            )
        for row in state["waiting"]:
            ledger.waiting[row["advice_id"]] = Outcome(**row)
        for chain in state["healed_chains"]:
            ledger._chain_healed(chain)
        if "error_ids" in state:  # absent from checkpoints of earlier versions
            ledger.error_ids = IdDedupe.from_state(state["error_ids"])
        return ledger

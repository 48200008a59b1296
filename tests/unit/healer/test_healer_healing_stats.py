"""The healing ledger: chains counted once, outcomes before their advice, redeliveries,
the learner's trials, and a state that survives a round trip through JSON."""

from __future__ import annotations

import json
from dataclasses import asdict

from finops.common.provider_errors.taxonomy import ErrorKind
from finops.healer.domain.healing_records import AdviceRecord, ModelRef, Outcome
from finops.healer.domain.healing_stats import HealingLedger
from finops.healer.domain.remedies import Action

K = ErrorKind


def record(
    advice_id: str, at_s: float, action: Action = Action.RETRY, follows: str | None = None
) -> AdviceRecord:
    return AdviceRecord(advice_id, K.RATE_LIMIT, "openai", "gpt-4o", action, at_s, follows)


def test_a_chain_of_advice_counts_once_and_heals_from_its_first_advice() -> None:
    ledger = HealingLedger()
    ledger.failed(K.RATE_LIMIT, None, 10.0)
    ledger.advised(record("a1", 10.0))
    ledger.failed(K.RATE_LIMIT, "a1", 11.0)
    ledger.advised(record("a2", 11.0, Action.WAIT, follows="a1"))
    ledger.healed(Outcome("a2", True, 14.0, cost_usd=0.5, baseline_cost_usd=0.5))
    stats = ledger.report()["rate_limit"]
    assert stats == {
        "occurrences": 2,
        "advised": 1,
        "healed": 1,
        "healed_ratio": 1.0,
        "mean_time_to_heal_ms": 4000.0,
        "extra_cost_usd": 0.0,
    }
    trials = {(a, t.healed, t.failed) for (_, _, a), t in ledger.learner.trials.items()}
    assert trials == {(Action.RETRY, 0, 1), (Action.WAIT, 1, 0)}


def test_an_outcome_read_before_its_advice_waits_for_it() -> None:
    ledger = HealingLedger()
    ledger.healed(Outcome("a1", True, 5.0, cost_usd=0.2, baseline_cost_usd=0.1))
    assert ledger.report() == {}
    ledger.advised(record("a1", 3.0, Action.FALLBACK))
    stats = ledger.report()["rate_limit"]
    assert (stats["healed"], stats["mean_time_to_heal_ms"], stats["extra_cost_usd"]) == (
        1,
        2000.0,
        0.1,
    )
    assert not ledger.waiting


def test_a_redelivered_outcome_counts_once() -> None:
    ledger = HealingLedger()
    ledger.advised(record("a1", 0.0))
    ledger.healed(Outcome("a1", True, 1.0))
    ledger.healed(Outcome("a1", True, 1.0))
    assert ledger.report()["rate_limit"]["healed"] == 1
    assert sum(t.healed for t in ledger.learner.trials.values()) == 1


def test_an_advice_delivered_twice_counts_once_and_stays_resolved() -> None:
    # The healing topic's producer retries (without idempotence on the local broker) may
    # write an advice twice: the copy must neither count a second chain nor reopen it.
    ledger = HealingLedger()
    ledger.advised(record("a1", 0.0))
    ledger.healed(Outcome("a1", True, 1.0))
    ledger.advised(record("a1", 0.0))
    ledger.healed(Outcome("a1", True, 1.0))
    stats = ledger.report()["rate_limit"]
    assert (stats["advised"], stats["healed"]) == (1, 1)
    assert sum(t.healed for t in ledger.learner.trials.values()) == 1


def test_unhealed_chains_lower_the_ratio() -> None:
    ledger = HealingLedger()
    ledger.advised(record("a1", 0.0))
    ledger.advised(record("b1", 0.0))
    ledger.healed(Outcome("a1", True, 1.0))
    ledger.failed(K.RATE_LIMIT, "b1", 1.0)
    assert ledger.report()["rate_limit"]["healed_ratio"] == 0.5


def test_the_ledger_state_round_trips_through_json() -> None:
    ledger = HealingLedger()
    ledger.advised(record("a1", 0.0))
    ledger.advised(record("a2", 1.0, follows="a1"))
    ledger.healed(Outcome("zz", True, 1.0))
    ledger.healed(Outcome("a2", True, 2.0))
    restored = HealingLedger.from_state(json.loads(json.dumps(ledger.to_state())))
    assert restored.report() == ledger.report()
    assert restored.learner.trials == ledger.learner.trials
    assert list(restored.waiting) == ["zz"] and restored.first_model("a2") == ModelRef(
        "openai", "gpt-4o"
    )
    restored.healed(Outcome("a2", True, 3.0))  # already resolved before the restart
    assert restored.report()["rate_limit"]["healed"] == 1


def test_saved_entries_hold_every_field_as_asdict_wrote_them():
    # The entries are written out field by field (asdict took ~10 µs each, seconds per
    # checkpoint at MAX_PENDING): a field added to a dataclass must be saved too, and the
    # checkpoint's bytes stay as they were.
    ledger = HealingLedger()
    advice = AdviceRecord("a1", K.OVERLOADED, "openai", "gpt-4o", Action.RETRY, 1.5, "a0")
    early = Outcome("a9", True, 2.5, cost_usd=0.03, baseline_cost_usd=0.02)
    ledger.advised(advice)
    ledger.healed(early)  # before its advice: it waits
    state = ledger.to_state()
    as_before = {**asdict(advice), "kind": "overloaded", "action": "retry"}
    [pending] = state["pending"]
    assert json.dumps(pending) == json.dumps(
        {**as_before, "chain": "a1", "chain_start_s": 1.5, "chain_kind": "overloaded",
         "resolved": False}
    )  # fmt: skip
    assert json.dumps(state["waiting"]) == json.dumps([asdict(early)])

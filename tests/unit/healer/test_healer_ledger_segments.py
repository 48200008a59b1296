"""The healing ledger's checkpoint in segments: a save holds only the segments changed since
the last one, and the segments saved after any sequence of changes put back the whole ledger."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finops.common.provider_errors.taxonomy import ErrorKind
from finops.healer.domain import healing_stats
from finops.healer.domain.healing_records import AdviceRecord, Outcome
from finops.healer.domain.healing_stats import HealingLedger
from finops.healer.domain.ledger_checkpoint import HEALED_CHAINS, PENDING, EncodedChanges
from finops.healer.domain.ledger_segments import SegmentIndex
from finops.healer.domain.remedies import Action


def small_ledger(segment_size: int = 2) -> HealingLedger:
    return HealingLedger(
        pending_index=SegmentIndex(segment_size), chain_index=SegmentIndex(segment_size)
    )


def advice(advice_id: str, at_s: float = 0.0, follows: str | None = None) -> AdviceRecord:
    return AdviceRecord(
        advice_id, ErrorKind.OVERLOADED, "openai", "gpt-4o", Action.RETRY, at_s, follows
    )


class SavedSegments:
    """What a store holds after saving each change in turn (the PostgreSQL store's rule)."""

    def __init__(self) -> None:
        self.small: dict[str, Any] = {}
        self.segments: dict[tuple[str, int], list[Any]] = {}

    def save(self, changes: EncodedChanges) -> None:
        self.small = json.loads(changes.small)
        for segment in changes.segments:
            key = (segment.part, segment.segment)
            if segment.text is None:
                self.segments.pop(key, None)
            else:
                self.segments[key] = json.loads(segment.text)

    def state(self) -> dict[str, Any]:
        parts: dict[str, list[Any]] = {PENDING: [], HEALED_CHAINS: []}
        for (part, _), rows in sorted(self.segments.items()):
            parts[part].extend(rows)
        return {**self.small, **parts}


def test_a_save_holds_only_the_segments_changed_since_the_last() -> None:
    ledger = small_ledger()
    for n in range(6):  # segments 0, 1, 2 of two advices each
        ledger.advised(advice(f"a{n}", n))
    first = ledger.take_changes()
    assert sorted(first.pending) == [0, 1, 2] and first.complete
    ledger.healed(Outcome("a2", True, 9.0))  # resolves an advice of segment 1, heals a chain
    second = ledger.take_changes()
    assert {s: [e.record.advice_id for e in rows] for s, rows in second.pending.items()} == {
        1: ["a2", "a3"]
    }
    assert second.chains == {0: ["a2"]} and not second.complete
    assert ledger.take_changes().pending == {}  # nothing changed since


def test_a_segment_whose_advices_are_all_forgotten_is_removed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(healing_stats, "MAX_PENDING", 3)
    ledger = small_ledger()
    for n in range(3):
        ledger.advised(advice(f"a{n}", n))
    ledger.take_changes()
    ledger.advised(advice("a3", 3))  # a0 forgotten: segment 0 keeps a1
    ledger.advised(advice("a4", 4))  # a1 forgotten: segment 0 is empty
    changes = ledger.take_changes()
    assert {s: [e.record.advice_id for e in rows] for s, rows in changes.pending.items()} == {
        0: [],
        1: ["a2", "a3"],
        2: ["a4"],
    }
    first = changes.encode().segments[0]
    assert (first.part, first.segment, first.text) == (PENDING, 0, None)


def test_segments_given_back_after_a_failed_save_are_in_the_next() -> None:
    ledger = small_ledger()
    ledger.advised(advice("a0"))
    ledger.advised(advice("a1"))
    failed = ledger.take_changes()  # segment 0
    ledger.advised(advice("a2"))  # segment 1
    ledger.give_back(failed)
    assert sorted(ledger.take_changes().pending) == [0, 1]


def test_after_mark_all_changed_a_save_is_complete() -> None:
    ledger = small_ledger()
    for n in range(5):
        ledger.advised(advice(f"a{n}", n))
    ledger.healed(Outcome("a0", True, 1.0))
    ledger.take_changes()
    ledger.mark_all_changed()
    changes = ledger.take_changes()
    assert changes.complete
    assert (sorted(changes.pending), sorted(changes.chains)) == ([0, 1, 2], [0])


#: one step of a ledger's life: advise (perhaps following an earlier advice), an outcome,
#: an error, a save
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("advise"), st.integers(0, 40), st.integers(-1, 40)),
        st.tuples(st.just("healed"), st.integers(0, 40), st.booleans()),
        st.tuples(st.just("failed"), st.integers(0, 40), st.just(0)),
        st.tuples(st.just("save"), st.just(0), st.just(0)),
    ),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(steps=STEPS)
def test_the_saved_segments_put_back_the_whole_ledger(steps: list[tuple[str, int, Any]]) -> None:
    original = healing_stats.MAX_PENDING
    healing_stats.MAX_PENDING = 7  # advices are forgotten too (monkeypatch is per test)
    try:
        ledger, saved = small_ledger(segment_size=3), SavedSegments()
        for step, n, arg in steps:
            if step == "advise":
                ledger.advised(advice(f"a{n}", float(n), f"a{arg}" if arg >= 0 else None))
            elif step == "healed":
                ledger.healed(Outcome(f"a{n}", arg, float(n)))
            elif step == "failed":
                ledger.failed(ErrorKind.OVERLOADED, f"a{n}", float(n))
            else:
                saved.save(ledger.take_changes().encode())
        saved.save(ledger.take_changes().encode())
        assert saved.state() == json.loads(json.dumps(ledger.to_state()))
        restored = HealingLedger.from_state(saved.state())
        assert restored.to_state() == ledger.to_state()
    finally:
        healing_stats.MAX_PENDING = original

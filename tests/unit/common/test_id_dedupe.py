"""The bounded memory of event ids shared by the optimizer and the healer."""

from __future__ import annotations

import uuid

from finops.common.id_dedupe import IdDedupe, fingerprint


def test_a_restored_memory_still_knows_the_ids_it_saved():
    ids = [uuid.uuid4() for _ in range(50)]
    memory = IdDedupe(capacity=64)
    assert all(memory.add(fingerprint(i)) for i in ids)
    restored = IdDedupe.from_state(memory.to_state())
    assert [restored.add(fingerprint(i)) for i in ids] == [False] * 50
    assert restored.add(fingerprint(uuid.uuid4())) is True


def packed_afresh(memory: IdDedupe) -> list[str]:
    """The saved generations, packed without the memory's remembered packing."""
    return IdDedupe.from_state(memory.to_state()).copy().to_state()["ids"]


def test_the_saved_ids_are_those_of_now_across_copies_and_dropped_generations():
    # A full generation is packed once and its packing reused: a copy taken for a checkpoint
    # shares it, and a generation dropped since must not come back.
    memory = IdDedupe(capacity=8, generations=4)
    seen: list[int] = []
    for fp in range(1, 30):
        memory.add(fp)
        snapshot = memory.copy()
        memory.add(1000 + fp)  # the live memory moves on while the copy is saved
        saved = snapshot.to_state()
        fresh = IdDedupe(capacity=8, generations=4)
        fresh._gens = [set(g) for g in snapshot._gens]
        assert saved["ids"] == fresh.to_state()["ids"]
        seen.append(len(saved["ids"]))
    assert max(seen) == 4 and memory.to_state()["ids"] == packed_afresh(memory)

"""The bounded memory of event ids shared by the optimizer and the healer."""

from __future__ import annotations

import doctest
import uuid

from finops.common import id_dedupe
from finops.common.id_dedupe import IdDedupe, fingerprint


def test_docstring_examples_run():
    result = doctest.testmod(id_dedupe)
    assert result.attempted > 0
    assert result.failed == 0


def test_a_restored_memory_still_knows_the_ids_it_saved():
    ids = [uuid.uuid4() for _ in range(50)]
    memory = IdDedupe(capacity=64)
    assert all(memory.add(fingerprint(i)) for i in ids)
    restored = IdDedupe.from_state(memory.to_state())
    assert [restored.add(fingerprint(i)) for i in ids] == [False] * 50
    assert restored.add(fingerprint(uuid.uuid4())) is True

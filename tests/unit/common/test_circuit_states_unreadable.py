"""A record of ``finops.circuits.v1`` the breaker table cannot read is counted on /metrics
(``finops_circuit_states_unreadable_total``): no dead-letter topic holds it, and before the
counter only a log line said it was skipped."""

from __future__ import annotations

import json

from prometheus_client import REGISTRY

from finops.common.circuits import CircuitReader, CircuitState, CircuitStatus, CircuitTable


def unreadable() -> float:
    return REGISTRY.get_sample_value("finops_circuit_states_unreadable_total") or 0.0


def test_each_unreadable_record_is_counted_and_a_state_or_a_tombstone_is_not():
    table = CircuitTable()
    reader = CircuitReader(None, "finops.circuits.v1", table)  # type: ignore[arg-type]
    before = unreadable()
    state = CircuitState(
        "openai", "gpt-4o", CircuitStatus.OPEN, 0.6, 40, 24, 60.0, 0.0, 30.0, "rate", updated_at=5.0
    )
    reader.take(state.to_json())
    reader.take(None)  # a tombstone
    for raw in (b"this is not json {", b"[1]", json.dumps({"provider": "x"}).encode()):
        reader.take(raw)
    assert unreadable() == before + 3
    assert table.state_of("openai", "gpt-4o") == "open"

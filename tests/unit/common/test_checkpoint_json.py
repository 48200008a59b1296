"""A checkpoint's JSON is built a slice at a time (the C encoder holds the GIL for a whole
``json.dumps``, so a large state dumped on a thread stalled the event loop) and is byte for
byte what one ``json.dumps`` makes."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from finops.common import checkpoints
from finops.common.checkpoints import JSON_SLICE, json_bytes


def _value(rnd: random.Random, depth: int = 0) -> Any:
    roll = rnd.random()
    if depth > 2 or roll < 0.4:
        return rnd.choice([1, -3, 2.5, 1e300, None, True, False, "x\u00e9", 'a"b\\c', ""])
    size = rnd.choice([0, 1, 3, JSON_SLICE, JSON_SLICE + 1, 2 * JSON_SLICE + 7])
    if roll < 0.7:
        return [_value(rnd, depth + 2) for _ in range(size)]
    return {f"k{i}": _value(rnd, depth + 2) for i in range(size)}


@pytest.mark.parametrize("seed", range(30))
def test_the_sliced_json_is_the_one_call_json(seed: int) -> None:
    rnd = random.Random(seed)
    state = {
        "nested": _value(rnd),
        "other": _value(rnd),
        "ids": [f"id-{i}" for i in range(rnd.choice([3, 3 * JSON_SLICE + 1]))],
        "by_id": {str(i): {"n": i} for i in range(rnd.choice([2, JSON_SLICE + 5]))},
        "numbers_as_keys": {1: "a", 2: "b"},
    }
    assert json_bytes(state) == json.dumps(state, separators=(",", ":")).encode()


def test_a_large_list_is_encoded_in_several_calls(monkeypatch) -> None:
    calls: list[int] = []
    encode = checkpoints._compact

    def counting(value: Any) -> str:
        calls.append(len(value) if isinstance(value, list | dict) else 1)
        return encode(value)

    monkeypatch.setattr(checkpoints, "_compact", counting)
    state = {"ids": list(range(3 * JSON_SLICE)), "small": {"a": 1}}
    assert json_bytes(state) == json.dumps(state, separators=(",", ":")).encode()
    assert max(calls) == JSON_SLICE and calls.count(JSON_SLICE) == 3


async def test_a_state_serialised_in_parts_is_the_one_call_json() -> None:
    state = {"ids": list(range(2 * JSON_SLICE + 3)), "kinds": {"a": 1}, "n": 2.5}
    parts = [(name, lambda value=value: value) for name, value in state.items()]
    assert await checkpoints.serialize_in_parts(parts) == (
        json.dumps(state, separators=(",", ":")).encode()
    )

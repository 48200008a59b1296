"""The spend analytics' checkpoint read both ways across the successes of unpriced calls.

Since ``cost_per_success`` is over the priced successes, the analytics keep the successes
among the unpriced calls, beside the packed aggregates (commit dc7d1d8 put them in, as a
twelfth item the version before could not unpack, and was reverted). Both directions are
tested with checkpoint bytes:

* old -> new: ``fixtures/analytics_state_34d8d9c.json`` was written by the code of commit
  34d8d9c (``fixtures/make_analytics_state_34d8d9c.py``);
* new -> old: what the current code writes is read by that commit's reader, frozen in
  ``fixtures/reader_34d8d9c`` (a rollback, or an old replica reading a new worker's
  partition state during a rolling upgrade).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from finops.common.checkpoints import serialize_in_parts
from finops.common.events import LlmCallEvent, llm_call_event
from finops.optimizer.domain.analytics import SpendAnalytics

FIXTURES = Path(__file__).parent / "fixtures"
OLD_STATE = FIXTURES / "analytics_state_34d8d9c.json"


def _old_reader() -> ModuleType:
    """``analytics`` of commit 34d8d9c (see ``fixtures/reader_34d8d9c``)."""
    name = "reader_34d8d9c"
    if name not in sys.modules:
        package = FIXTURES / name
        spec = importlib.util.spec_from_file_location(
            name, package / "__init__.py", submodule_search_locations=[str(package)]
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return importlib.import_module(f"{name}.analytics")


def call(model: str, cost: float | None, success: bool, minute: int, n: int) -> LlmCallEvent:
    return LlmCallEvent.model_validate(
        llm_call_event(
            {
                "agent_id": "bot",
                "task_type": "qa",
                "provider": "openai",
                "model": model,
                "usage": {"input_tokens": 100, "output_tokens": 10},
                "cost_usd": cost,
                "latency_ms": 400.0,
                "success": success,
            },
            event_id=uuid.UUID(int=n),
            time=f"2025-03-01T{10 + minute // 60:02d}:{minute % 60:02d}:00Z",
        )
    )


def checkpoint_bytes(sa: Any) -> bytes:
    """The analytics part of a checkpoint, serialised as the optimizer saves it."""
    return asyncio.run(serialize_in_parts([("analytics", sa.to_state)]))


def restored(blob: bytes, cls: Any = SpendAnalytics) -> Any:
    return cls.from_state(json.loads(blob)["analytics"])


def rows(sa: Any, dimension: str = "model") -> dict[str, dict[str, Any]]:
    return {r["key"]: r for r in sa.totals(dimension)}


def test_an_old_checkpoint_restores_with_its_unpriced_outcomes_unknown():
    sa = restored(OLD_STATE.read_bytes())
    m = rows(sa)["mostly-unpriced"]
    # what the old version counted, unchanged: 5 calls, 4 unpriced, 4 successes over $0.01
    assert (m["calls"], m["unpriced_calls"], m["successes"]) == (5, 4, 4)
    assert m["spend_usd"] == pytest.approx(0.01)
    # which unpriced calls succeeded is not in it: the figure stays the old one (over every
    # success), and the row says over how many unpriced calls of unknown outcome
    assert m["unpriced_outcome_unknown"] == 4
    assert (m["priced_successes"], m["cost_per_success"]) == (4, pytest.approx(0.0025))
    priced = rows(sa)["priced"]
    assert priced["unpriced_outcome_unknown"] == 0
    assert priced["cost_per_success"] == pytest.approx(0.04 / 3)
    # the calls taken from now on are split: a new unpriced success is left out, a new
    # priced one counts, and the unknown ones stay unknown through the next checkpoint
    sa.observe(call("mostly-unpriced", None, True, 30, 100))
    sa.observe(call("mostly-unpriced", 0.01, True, 31, 101))
    again = rows(restored(checkpoint_bytes(sa)))["mostly-unpriced"]
    assert (again["calls"], again["unpriced_calls"], again["successes"]) == (7, 5, 6)
    assert (again["unpriced_outcome_unknown"], again["priced_successes"]) == (4, 5)
    assert again["cost_per_success"] == pytest.approx(0.02 / 5)
    # a window the old version never wrote holds exact figures: the hour after it
    sa.observe(call("mostly-unpriced", None, True, 60, 102))
    sa.observe(call("mostly-unpriced", 0.01, True, 61, 103))
    newest = restored(checkpoint_bytes(sa)).window("model", "hour", limit=1)[0]
    [row] = newest["rows"]
    assert (row["unpriced_outcome_unknown"], row["priced_successes"]) == (0, 1)
    assert row["cost_per_success"] == pytest.approx(0.01)


def test_a_new_checkpoint_restores_in_the_old_version_with_its_figures():
    sa = SpendAnalytics(dedupe_capacity=1000)
    for n, (model, cost, success) in enumerate(
        [("m", 0.01, True), ("m", None, True), ("m", None, False), ("m", 0.03, False)]
    ):
        assert sa.observe(call(model, cost, success, n, n + 1))
    blob = checkpoint_bytes(sa)
    assert rows(sa)["m"]["cost_per_success"] == pytest.approx(0.04)  # over the priced one

    old = restored(blob, _old_reader().SpendAnalytics)
    m = rows(old)["m"]
    assert (m["calls"], m["unpriced_calls"], m["successes"]) == (4, 2, 2)
    assert m["spend_usd"] == pytest.approx(0.04)
    assert m["cost_per_success"] == pytest.approx(0.02)  # the old version's own figure
    # every window too (the windows' rows of both versions, field by field the old one has)
    for old_window, new_window in zip(
        old.window("model", "minute"), sa.window("model", "minute"), strict=True
    ):
        [old_row], [new_row] = old_window["rows"], new_window["rows"]
        assert old_row == {k: new_row[k] for k in old_row if k != "cost_per_success"} | {
            "cost_per_success": old_row["cost_per_success"]
        }
    # it still knows every id: the events replayed after the checkpoint count once
    assert not old.observe(call("m", 0.01, True, 0, 1))
    assert old.observe(call("m", None, True, 5, 5))

    # back to the new version (a failed rollback, an upgrade again): the old version wrote no
    # successes of unpriced calls, so their outcome is unknown and the figure is the old one
    back = rows(restored(checkpoint_bytes(old)))["m"]
    assert (back["calls"], back["unpriced_calls"], back["unpriced_outcome_unknown"]) == (5, 3, 3)
    assert back["cost_per_success"] == pytest.approx(0.04 / 3)


def as_dc7d1d8_wrote_it(state: dict[str, Any]) -> dict[str, Any]:
    """A state as commit dc7d1d8 (reverted; an ancestor of 34d8d9c) wrote it: each packed
    aggregate with a twelfth item, its unpriced successes, and no part beside them."""
    part = state.pop("unpriced_successes")

    def twelve(bucket: list[dict[str, list[Any]]], beside: list[dict[str, list[int]]]) -> None:
        for packed, extra in zip(bucket, beside, strict=True):
            for key, items in packed.items():
                items.append(extra.get(key, [0, 0])[0])

    twelve(state["totals"], part["totals"])
    for g, wins in state["windows"].items():
        for (_, bucket), (_, beside) in zip(wins, part["windows"][g], strict=True):
            twelve(bucket, beside)
    return state


def test_a_checkpoint_of_dc7d1d8_restores_with_its_unpriced_successes():
    sa = SpendAnalytics(dedupe_capacity=1000)
    for n, (cost, success) in enumerate([(0.01, True), (None, True), (None, False), (0.03, True)]):
        assert sa.observe(call("m", cost, success, n, n + 1))
    state = as_dc7d1d8_wrote_it(json.loads(checkpoint_bytes(sa))["analytics"])
    assert {len(items) for items in state["totals"][4].values()} == {12}
    # before: ValueError "too many values to unpack"
    m = rows(SpendAnalytics.from_state(state))["m"]
    assert (m["calls"], m["unpriced_calls"], m["successes"]) == (4, 2, 3)
    # it kept which unpriced calls succeeded: the figure is exact, no outcome unknown
    assert (m["unpriced_outcome_unknown"], m["priced_successes"]) == (0, 2)
    assert m["cost_per_success"] == pytest.approx(0.02)
    [window] = SpendAnalytics.from_state(state).window("model", "hour")
    [row] = window["rows"]
    assert (row["unpriced_outcome_unknown"], row["priced_successes"]) == (0, 2)

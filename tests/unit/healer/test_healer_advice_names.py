"""The advice API's body refuses a name as ingest refuses it in the same `agent.error` data:
a NUL is `invalid_text` (PostgreSQL cannot store it), any other control character
`control_character`. A NUL in a name was answered `control_character` (the name check ran
before the NUL check), where ingest said `invalid_text`."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from finops.common.events.schemas import validate_batch
from finops.healer.api.advice import AdviceIn


def _data(**changes: Any) -> dict[str, Any]:
    return {
        "agent_id": "bot",
        "task_type": "qa",
        "provider": "openai",
        "model": "gpt-4o",
        "error": {"message": "slow down", "status_code": 429},
        **changes,
    }


def _ingest_says(data: dict[str, Any]) -> list[tuple[str, str]]:
    event = {
        "id": "6f1c1c52-2d1b-4f64-8f3e-9a1f4c1e0a01",
        "type": "agent.error",
        "source": "bot",
        "time": "2026-12-07T06:00:00+00:00",
        "data": data,
    }
    return [(d["field"].removeprefix("data."), d["type"]) for d in validate_batch([event]).errors]


def _healer_says(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as refused:
        AdviceIn.model_validate(data)
    return [(".".join(map(str, e["loc"])), e["type"]) for e in refused.value.errors()]


@pytest.mark.parametrize(
    "changes",
    [
        {"task_type": "q\x00a"},
        {"model": "gpt\x00", "team": "a\tb"},
        {"error": {"message": "m", "type": "rate\x00limit"}},
    ],
)
def test_a_nul_in_a_name_is_invalid_text_as_at_ingest(changes: dict[str, Any]) -> None:
    data = _data(**changes)
    healer = _healer_says(data)
    assert healer and {t for _, t in healer} == {"invalid_text"}
    assert healer == [f for f in _ingest_says(data) if f[1] == "invalid_text"]


@pytest.mark.parametrize("task_type", ["q\na", "q\u2028a", "q\u202ea", "q\u200ba", "\ufeffqa"])
def test_another_control_character_in_a_name_is_control_character_as_at_ingest(
    task_type: str,
) -> None:
    data = _data(task_type=task_type)
    assert _healer_says(data) == _ingest_says(data) == [("task_type", "control_character")]


def test_the_refusal_names_the_format_character_s_code_point_as_at_ingest() -> None:
    # a bidi override in a name passed both (only control characters were refused)
    data = _data(task_type="invoice\u202egpj", error={"message": "m", "type": "rate\u200blimit"})
    with pytest.raises(ValidationError) as refused:
        AdviceIn.model_validate(data)
    said = {
        ".".join(map(str, e["loc"])): e["msg"].rsplit("; ", 1)[1] for e in refused.value.errors()
    }
    assert said == {
        "task_type": "got U+202E (RIGHT-TO-LEFT OVERRIDE)",
        "error.type": "got U+200B (ZERO WIDTH SPACE)",
    }

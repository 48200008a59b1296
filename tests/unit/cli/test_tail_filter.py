"""`finops tail --filter key=value` compares JSON values, not Python's text of them."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from finops.cli.commands.tail import FieldFilter
from finops.cli.main import app

EVENT = {
    "type": "agent.llm_call",
    "data": {
        "model": "gpt-4o",
        "success": True,
        "team": None,
        "latency_ms": 500.0,
        "input_tokens": 12,
        "agent_id": "123",
        "tags": ["a", 1],
    },
}


@pytest.mark.parametrize(
    ("item", "matches"),
    [
        ("data.model=gpt-4o", True),
        ('data.model="gpt-4o"', True),
        ("data.model=gpt-4", False),
        ("data.success=true", True),
        ("data.success=false", False),
        ("data.success=True", False),  # Python's spelling is not JSON's
        ("data.team=null", True),
        ("data.team=None", False),
        ("data.missing=null", True),  # a field the record lacks counts as null
        ("data.latency_ms=500", True),  # numbers compare as numbers
        ("data.latency_ms=500.0", True),
        ("data.latency_ms=5e2", True),
        ("data.latency_ms=501", False),
        ("data.input_tokens=12.0", True),
        ("data.input_tokens=true", False),  # a boolean is not a number
        ("data.agent_id=123", True),  # a text field matches the value as written
        ('data.tags=["a",1.0]', True),
        ("type=agent.llm_call", True),
    ],
)
def test_a_filter_compares_json_values(item, matches):
    assert FieldFilter.parse(item).matches(EVENT) is matches


def test_a_filter_never_matches_a_record_that_is_not_an_object():
    assert FieldFilter.parse("x=1").matches("not json") is False
    assert FieldFilter.parse("x=1").matches([1]) is False


@pytest.mark.parametrize("item", ["no-equals", "=value"])
def test_a_filter_without_a_key_is_one_line_exit_2(item):
    env = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "COLUMNS": None, "NO_COLOR": "1"}
    result = CliRunner().invoke(app, ["tail", "t", "--filter", item], env=env, prog_name="finops")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: --filter takes key=value, got {item!r} (see `finops tail --help`)\n"
    )

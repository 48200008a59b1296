"""`finops price` prints what docs/events.md shows, in words: no Python repr of the usage."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finops.cli.main import app

DOC = Path(__file__).resolve().parents[3] / "docs" / "events.md"
PLAIN = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "COLUMNS": None, "NO_COLOR": "1"}


def price(*args: str):
    return CliRunner().invoke(app, ["price", *args], env=PLAIN, prog_name="finops")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env=PLAIN, prog_name="finops")


def test_the_documented_example_prints_what_the_docs_show():
    (block,) = re.findall(r"```bash\n(finops price .*?)```", DOC.read_text(), re.DOTALL)
    command_line, _, shown = block.replace("\\\n", "").partition("\n")
    args = shlex.split(command_line)[2:]
    result = price(*args)
    assert result.exit_code == 0, result.output
    assert result.stdout == shown
    assert "{" not in result.stdout and "'" not in result.stdout


def test_reasoning_and_one_hour_cache_writes_are_named_when_there_are_any():
    usage = (
        '{"input_tokens": 1000, "cache_write_tokens": 600, "cache_write_1h_tokens": 200,'
        ' "output_tokens": 500, "reasoning_tokens": 120}'
    )
    result = price("--provider", "openai", "--model", "gpt-4o", "--usage", usage)
    assert result.exit_code == 0, result.output
    second = result.stdout.splitlines()[1]
    assert (
        "· 1,000 input tokens (600 cache writes, 200 of them 1-hour) · 500 output tokens "
        "(120 reasoning) · genai-prices-"
    ) in second


def test_a_usage_the_model_refuses_is_its_reason_without_pydantic_words():
    usage = '{"input_tokens": 100, "output_tokens": 20, "cached_input_tokens": 500}'
    result = price("--provider", "openai", "--model", "gpt-4o", "--usage", usage)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "error: --usage: cached_input_tokens + cache_write_tokens must not exceed input_tokens"
        " (input_tokens counts ALL input tokens, including cached ones) (give input_tokens and"
        " output_tokens, or the provider's raw usage object)\n"
    )


def test_a_bad_usage_field_is_named():
    result = price(
        "--provider",
        "openai",
        "--model",
        "gpt-4o",
        "--usage",
        '{"input_tokens": -1, "output_tokens": 2}',
    )
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith(
        "error: --usage: input_tokens: Input should be greater than or equal to 0 ("
    )


def test_one_token_is_one_token():
    usage = '{"input_tokens": 1, "output_tokens": 1}'
    result = price("--provider", "openai", "--model", "gpt-4o", "--usage", usage)
    assert result.exit_code == 0, result.output
    assert "· 1 input token · 1 output token · genai-prices-" in result.stdout.splitlines()[1]


def test_an_unknown_model_is_what_the_command_was_given_exit_2():
    usage = '{"input_tokens": 10, "output_tokens": 1}'
    result = invoke("price", "--provider", "openai", "--model", "nosuch", "--usage", usage)
    # it exited 1, as for a component that does not answer (docs/cli.md: given → 2)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith("error: unpriced: no price for openai/nosuch (")
    # it named no way out
    assert "send cost_usd with them (see what they would have cost with `finops reprice" in (
        " ".join(result.stderr.split())
    )


@pytest.mark.parametrize("option", ["--provider", "--model"])
def test_an_empty_provider_or_model_is_a_bad_option(option):
    names = {"--provider": "openai", "--model": "gpt-4o", option: ""}
    args = [arg for pair in names.items() for arg in pair]
    result = invoke("price", *args, "--usage", '{"input_tokens": 10, "output_tokens": 1}')
    # `--provider ''` reached pricing: `no price for /gpt-4o`
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: invalid value for '{option}': give a name, not an empty string "
        "(see `finops price --help`)\n"
    )


def test_reprice_help_names_every_optional_price_column():
    text = " ".join(invoke("reprice", "--help").stdout.replace("│", " ").split())
    assert "optionally cached_input, cache_write, cache_write_1h;" in text

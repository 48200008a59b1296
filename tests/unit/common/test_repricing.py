"""The replay's arithmetic (finops.common.events.repricing) and the price table's format."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from finops.common.events import (
    Usage,
    error_event,
    llm_call_event,
    parse_event,
    price_call,
)
from finops.common.events.price_table import PriceTableError, TokenPrices, parse_price_table
from finops.common.events.repricing import (
    NO_TEAM,
    PRICE_TABLE,
    Repricing,
    TablePricer,
    TimeWindow,
    genai_prices_pricer,
)

TABLE = """provider,model,input,output,cached_input,cache_write
openai,gpt-4o,2.50,10,1.25,
Anthropic,Claude-Sonnet-4,3,15,0.30,3.75
"""


def cost_event(
    model: str = "gpt-4o",
    *,
    provider: str = "openai",
    team: str | None = "search",
    cost_usd: float | None = 0.01,
    usage: dict[str, int] | None = None,
    time: str = "2026-11-30T12:00:00+00:00",
    event_id: str | None = None,
) -> bytes:
    data = {
        "agent_id": "bot",
        "task_type": "summarize",
        "provider": provider,
        "model": model,
        "usage": usage or {"input_tokens": 2000, "output_tokens": 300},
        "latency_ms": 850,
        "success": True,
        "cost_usd": cost_usd,
    }
    if team is not None:
        data["team"] = team
    return json.dumps(llm_call_event(data, time=time, event_id=event_id)).encode()


def test_a_table_prices_every_kind_of_token_exactly():
    table = parse_price_table(TABLE)
    usage = {
        "input_tokens": 10_000,
        "output_tokens": 2_000,
        "cached_input_tokens": 4_000,
        "cache_write_tokens": 1_000,
        "reasoning_tokens": 500,
    }
    sonnet = table.lookup("anthropic", "claude-sonnet-4")
    gpt = table.lookup("OpenAI", " GPT-4o ")
    assert sonnet is not None and gpt is not None
    u = Usage.model_validate(usage)
    # uncached 5,000 x 3 + cached 4,000 x 0.30 + written 1,000 x 3.75 + output 2,000 x 15
    assert sonnet.cost(u) == Decimal("0.04995")
    # no cache_write price: written tokens at the input price
    assert gpt.cost(u) == (6_000 * Decimal("2.5") + 4_000 * Decimal("1.25") + 20_000) / 10**6


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("provider,model,input\nopenai,gpt-4o,1\n", "the header lacks output"),
        ("provider,model,input,output,discount\n", "unknown columns discount"),
        ("provider,model,input,output\n", "no prices"),
        ("provider,model,input,output\nopenai,gpt-4o,1,x\n", "line 2: output is not a number"),
        ("provider,model,input,output\nopenai,gpt-4o,-1,2\n", "line 2: input must be a price"),
        ("provider,model,input,output\nopenai,gpt-4o,NaN,2\n", "line 2: input must be a price"),
        # a price past a dollar a token: its sums outgrew decimal arithmetic's 28 digits, and
        # rounding them for the table raised InvalidOperation (a traceback) after the replay
        ("provider,model,input,output\nopenai,gpt-4o,1,1e400\n", "line 2: output must be a price"),
        ("provider,model,input,output\nopenai,gpt-4o,1000001,2\n", "from 0 to 1,000,000"),
        ("provider,model,input,output\nopenai,gpt-4o,,2\n", "line 2: input is empty"),
        ("provider,model,input,output\n,gpt-4o,1,2\n", "line 2: provider and model"),
        ("provider,model,input,output\nopenai,gpt-4o,1,2,3\n", "line 2: more cells"),
        (
            "provider,model,input,output\nopenai,gpt-4o,1,2\nOpenAI,GPT-4o,1,2\n",
            "line 3: OpenAI/GPT-4o is priced twice",
        ),
    ],
)
def test_a_bad_table_names_the_line_and_the_fault(text, message):
    with pytest.raises(PriceTableError) as caught:
        parse_price_table(text)
    assert message in str(caught.value)


def test_before_and_after_sum_per_model_and_team_with_the_difference():
    replay = Repricing(TablePricer(parse_price_table(TABLE)))
    replay.add(cost_event(cost_usd=0.01, team="search"))
    replay.add(cost_event(cost_usd=0.02, team="support"))
    replay.add(
        cost_event(
            "claude-sonnet-4",
            provider="anthropic",
            cost_usd=None,
            team=None,
            usage={"input_tokens": 1000, "output_tokens": 100},
        )
    )
    gpt_call = (2000 * Decimal("2.5") + 300 * 10) / 10**6  # 0.008
    sonnet_call = (1000 * 3 + 100 * 15) / Decimal(10**6)  # 0.0045
    gpt = replay.by_model["openai/gpt-4o"]
    assert (gpt.calls, gpt.before_usd, gpt.after_usd) == (2, Decimal("0.03"), 2 * gpt_call)
    assert gpt.difference_usd == 2 * gpt_call - Decimal("0.03")
    sonnet = replay.by_model["anthropic/claude-sonnet-4"]
    assert (sonnet.before_usd, sonnet.after_usd, sonnet.unpriced_before) == (0, sonnet_call, 1)
    assert {team: s.after_usd for team, s in replay.by_team.items()} == {
        "search": gpt_call,
        "support": gpt_call,
        NO_TEAM: sonnet_call,
    }
    assert replay.total.before_usd == Decimal("0.03")
    assert replay.total.after_usd == 2 * gpt_call + sonnet_call
    assert replay.total.price_sources == {PRICE_TABLE}


def test_models_the_table_does_not_list_keep_genai_prices():
    replay = Repricing(TablePricer(parse_price_table(TABLE)))
    replay.add(cost_event("gpt-4o-mini"))
    expected = price_call(
        "openai",
        "gpt-4o-mini",
        {"input_tokens": 2000, "output_tokens": 300},
        datetime(2026, 11, 30, 12, tzinfo=UTC),
    )
    mini = replay.by_model["openai/gpt-4o-mini"]
    assert mini.after_usd == Decimal(repr(expected.total_usd))
    assert mini.price_sources == {expected.price_version}


def test_an_unknown_model_is_counted_unpriced_after_and_adds_nothing():
    replay = Repricing(genai_prices_pricer)
    replay.add(cost_event("no-such-model-xyz", cost_usd=0.5))
    spend = replay.by_model["openai/no-such-model-xyz"]
    assert (spend.calls, spend.before_usd, spend.after_usd, spend.unpriced_after) == (
        1,
        Decimal("0.5"),
        0,
        1,
    )


def test_a_model_the_new_prices_cannot_price_has_no_change_not_minus_100_percent():
    # before, its change read -100 %, as if the model had become free
    replay = Repricing(genai_prices_pricer)
    replay.add(cost_event("no-such-model-xyz", cost_usd=0.5, team="search"))
    replay.add(cost_event("gpt-4o", cost_usd=0.01, team="search"))
    unknown = replay.to_json()["by_model"]["openai/no-such-model-xyz"]  # type: ignore[index]
    assert (unknown["after_usd"], unknown["unpriced_after"]) == (0.0, 1)
    assert (unknown["change"], unknown["change_unknown"]) == (None, "unpriced after")
    # a group some of whose calls are priced after keeps a change (documented)
    team = replay.to_json()["by_team"]["search"]  # type: ignore[index]
    assert team["change_unknown"] is None and team["change"] == pytest.approx(
        float(replay.by_team["search"].difference_usd / Decimal("0.51"))
    )
    gpt = replay.to_json()["by_model"]["openai/gpt-4o"]  # type: ignore[index]
    assert gpt["change"] == pytest.approx(gpt["difference_usd"] / 0.01)
    assert gpt["change_unknown"] is None
    # a call recorded without a cost: no change either, for another reason
    replay.add(cost_event("gpt-4o-mini", cost_usd=None))
    mini = replay.to_json()["by_model"]["openai/gpt-4o-mini"]  # type: ignore[index]
    assert (mini["change"], mini["change_unknown"]) == (None, "no cost before")


def test_the_window_duplicates_and_invalid_records_are_counted_not_repriced():
    window = TimeWindow(
        datetime(2026, 11, 30, 12, tzinfo=UTC), datetime(2026, 11, 30, 13, tzinfo=UTC)
    )
    replay = Repricing(genai_prices_pricer, window)
    twice = str(uuid.uuid4())
    replay.add(cost_event(time="2026-11-30T12:00:00Z", event_id=twice))  # since: included
    replay.add(cost_event(time="2026-11-30T12:00:00Z", event_id=twice))
    replay.add(cost_event(time="2026-11-30T13:00:00Z"))  # until: excluded
    replay.add(cost_event(time="2026-11-30T11:59:59.999Z"))
    replay.add(b"{not json")
    replay.add(json.dumps({"type": "agent.llm_call"}).encode())
    assert (replay.records, replay.repriced, replay.outside, replay.duplicates, replay.invalid) == (
        6,
        1,
        2,
        1,
        2,
    )
    out = replay.to_json()
    assert (out["since"], out["until"]) == (
        "2026-11-30T12:00:00+00:00",
        "2026-11-30T13:00:00+00:00",
    )


def test_a_call_the_consumers_dead_lettered_for_a_nul_is_invalid_not_repriced():
    """The schema takes a NUL in a string; the consumers' decoding (``from_kafka``) refuses
    it and parks the record, so its cost was never counted: the replay must not count it."""
    nul = json.loads(cost_event())
    nul["data"]["task_type"] = "summa\u0000rize"
    error = error_event(  # a valid event, but not a call
        {
            "agent_id": "bot",
            "task_type": "summarize",
            "provider": "openai",
            "model": "gpt-4o",
            "error": {"message": "slow down", "status_code": 429},
        }
    )
    assert parse_event(json.dumps(nul)) and parse_event(json.dumps(error))  # the schema takes both
    replay = Repricing(genai_prices_pricer)
    for record in (json.dumps(nul).encode(), json.dumps(error).encode(), cost_event()):
        replay.add(record)
    assert (replay.records, replay.repriced, replay.invalid) == (3, 1, 2)
    assert replay.total.calls == 1


def test_a_window_must_run_forwards():
    when = datetime(2026, 11, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="since must be before until"):
        TimeWindow(when, when)


def test_token_prices_without_cache_prices_charge_cached_tokens_as_input():
    prices = TokenPrices(input=Decimal(1), output=Decimal(2))
    usage = Usage(input_tokens=1_000_000, output_tokens=0, cached_input_tokens=500_000)
    assert prices.cost(usage) == Decimal(1)


def test_cache_writes_kept_an_hour_have_their_own_price():
    text = "provider,model,input,output,cached_input,cache_write,cache_write_1h\n"
    text += "anthropic,claude-sonnet-4,3,15,0.30,3.75,6\nanthropic,claude-haiku-4,1,5,,2,\n"
    table = parse_price_table(text)
    sonnet, haiku = (
        table.lookup("anthropic", "claude-sonnet-4"),
        table.lookup("anthropic", "claude-haiku-4"),
    )
    assert sonnet is not None and haiku is not None
    usage = Usage(
        input_tokens=1_000_000,
        output_tokens=0,
        cache_write_tokens=1_000_000,
        cache_write_1h_tokens=400_000,
    )
    # 600,000 written for 5 minutes x 3.75 + 400,000 for an hour x 6 (nothing uncached)
    assert sonnet.cost(usage) == Decimal("2.25") + Decimal("2.4")
    # a blank cache_write_1h: the hour's writes at cache_write
    assert haiku.cost(usage) == Decimal(2)


def test_the_price_table_of_the_cli_page_reads_as_documented():
    page = (Path(__file__).resolve().parents[3] / "docs" / "cli.md").read_text()
    (example,) = re.findall(r"```csv\n(.*?)```", page, re.DOTALL)
    table = parse_price_table(example)
    assert table.lookup("openai", "gpt-4o") == TokenPrices(
        Decimal("2.50"), Decimal("10.00"), cached_input=Decimal("1.25")
    )
    assert table.lookup("anthropic", "claude-sonnet-4") == TokenPrices(
        Decimal("3.00"), Decimal("15.00"), Decimal("0.30"), Decimal("3.75")
    )

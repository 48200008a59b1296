"""`finops reprice` replays agent.cost.v1 from the real broker and prices it again."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from support import finops_piped as finops
from support import llm_call, publish

from finops.common.settings import CommonSettings
from finops.common.topics import AGENT_COST

pytestmark = pytest.mark.integration

PRICES = """provider,model,input,output,cached_input
openai,gpt-4o,2.50,10.00,1.25
anthropic,claude-sonnet-4,3,15,
"""


def at(when: datetime, **data: object) -> dict[str, object]:
    event = llm_call(**data)
    event["time"] = when.isoformat()
    return event


async def test_a_replay_with_a_price_table_sums_each_model_and_team_exactly(infra, tmp_path):
    # An hour of 2019 no other test writes in: the window selects exactly these events.
    since = datetime(2019, 1, 1, tzinfo=UTC) + timedelta(hours=random.randrange(8000))
    until = since + timedelta(hours=1)
    gpt_usage = {"input_tokens": 4000, "output_tokens": 500, "cached_input_tokens": 1000}
    inside = [
        at(since, model="gpt-4o", team="search", usage=gpt_usage, cost_usd=0.0151),
        at(
            since + timedelta(minutes=5),
            model="gpt-4o",
            team="support",
            usage=gpt_usage,
            cost_usd=0.02,
        ),
        at(
            since + timedelta(minutes=30),
            provider="anthropic",
            model="claude-sonnet-4",
            team="search",
            usage={"input_tokens": 1000, "output_tokens": 200},
            cost_usd=0.0066,
        ),
    ]
    outside = [
        at(until, model="gpt-4o", team="search", cost_usd=1.0),  # until is excluded
        at(since - timedelta(seconds=1), model="gpt-4o", team="search", cost_usd=1.0),
    ]
    settings = CommonSettings(
        kafka_bootstrap=infra.kafka_bootstrap, kafka_enable_idempotence=not infra.local_broker
    )
    # the first event delivered twice
    await publish(settings, AGENT_COST.name, [*inside, *outside, inside[0]])
    prices = tmp_path / "prices.csv"
    prices.write_text(PRICES)

    result = finops(
        "reprice",
        "--since",
        since.isoformat(),
        "--until",
        until.isoformat(),
        "--prices",
        str(prices),
        "--json",
        env=infra.env(),
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)

    # gpt-4o: 3,000 uncached x 2.50 + 1,000 cached x 1.25 + 500 output x 10 per million
    gpt_call = (3000 * Decimal("2.5") + 1000 * Decimal("1.25") + 500 * 10) / 10**6
    sonnet_call = (1000 * 3 + 200 * 15) / Decimal(10**6)
    assert (out["repriced"], out["duplicates"]) == (3, 1)
    assert out["outside_window"] >= 2  # and every other test's events
    gpt, sonnet = out["by_model"]["openai/gpt-4o"], out["by_model"]["anthropic/claude-sonnet-4"]
    assert (gpt["calls"], gpt["before_usd"], gpt["after_usd"]) == (
        2,
        float(Decimal("0.0151") + Decimal("0.02")),
        float(2 * gpt_call),
    )
    assert gpt["difference_usd"] == float(2 * gpt_call - Decimal("0.0351"))
    assert (sonnet["before_usd"], sonnet["after_usd"]) == (0.0066, float(sonnet_call))
    assert out["by_team"]["search"]["after_usd"] == float(gpt_call + sonnet_call)
    assert out["by_team"]["support"]["after_usd"] == float(gpt_call)
    assert out["total"]["before_usd"] == float(
        Decimal("0.0151") + Decimal("0.02") + Decimal("0.0066")
    )
    assert out["total"]["after_usd"] == float(2 * gpt_call + sonnet_call)
    assert out["total"]["price_sources"] == ["price table"]
    assert out["prices"].startswith(f"{prices} (2 models; others: genai-prices-")

    table = finops(
        "reprice", "--since", since.isoformat(), "--until", until.isoformat(), env=infra.env()
    )
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert "3 repriced" in lines[0] and " 1 duplicates · " in lines[0]
    gpt_row = next(line for line in lines if "openai/gpt-4o" in line)
    assert [c.strip() for c in gpt_row.split("│") if c.strip()][:3] == [
        "openai/gpt-4o",
        "2",
        "$0.035100",
    ]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ("--since", "yesterday"),
            "error: --since 'yesterday' is not a time: give an ISO 8601 time, e.g. 2026-12-01 "
            "or 2026-12-01T09:30:00Z (no offset: UTC)\n",
        ),
        (
            ("--since", "2026-12-02", "--until", "2026-12-01"),
            "error: --since 2026-12-02 is not before --until 2026-12-01\n",
        ),
        (("--prices", "/no/such/prices.csv"), "error: --prices /no/such/prices.csv: "),
    ],
)
def test_a_bad_time_or_file_is_one_line_and_exit_2(args, error):
    result = finops("reprice", *args, env={"FINOPS_KAFKA_BOOTSTRAP": "127.0.0.1:9"})
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(error)
    assert result.stderr.count("\n") == 1


def test_a_bad_price_table_names_its_line(tmp_path: Path):
    prices = tmp_path / "prices.csv"
    prices.write_text("provider,model,input,output\nopenai,gpt-4o,2.5,ten\n")
    result = finops("reprice", "--prices", str(prices), env={})
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"error: --prices {prices}: line 2: output is not a number: 'ten'\n"

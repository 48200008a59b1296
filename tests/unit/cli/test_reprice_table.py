"""`finops reprice`'s table adds up as printed: difference = after - before, digit for digit."""

from __future__ import annotations

import io
from decimal import Decimal

from rich.console import Console

from finops.cli.commands.reprice import _table
from finops.common.events.repricing import Spend


def rows(spends: dict[str, Spend], total: Spend) -> dict[str, list[str]]:
    out = io.StringIO()
    Console(file=out, width=300, no_color=True).print(_table("t", "model", spends, total))
    cells = ([c.strip() for c in line.split("│")[1:-1]] for line in out.getvalue().splitlines())
    return {row[0]: row[1:5] for row in cells if len(row) > 4 and row[0]}


def spend(before: str, after: str) -> Spend:
    return Spend(calls=1, before_usd=Decimal(before), after_usd=Decimal(after))


def test_the_difference_shown_is_the_after_shown_minus_the_before_shown():
    # full precision: 21.8610446 - 10.9305224 = 10.9305222, shown 10.930522, while the
    # columns show $21.861045 - $10.930522 = $10.930523
    halved = spend("10.9305224", "21.8610446")
    # 19.6299154 -> 19.629915 and 30.2015916 -> 30.201592: shown difference 10.571677
    # (full precision 10.5716762 -> 10.571676)
    other = spend("19.6299154", "30.2015916")
    assert rows({"halved": halved, "other": other}, other) == {
        "halved": ["1", "$10.930522", "$21.861045", "$10.930523"],
        "other": ["1", "$19.629915", "$30.201592", "$10.571677"],
        "total": ["1", "$19.629915", "$30.201592", "$10.571677"],
    }


def test_a_negative_difference_adds_up_too():
    assert rows({}, spend("21.8610446", "10.9305224"))["total"] == [
        "1",
        "$21.861045",
        "$10.930522",
        "-$10.930523",
    ]


def test_half_a_micro_dollar_rounds_up_in_every_column():
    assert rows({}, spend("0.0000005", "0.0000015"))["total"] == [
        "1",
        "$0.000001",
        "$0.000002",
        "$0.000001",
    ]


def test_a_model_name_from_an_agent_is_shown_as_text_not_as_markup_or_escapes():
    # names come from agents' events: "[red]" was read as markup, ESC reached the terminal
    # and a line break split the row
    names = {"openai/[red]gpt[/red]": "1", "openai/gpt\x1b[31m": "2", "openai/a\nb": "3"}
    out = io.StringIO()
    spends = {name: spend(value, value) for name, value in names.items()}
    Console(file=out, width=300, force_terminal=False).print(
        _table("t", "model", spends, spend("6", "6"))
    )
    text = out.getvalue()
    assert "\x1b" not in text
    assert "openai/[red]gpt[/red]" in text
    assert 'openai/gpt\\u001b[31m"' in text
    assert '"openai/a\\nb"' in text


def test_a_model_the_new_prices_cannot_price_reads_unpriced_not_minus_100_percent():
    unpriced = Spend(calls=2, before_usd=Decimal("0.5"), unpriced_after=2)
    cheaper = spend("1", "0.75")
    out = io.StringIO()
    total = Spend(calls=3, before_usd=Decimal("1.5"), after_usd=Decimal("0.75"), unpriced_after=2)
    Console(file=out, width=300, no_color=True).print(
        _table(
            "t", "model", {"unknown": unpriced, "cheaper": cheaper, "none": Spend(calls=1)}, total
        )
    )
    change = {
        cells[0]: cells[5]
        for cells in (
            [c.strip() for c in line.split("│")[1:-1]] for line in out.getvalue().splitlines()
        )
        if len(cells) > 5 and cells[0]
    }
    assert change == {
        "unknown": "unpriced",
        "cheaper": "-25.0%",
        "none": "-",
        "total": "-50.0%",
    }

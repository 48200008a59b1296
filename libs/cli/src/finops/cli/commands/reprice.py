"""`finops reprice`: spend recomputed from the cost events' usage with today's or given prices."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from finops.cli.failures import CliError
from finops.cli.output import console, data_cell
from finops.cli.output import err_console as err
from finops.cli.typer_app import IdleTimeoutOption, JsonOption

if TYPE_CHECKING:
    from finops.common.events.repricing import Pricer, Repricing, Spend

TIME_HELP = "give an ISO 8601 time, e.g. 2026-12-01 or 2026-12-01T09:30:00Z (no offset: UTC)"
#: on a pipe (no progress bar), one progress line on stderr every this many records
PROGRESS_LINES_EVERY = 100_000


def parse_time(option: str, text: str | None) -> datetime | None:
    """``--since`` / ``--until`` as an aware datetime, or one line saying what is wrong."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(f"{option} {text!r} is not a time: {TIME_HELP}", 2) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def load_pricer(prices: Path | None) -> tuple[Pricer, str]:
    """The pricer and how the output names it."""
    from finops.common.events import price_data_version
    from finops.common.events.price_table import PriceTableError, parse_price_table
    from finops.common.events.repricing import TablePricer, genai_prices_pricer

    if prices is None:
        return genai_prices_pricer, price_data_version()
    try:
        text = prices.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CliError(f"--prices {prices}: not a UTF-8 text file", 2) from None
    except OSError as exc:
        raise CliError(f"--prices {prices}: {exc.strerror or exc}", 2) from None
    try:
        table = parse_price_table(text)
    except PriceTableError as exc:
        raise CliError(f"--prices {prices}: {exc}", 2) from None
    listed = len(table.prices)
    names = f"{prices} ({listed} model{'' if listed == 1 else 's'}; others: {price_data_version()})"
    return TablePricer(table), names


def reprice(
    since: Annotated[
        str | None, typer.Option(help="First event time to include (ISO 8601; default: all).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Event time to stop before (ISO 8601; default: none).")
    ] = None,
    prices: Annotated[
        Path | None,
        typer.Option(
            help="Price table CSV in USD per million tokens, columns provider, model, input, "
            "output and optionally cached_input, cache_write, cache_write_1h; models it does not "
            "list keep "
            "genai-prices. Default: genai-prices alone.",
            dir_okay=False,
        ),
    ] = None,
    json_out: JsonOption = False,
    idle_timeout: IdleTimeoutOption = 2.0,
) -> None:
    """Recompute spend from agent.cost.v1: every event's usage priced again.

    Prints spend per model and per team as recorded at ingestion (before) and at the new
    prices (after), with the difference. Events count by their own time; an event id seen
    twice counts once.
    """
    from finops.common.events.repricing import Repricing, TimeWindow

    try:
        window = TimeWindow(parse_time("--since", since), parse_time("--until", until))
    except ValueError as exc:
        raise CliError(f"--since {since} is not before --until {until}", 2) from exc
    pricer, price_names = load_pricer(prices)
    repricing = Repricing(pricer, window)
    asyncio.run(_replay(repricing, idle_timeout))
    if json_out:
        print(json.dumps({"prices": price_names, **repricing.to_json()}))
        return
    _print_report(repricing, price_names)


async def _replay(repricing: Repricing, idle_s: float) -> None:
    from finops.common.kafka import read_topic
    from finops.common.settings import CommonSettings
    from finops.common.topics import AGENT_COST

    settings = CommonSettings(service_name="cli")
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(f"replaying {AGENT_COST.name}")
        async for record in read_topic(settings, AGENT_COST.name, idle_s=idle_s):
            repricing.add(record.value or b"")
            if repricing.records % 1000 == 0:
                bar.update(task, description=f"replaying {AGENT_COST.name}: {_read(repricing)}")
            if not err.is_terminal and repricing.records % PROGRESS_LINES_EVERY == 0:
                print(f"{AGENT_COST.name}: {_read(repricing)}", file=sys.stderr, flush=True)


def _read(repricing: Repricing) -> str:
    return f"{repricing.records:,} records read, {repricing.repriced:,} repriced"


#: the table's figures are rounded to the micro-dollar, half up; JSON keeps every digit
SHOWN = Decimal("0.000001")


def _shown(value: Decimal) -> Decimal:
    return value.quantize(SHOWN, rounding=ROUND_HALF_UP)


def _usd(value: Decimal) -> str:
    value = _shown(value)
    return f"{'-' if value < 0 else ''}${abs(value):,.6f}"


def _change(spend: Spend) -> str:
    """The change in percent; ``unpriced`` when the new prices price none of the calls (a
    percentage would read -100 %: a free model), ``-`` when they had no cost before."""
    if spend.change is None:
        return "unpriced" if spend.change_unknown == "unpriced after" else "-"
    return f"{spend.change:+.1%}"


def _table(title: str, column: str, spends: dict[str, Spend], total: Spend) -> Table:
    table = Table(title=title)
    table.add_column(column, no_wrap=True)
    for name in ("calls", "before", "after", "difference", "change", "unpriced before/after"):
        table.add_column(name, justify="right")
    table.add_column("priced by")
    for name, spend in [*sorted(spends.items()), ("total", total)]:
        if name == "total":
            table.add_section()
        table.add_row(
            name if name == "total" else data_cell(name),  # an agent's model or team
            f"{spend.calls:,}",
            _usd(spend.before_usd),
            _usd(spend.after_usd),
            _usd(_shown(spend.after_usd) - _shown(spend.before_usd)),  # adds up as shown
            _change(spend),
            f"{spend.unpriced_before:,}/{spend.unpriced_after:,}",
            ", ".join(sorted(spend.price_sources)),
        )
    return table


def _print_report(repricing: Repricing, price_names: str) -> None:
    window = repricing.window
    counts = [_read(repricing)]
    if window.since or window.until:
        bounds = f"{window.since or 'the start'} to {window.until or 'the end'}"
        counts.append(f"{repricing.outside:,} outside {bounds}")
    counts += [f"{repricing.duplicates:,} duplicates", f"{repricing.invalid:,} invalid"]
    console.print(" · ".join(counts), markup=False)
    console.print(f"new prices: {price_names}", markup=False)
    console.print(_table("spend per model", "provider/model", repricing.by_model, repricing.total))
    console.print(_table("spend per team", "team", repricing.by_team, repricing.total))


def register(app: typer.Typer) -> None:
    app.command()(reprice)

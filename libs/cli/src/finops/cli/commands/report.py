"""``finops report``: the HTML report of the last simulation, with the platform's figures now.

The charts need the simulation's timeline (simulated time, the baseline's spend: nothing a
service holds), so they come from the timeline the last ``finops simulate`` or ``finops demo``
left in the stack's folder (``<FINOPS_DATA_DIR>/simulation/last-run.json``); the "platform now"
table is read from the running services' APIs.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import httpx
import typer

from finops.cli.failures import CliError
from finops.cli.out_paths import check_file_to_write, check_folder_to_make
from finops.cli.output import console
from finops.cli.report.model import Figure

if TYPE_CHECKING:
    from finops.cli.simulation_driver.platform import Endpoints


def report(
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write the report here (default: REPORTS/finops-report-TIME.html).",
            dir_okay=False,
        ),
    ] = None,
    reports: Annotated[
        Path, typer.Option(help="Folder of the report when --out is not given.", file_okay=False)
    ] = Path("reports"),
) -> None:
    """Write the HTML report of the last simulation on this stack, with the platform's
    figures read now from the running services (spend, healing, breakers, experiments).

    Run `finops simulate` (or `make demo`) first: the charts come from the timeline it left
    in the stack's folder. Prints where the report is.
    """
    from finops.cli.commands.simulate import unreachable
    from finops.cli.report import page, store
    from finops.cli.report.model import from_simulation
    from finops.cli.simulation_driver.platform import Endpoints
    from finops.cli.stack.settings import StackSettings

    if out is not None:
        check_file_to_write("--out", out)
    else:
        check_folder_to_make("--reports", reports)
    data_dir = StackSettings().data_dir.resolve()
    try:
        last = store.load(data_dir)
    except store.UnreadableRun as exc:
        raise CliError(
            f"the last simulation kept in {exc.path} cannot be read ({exc.reason}): run "
            "`finops simulate` again"
        ) from exc
    if last is None:
        raise CliError(
            f"no simulation has run on the stack in {data_dir}: run `finops simulate` first "
            "(or `make demo`, which writes its report itself)"
        )
    endpoints = Endpoints.from_environment()
    try:
        platform = asyncio.run(_platform_figures(endpoints))
    except httpx.TransportError as exc:
        raise CliError(unreachable(endpoints, exc)) from exc
    except httpx.HTTPStatusError as exc:
        raise CliError(
            f"{exc.request.url} answered {exc.response.status_code}: {exc.response.text[:300]}"
        ) from exc
    source = f"finops report: the last simulation kept in {data_dir}; the platform read now"
    document = from_simulation(last.result, last.timeline, datetime.now(UTC), source)
    document.platform = platform
    try:
        written = page.write(document, reports, out)
    except OSError as exc:
        raise CliError(f"cannot write the report: {exc}", 2) from exc
    console.print(f"report: {written.resolve()}", soft_wrap=True)


async def _platform_figures(endpoints: Endpoints) -> list[Figure]:
    from finops.cli.accounts import operator_token
    from finops.cli.report.platform import read_platform

    token = await operator_token(endpoints)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        state = await read_platform(http, endpoints.urls)
    return state.figures()


def register(app: typer.Typer) -> None:
    app.command()(report)

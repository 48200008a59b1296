"""``finops demo``'s fleet: the whole-fleet simulation on the stack it started, its summary
table and its HTML report under ``reports/``."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from finops.cli.failures import CliError, fill_in
from finops.cli.output import console
from finops.cli.stack.local_stack import Stack

#: a simulation of one to three minutes on a laptop
DEMO_CALLS = 10000
DEMO_AGENTS = 4
#: The demo plays two simulated hours in about a minute, so the stack it starts runs the
#: healer's breakers on a matching clock: the default 30 s cool-down would keep a breaker
#: that opened in the rate-limit storm open for a third of the run. A variable the user set
#: wins. (`finops simulate` on a stack of one's own uses that stack's settings.)
DEMO_SERVICE_SETTINGS = {"FINOPS_BREAKER_COOLDOWN_S": "3", "FINOPS_BREAKER_MAX_COOLDOWN_S": "12"}


def use_demo_service_settings() -> None:
    """Give the services the stack is about to start the demo's settings (see above)."""
    for key, value in DEMO_SERVICE_SETTINGS.items():
        os.environ.setdefault(key, value)


def run_demo(stack: Stack, *, calls: int, agents: int, seed: int, reports: Path) -> Path:
    """Simulate the fleet on ``stack``, print the summary, write the report; its path."""
    from finops.cli.commands.simulate import keep_last_run, print_summary, run_with_progress
    from finops.cli.report import page
    from finops.cli.report.model import from_simulation
    from finops.cli.simulation_driver.platform import Endpoints

    # the operator and agent accounts are made on this stack, on the ports it was started with
    fill_in(stack.settings.client_addresses())
    console.print(
        f"• simulating {calls:,} tasks of {agents} agents (an operator and {agents} agent "
        "accounts with API keys; faults: a rate-limit storm, an outage, a quality drift, …)"
    )
    report = run_with_progress(Endpoints.from_environment(), agents=agents, calls=calls, seed=seed)
    result = report.as_json()
    print_summary(result)
    keep_last_run(report)
    source = f"finops demo: {calls:,} tasks, {agents} agents, seed {seed}, local stack"
    document = from_simulation(result, report.timeline, datetime.now(UTC), source)
    try:
        written = page.write(document, reports)
    except OSError as exc:
        raise CliError(f"cannot write the report under {reports}: {exc}", 2) from exc
    console.print(f"[bold]report:[/] {written.resolve()}", soft_wrap=True)
    return written

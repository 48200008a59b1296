"""`finops evaluate-policy`: what other routing policies would have earned, estimated from
the optimizer's decision log."""

from __future__ import annotations

import asyncio
import json
import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from finops.cli.failures import CliError
from finops.cli.output import console
from finops.cli.output import err_console as err
from finops.cli.typer_app import IdleTimeoutOption, JsonOption

if TYPE_CHECKING:
    from finops.optimizer.domain.offpolicy import Estimate, JoinStats, LoggedDecision, TargetPolicy

#: how often (in records of a topic) evaluate-policy's reading reports its progress
PROGRESS_EVERY = 1000
#: on a pipe (no spinner), one progress line on stderr every this many records
PROGRESS_LINES_EVERY = 100_000


def evaluate_policy(
    policies: Annotated[
        list[str] | None,
        typer.Option(
            "--policy",
            help="Policy to evaluate (repeatable): cheapest, best-quality, cheapest-within-95, "
            "cheapest-within-90 or fixed:<arm>; default: the four named ones. The arm of "
            "fixed:<arm> is written as logged, model|provider|config "
            "(e.g. 'fixed:gpt-4o|openai|default'; a model or model|provider that names one "
            "logged arm will do). An arm no decision took or offered is refused.",
        ),
    ] = None,
    json_out: JsonOption = False,
    idle_timeout: IdleTimeoutOption = 2.0,
) -> None:
    """Estimate what other routing policies would have earned, from the decision log.

    Joins finops.recommendations.v1 (each decision with its propensity and the policy's
    per-arm estimates) with the cost events that carry its recommendation_id, and prints IPS,
    self-normalised IPS and doubly robust estimates of quality and cost per call.
    """
    from finops.optimizer.domain.offpolicy import TARGET_POLICIES, evaluate, join, target_policy

    # every named policy, so the default is the list --help and the README give
    names = policies or list(TARGET_POLICIES)
    try:
        chosen = [(n, target_policy(n)) for n in names]
    except ValueError as exc:
        raise CliError(str(exc), 2) from exc
    recommendations, outcomes = asyncio.run(_read_log_showing_progress(idle_timeout))
    samples, stats = join(recommendations, outcomes)
    counts = _join_counts(stats)
    if not samples:
        if not json_out:
            console.print(counts)
        raise CliError(
            "nothing to evaluate yet: no outcome carries a logged recommendation_id"
            + (f" ({counts})" if json_out else "")
        )
    chosen, notes = _resolve_fixed(chosen, samples)
    estimates = [evaluate(samples, fn, name) for name, fn in chosen]
    if json_out:
        for note in notes:
            err.print(note, markup=False)
        document = {"join": vars(stats), "estimates": [e.to_dict() for e in estimates]}
        print(json.dumps(document, allow_nan=False))
        return
    console.print(counts)
    for note in notes:
        console.print(note, markup=False)
    console.print(_estimates_table(estimates))


def _join_counts(stats: JoinStats) -> str:
    """One line of how the decision log and the outcomes joined."""
    return (
        f"{stats.recommendations:,} recommendations logged · {stats.outcomes:,} outcomes "
        f"reported · {stats.joined:,} joined · {stats.not_followed:,} not followed · "
        f"{stats.unmatched:,} unmatched"
    )


def _estimates_table(estimates: list[Estimate]) -> Table:
    """The table of estimates: the logged policy as run, then each policy evaluated."""
    table = Table(title="off-policy estimates (per call)")
    table.add_column("policy", justify="right", no_wrap=True)
    for col in ("matched", "ESS", "quality IPS", "SNIPS", "DR", "cost DR"):
        table.add_column(col, justify="right")
    first = estimates[0]
    table.add_row(
        "logged (as run)",
        str(first.samples),
        "-",
        f"{first.logged_quality:.4f}",
        "-",
        "-",
        f"${first.logged_cost_usd:.6f}",
    )
    for e in estimates:
        table.add_row(
            e.policy,
            str(e.matched),
            f"{e.effective_sample_size:.0f}",
            _figure(e.ips_quality, "{:.4f}"),
            _figure(e.snips_quality, "{:.4f}"),
            _figure(e.dr_quality, "{:.4f}"),
            _figure(e.dr_cost_usd, "${:.6f}"),
        )
    return table


def _figure(value: float, form: str) -> str:
    """A figure as the table shows it: ``-`` where it is undefined (no decision matched)."""
    return form.format(value) if math.isfinite(value) else "-"


def _resolve_fixed(
    chosen: list[tuple[str, TargetPolicy]], samples: list[LoggedDecision]
) -> tuple[list[tuple[str, TargetPolicy]], list[str]]:
    """Each ``fixed:<arm>`` policy with its arm resolved to a logged ``model|provider|config``
    key (one line, exit 2, naming the known arms, when none or several match), and a note for
    each resolution made and each fixed arm some decisions did not offer."""
    from finops.optimizer.domain.offpolicy import FIXED, logged_arms, resolve_arm, target_policy

    if not samples or not any(name.startswith(FIXED) for name, _ in chosen):
        return chosen, []
    arms = logged_arms(samples)
    resolved, notes = [], []
    for name, policy in chosen:
        if name.startswith(FIXED):
            wanted = name.removeprefix(FIXED)
            try:
                key = resolve_arm(wanted, arms)
            except ValueError as exc:
                raise CliError(str(exc), 2) from exc
            if key != wanted:
                notes.append(f"{name} is the logged arm {key}")
            name, policy = FIXED + key, target_policy(FIXED + key)
            absent = sum(1 for s in samples if s.estimates and key not in s.estimates)
            if absent:
                notes.append(
                    f"{name}: not offered in {absent:,} of {len(samples):,} decisions; there it "
                    "counts as the cheapest arm offered"
                )
        resolved.append((name, policy))
    return resolved, notes


async def _read_log(
    idle_s: float, progress: Callable[[dict[str, int]], None] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The decision log and the cost events that report an outcome of it, both topics read
    at once (each to its end, then ``idle_s`` quiet); ``progress`` is told the records read
    per topic every :data:`PROGRESS_EVERY` records and at the end of each topic."""
    from finops.common.kafka import read_topic
    from finops.common.settings import CommonSettings
    from finops.common.topics import AGENT_COST, RECOMMENDATIONS

    settings = CommonSettings(service_name="cli")
    read = {RECOMMENDATIONS.name: 0, AGENT_COST.name: 0}

    async def records(topic: str, marker: bytes) -> list[dict[str, Any]]:
        kept, unreadable = [], 0
        async for r in read_topic(settings, topic, idle_s=idle_s):
            read[topic] += 1
            if marker in (r.value or b""):
                record = _json_object(r.value or b"")
                if record is None:
                    unreadable += 1
                else:
                    kept.append(record)
            if progress is not None and read[topic] % PROGRESS_EVERY == 0:
                progress(dict(read))
        if progress is not None:
            progress(dict(read))
        if unreadable:
            # someone else's records on the topic: evaluated without them, and said so
            print(f"{topic}: {unreadable:,} records left out: not JSON objects", file=sys.stderr)
        return kept

    recs, outcomes = await asyncio.gather(
        records(RECOMMENDATIONS.name, b""), records(AGENT_COST.name, b'"recommendation_id"')
    )
    return recs, outcomes


def _json_object(value: bytes) -> dict[str, Any] | None:
    """The JSON object ``value`` holds, else None.

    >>> _json_object(b'{"a": 1}'), _json_object(b"not json"), _json_object(b"[1]")
    ({'a': 1}, None, None)
    """
    try:
        record = json.loads(value)
    except ValueError:  # UnicodeDecodeError too
        return None
    return record if isinstance(record, dict) else None


async def _read_log_showing_progress(
    idle_s: float,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """:func:`_read_log` with a spinner on a terminal, and a line on stderr every
    :data:`PROGRESS_LINES_EVERY` records when stderr is piped."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    lines = {"printed": 0}
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("reading the decision log")

        def progress(read: dict[str, int]) -> None:
            said = " · ".join(f"{topic}: {n:,} records read" for topic, n in read.items())
            bar.update(task, description=f"reading {said}")
            total = sum(read.values())
            if not err.is_terminal and total // PROGRESS_LINES_EVERY > lines["printed"]:
                lines["printed"] = total // PROGRESS_LINES_EVERY
                print(said, file=sys.stderr, flush=True)

        return await _read_log(idle_s, progress)


def register(app: typer.Typer) -> None:
    app.command("evaluate-policy")(evaluate_policy)

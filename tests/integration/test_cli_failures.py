"""The `finops` command as a new user meets it: one line per failure, plain help, whole lines.

No stack runs here: every address points at a free port of this machine, where nothing
listens, so the commands fail exactly as they do before `finops up`.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from finops.cli.failures import explain
from finops.cli.main import app
from finops.cli.stack.ports import free_port

pytestmark = pytest.mark.integration

BIG_MODEL = "a-large-model-with-a-rather-long-name-2025-01-01"
OUTCOME_COLUMNS = (
    "prompt_id, task_type, model, quality, cost_usd[, input_tokens, output_tokens, prompt]"
)
# Deterministic rich output whatever the terminal running the suite: not a terminal, no width.
PLAIN = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "COLUMNS": None, "NO_COLOR": "1"}


@pytest.fixture
def outcomes(tmp_path: Path) -> Path:
    """200 prompts over 4 task types, a strong expensive model and a weaker cheap one."""
    rng = random.Random(0)
    lines = ["prompt_id,task_type,model,quality,cost_usd,input_tokens,output_tokens,prompt"]
    for i in range(200):
        task = f"task-{i % 4}"
        for model, skill, cost in ((BIG_MODEL, 0.9, 0.01), ("small", 0.6 + 0.1 * (i % 4), 0.001)):
            quality = int(rng.random() < skill)
            lines.append(f"p{i},{task},{model},{quality},{cost},100,20,question {i}")
    path = tmp_path / "outcomes.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def nothing_runs() -> dict[str, int]:
    return {name: free_port() for name in ("postgres", "redis", "kafka")}


def invoke(*args: str, env: dict[str, str | None] | None = None, stdin: str | None = None):
    return CliRunner().invoke(app, list(args), env={**PLAIN, **(env or {})}, input=stdin)


def finops(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finops.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def urls(ports: dict[str, int]) -> dict[str, str | None]:
    return {
        "FINOPS_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{ports['postgres']}/finops",
        "FINOPS_REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "FINOPS_KAFKA_BOOTSTRAP": f"127.0.0.1:{ports['kafka']}",
    }


@pytest.mark.parametrize(
    ("args", "component", "variable"),
    [
        (
            ("users", "create", "--username", "alice", "--email", "a@example.com"),
            "PostgreSQL",
            "FINOPS_DATABASE_URL",
        ),
        (("db", "upgrade"), "PostgreSQL", "FINOPS_DATABASE_URL"),
        # '-1' is the revision, not an unknown option
        (("db", "downgrade", "-1"), "PostgreSQL", "FINOPS_DATABASE_URL"),
        (("topics",), "the Kafka broker", "FINOPS_KAFKA_BOOTSTRAP"),
        (("tail", "agent.cost.v1"), "the Kafka broker", "FINOPS_KAFKA_BOOTSTRAP"),
        (("evaluate-policy",), "the Kafka broker", "FINOPS_KAFKA_BOOTSTRAP"),
    ],
    ids=["users-create", "db-upgrade", "db-downgrade", "topics", "tail", "evaluate-policy"],
)
def test_a_command_without_its_dependency_prints_one_line(nothing_runs, args, component, variable):
    port = nothing_runs["postgres" if component == "PostgreSQL" else "kafka"]
    stdin = "a long enough password\n" if args[0] == "users" else None
    extra = ("--password-stdin",) if args[0] == "users" else ()
    result = invoke(*args, *extra, env=urls(nothing_runs), stdin=stdin)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"error: cannot reach {component} at 127.0.0.1:{port} — check that it runs and that "
        f"{variable} is right\n"
    )


def test_db_wait_on_a_database_that_never_answers_says_it_could_not_reach_it(nothing_runs):
    port = nothing_runs["postgres"]
    result = invoke("db", "wait", "--timeout", "0.5", env=urls(nothing_runs))
    assert (result.exit_code, result.stdout) == (1, "")
    # the lines before it are the wait's log of each attempt
    assert result.stderr.splitlines()[-1] == (
        f"error: cannot reach PostgreSQL at 127.0.0.1:{port} in 0.5 s — check that it runs and"
        " that FINOPS_DATABASE_URL is right"
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("notaurl", "no postgresql:// scheme"),
        ("mysql://finops@127.0.0.1:5432/finops", "no postgresql:// scheme"),
        ("postgresql://finops@127.0.0.1:port/finops", "the port is not a number from 0 to 65535"),
    ],
    ids=["not-a-url", "not-postgresql", "bad-port"],
)
@pytest.mark.parametrize(
    "args",
    [
        ("db", "upgrade"),
        ("db", "downgrade", "-1"),
        ("db", "wait", "--timeout", "1"),
        ("users", "deactivate", "agent7"),
        ("users", "create", "--username", "alice", "--email", "a@example.com", "--password-stdin"),
    ],
    ids=["db-upgrade", "db-downgrade", "db-wait", "users-deactivate", "users-create"],
)
def test_a_database_url_that_does_not_parse_is_one_line(url, problem, args):
    result = invoke(*args, env={"FINOPS_DATABASE_URL": url}, stdin="a long enough password\n")
    assert (result.exit_code, result.stdout) == (2, "")  # a malformed setting, as a bad option
    # refused with the settings, in the words a service uses for it
    assert result.stderr == (
        "error: FINOPS_DATABASE_URL: should be a URL of the form "
        f"postgresql://USER:PASSWORD@HOST:PORT/DATABASE ({problem})\n"
    )


async def test_without_a_configured_url_the_hint_is_to_start_the_local_stack(monkeypatch):
    monkeypatch.delenv("FINOPS_DATABASE_URL", raising=False)
    with pytest.raises(OSError) as refused:
        await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{free_port()}/finops")
    failure = explain(refused.value)
    assert failure is not None and failure.code == 1
    # The address is the one the commands use: the local stack's default.
    assert failure.message == (
        "cannot reach PostgreSQL at 127.0.0.1:55432 — start the stack with `finops up --detach`,"
        " or set FINOPS_DATABASE_URL"
    )


def test_an_unexpected_error_is_not_explained_away():
    assert explain(ZeroDivisionError("a bug")) is None


def test_a_topic_read_that_stalls_is_one_line():
    from finops.common.kafka import TopicReadStalled

    stalled = TopicReadStalled("reading t: no record for 30 s with partition 0 at 3 of 5")
    assert explain(RuntimeError("another failure")) is None
    for raised in (stalled, _raised_from(RuntimeError("while counting"), stalled)):
        failure = explain(raised)
        assert failure is not None
        assert (failure.message, failure.code) == (str(stalled), 1)


def _raised_from(error: Exception, cause: Exception) -> Exception:
    error.__cause__ = cause
    return error


def test_a_file_that_is_not_an_outcomes_csv_gives_one_line(tmp_path):
    readme = Path(__file__).parents[2] / "README.md"
    result = invoke("backtest", "--data", str(readme))
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: {readme} is not an outcomes CSV: it has no prompt_id column "
        f"(columns: {OUTCOME_COLUMNS})\n"
    )
    binary = tmp_path / "x.csv"
    binary.write_bytes(bytes(range(128, 256)))
    result = invoke("backtest", "--data", str(binary))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {binary} is not an outcomes CSV ('utf-8' codec")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ("quality=7", "line 4: quality 7 is not a number from 0 to 1"),
        ("quality=-0.5", "line 4: quality -0.5 is not a number from 0 to 1"),
        ("quality=", "line 4: quality (empty) is not a number from 0 to 1"),
        ("cost_usd=-3", "line 4: cost_usd -3 is not a number from 0 to 1,000,000"),
        ("cost_usd=nan", "line 4: cost_usd nan is not a number from 0 to 1,000,000"),
        ("input_tokens=-1", "line 4: input_tokens -1 is not a number of 0 or more"),
        ("output_tokens=-20", "line 4: output_tokens -20 is not a number of 0 or more"),
    ],
)
def test_an_outcome_out_of_range_is_refused_naming_its_file_line_and_field(
    tmp_path, outcomes, value, line
):
    field, _, bad = value.partition("=")
    rows = outcomes.read_text().splitlines()
    header = rows[0].split(",")
    cells = rows[3].split(",")
    cells[header.index(field)] = bad
    rows[3] = ",".join(cells)
    data = tmp_path / "bad.csv"
    data.write_text("\n".join(rows) + "\n")

    result = invoke("backtest", "--data", str(data))

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: {data} is not an outcomes CSV ({line}); columns: {OUTCOME_COLUMNS}\n"
    )


@pytest.mark.parametrize(
    ("rows", "line"),
    [
        (  # the walkthrough's file: its oracle (0.6) came out worse than its best model (0.7)
            ["p1,t,a,0.5,1", "p2,t,b,0.7,1"],
            "line 2: prompt p1 has no row for model b; each prompt needs a row per model: a, b",
        ),
        (
            ["p1,t,a,0.5,1", "p1,t,b,0.7,1", "p1,t,a,0.9,1"],
            "line 4: prompt p1 has a second row for model a (the first is line 2); give one row"
            " per prompt and model",
        ),
        (  # it used to be read silently, the extra field dropped
            ["p1,qa,a,0.9,0.01", "p1,qa,b,0.8,0.02,extra"],
            "line 3: 6 fields where the header names 5 columns",
        ),
    ],
    ids=["a-model-missing", "a-row-twice", "an-extra-field"],
)
def test_an_incomplete_or_duplicated_outcomes_file_is_refused_naming_its_line(tmp_path, rows, line):
    data = tmp_path / "s.csv"
    data.write_text("\n".join(["prompt_id,task_type,model,quality,cost_usd", *rows]) + "\n")

    result = invoke("backtest", "--data", str(data), "--json")

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: {data} is not an outcomes CSV ({line}); columns: {OUTCOME_COLUMNS}\n"
    )


def test_an_unwritable_plot_path_fails_before_the_replay_and_creates_no_folder(tmp_path, outcomes):
    missing = tmp_path / "no" / "such" / "frontier.png"
    result = invoke("backtest", "--data", str(outcomes), "--plot", str(missing))
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: --plot {missing}: the folder {missing.parent} does not exist\n"
    )
    assert not (tmp_path / "no").exists()

    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = invoke("backtest", "--data", str(outcomes), "--plot", str(a_file / "f.png"))
    assert result.exit_code == 2
    assert result.stderr == f"error: --plot {a_file / 'f.png'}: {a_file} is not a folder\n"


def test_plot_shows_progress_on_a_terminal_and_piped_tables_keep_whole_names(tmp_path, outcomes):
    png = tmp_path / "frontier.png"
    # A terminal as rich sees one; set before the process starts, as a real terminal is.
    terminal = {**os.environ, "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"}
    result = finops("backtest", "--data", str(outcomes), "--plot", str(png), env=terminal)
    assert result.returncode == 0, result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "frontier plot: 6 targets" in result.stderr
    assert "replaying" in result.stderr
    # the elapsed time takes in the frontier's runs too (it gave the replay's alone)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stdout)
    timing = r"· replay \d+\.\ds, frontier plot \d+\.\ds, \d+\.\ds in all$"
    assert re.search(timing, plain, re.M), plain
    help_text = " ".join(invoke("backtest", "--help").stdout.replace("│", " ").split())
    assert "to this file (.png, .svg or .pdf)" in help_text

    piped = invoke("backtest", "--data", str(outcomes), "--seed", "1")
    assert piped.exit_code == 0
    assert piped.stderr == ""  # no progress bar into a pipe
    rows = [line for line in piped.stdout.splitlines() if "│" in line]
    labels = [row.split("│")[1].strip() for row in rows]
    assert labels == [
        f"best single model ({BIG_MODEL})",
        "routing policy",
        "oracle (cheapest correct model per prompt)",
    ]


@pytest.mark.parametrize("command", [("tail",), ("experiments", "validate")])
def test_help_lists_flags_without_a_value_type(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    flags = [line for line in result.stdout.splitlines() if "--json" in line or "--help" in line]
    assert len(flags) == 2
    assert all("<bool>" not in line for line in flags)
    option = "--max" if command == ("tail",) else "--seed"
    # an option that takes a value shows its type (with its range, if it has one)
    assert "<int" in next(line for line in result.stdout.splitlines() if option in line)


def test_help_text_is_rewrapped_not_broken_where_the_docstring_breaks():
    """A docstring's line breaks are not the terminal's: ``simulate``'s summary broke after
    "compare it with a" in the command list, ``up``'s text in mid-sentence."""
    wide = {"COLUMNS": "200"}
    listing = invoke("--help", env=wide).stdout
    simulate = next(line for line in listing.splitlines() if " simulate " in line)
    assert "compare it with a baseline (the strongest model" in simulate
    up = invoke("up", "--help", env=wide).stdout
    assert "waits until each component is ready and prints what runs where." in up


def test_price_with_an_incomplete_usage_gives_one_line():
    result = invoke(
        "price", "--provider", "openai", "--model", "gpt-4o", "--usage", '{"input_tokens": 10}'
    )
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "error: --usage: output_tokens: Field required (give input_tokens and output_tokens, "
        "or the provider's raw usage object)\n"
    )


def test_piped_price_output_is_not_wrapped():
    usage = '{"input_tokens": 12, "cache_read_input_tokens": 18000, "output_tokens": 500}'
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR")}
    args = ["--provider", "anthropic", "--model", "claude-sonnet-4-20250514", "--usage", usage]
    result = finops("price", *args, env=env)
    assert result.returncode == 0, result.stderr
    total, details = result.stdout.splitlines()
    assert total.startswith("$")
    assert len(details) > 80  # longer than a narrow terminal, and still one line
    # the prices are genai-prices' of the day: the words around them are the command's
    assert re.fullmatch(
        r"input \$\d+\.\d{8} · output \$\d+\.\d{8} · 18,012 input tokens \(18,000 cached\)"
        r" · 500 output tokens · genai-prices-\S+",
        details,
    ), details


def test_operator_commands_reach_the_stack_on_its_configured_ports():
    """After `FINOPS_KAFKA_PORT=… finops up`, `finops topics` looks on that port, not 59092."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINOPS_")}
    result = finops("topics", env={**env, "FINOPS_KAFKA_PORT": str(port), **_plain_env()})
    assert result.returncode == 1
    assert f"cannot reach the Kafka broker at 127.0.0.1:{port}" in " ".join(result.stderr.split())


def _plain_env() -> dict[str, str]:
    return {k: v for k, v in PLAIN.items() if v is not None}


def test_version_prints_the_installed_version():
    import tomllib

    project = tomllib.loads((Path(__file__).parents[2] / "libs/cli/pyproject.toml").read_text())
    result = invoke("--version")
    assert (result.exit_code, result.stdout) == (0, f"finops {project['project']['version']}\n")


def _leaf_commands(group, path=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (Typer carries its own copy of Click)
            yield from _leaf_commands(command, (*path, name))
        else:
            yield (*path, name), command


def test_every_help_text_of_every_command_reaches_the_screen():
    """Help is rendered, not copied: Rich markup or Markdown can swallow text (``<arm>`` was read
    as an HTML tag once).  Every word of every command's and option's help must be shown."""
    import typer.main

    lost = {}
    commands = dict(_leaf_commands(typer.main.get_command(app)))
    assert {("db", "downgrade"), ("users", "create"), ("experiments", "validate")} <= set(commands)
    for path, command in commands.items():
        shown = " ".join(invoke(*path, "--help", env={"COLUMNS": "400"}).stdout.split())
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        missing = [w for text in texts for w in text.split() if w not in shown]
        if missing:
            lost[" ".join(path)] = missing
    assert lost == {}

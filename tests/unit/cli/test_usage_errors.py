"""A command line the `finops` command cannot parse is one line on stderr, exit status 2.

Whatever is wrong (a bad value, an unknown option or command, a missing argument) and at
whatever level (the root group, a command, a sub-app's command), the user reads
``error: <what>`` and where to look, never a framed usage panel.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from finops.cli.main import app

# Deterministic rich output whatever the terminal running the suite: not a terminal, no width.
PLAIN = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "COLUMNS": None, "NO_COLOR": "1"}


def invoke(*args: str, stdin: str | None = None):
    return CliRunner().invoke(app, list(args), env=PLAIN, input=stdin, prog_name="finops")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ("tail", "agent.cost.v1", "--max", "abc"),
            "error: invalid value for '--max': Input should be a valid integer, unable to parse"
            " string as an integer (see `finops tail --help`)",
        ),
        (
            ("up", "--optimizer-workers", "9"),
            "error: invalid value for '--optimizer-workers': Input should be less than or equal"
            " to 6 (see `finops up --help`)",
        ),
        (("bogus-cmd",), "error: no such command 'bogus-cmd' (see `finops --help`)"),
        (("--bogus",), "error: no such option: --bogus (see `finops --help`)"),
        (("tail",), "error: missing argument 'TOPIC' (see `finops tail --help`)"),
        (("tail", "t", "--bogus"), "error: no such option: --bogus (see `finops tail --help`)"),
        (
            ("tail", "t", "--max"),
            "error: option '--max' requires an argument (see `finops tail --help`)",
        ),
        (
            ("db", "upgrade", "a", "b"),
            "error: got unexpected extra argument(s) (b) (see `finops db upgrade --help`)",
        ),
        (
            ("db", "upgrade", "-1"),
            "error: -1 is a step back: `finops db upgrade` goes forward (head, +1, a revision);"
            " to go back, `finops db downgrade -1`",
        ),
        (
            ("db", "downgrade", "--bogus"),
            "error: no such option: --bogus (see `finops db downgrade --help`)",
        ),
        (
            ("users", "create"),
            "error: missing option '--username' (see `finops users create --help`)",
        ),
        (("users", "bogus"), "error: no such command 'bogus' (see `finops users --help`)"),
        (
            ("experiments", "validate", "--runs", "x"),
            "error: invalid value for '--runs': Input should be a valid integer, unable to parse"
            " string as an integer (see `finops experiments validate --help`)",
        ),
        (
            ("experiments", "validate", "--runs", "3", "--seed", "-5"),
            "error: invalid value for '--seed': Input should be greater than or equal to 0"
            " (see `finops experiments validate --help`)",
        ),
        (
            ("simulate", "--seed", "-5"),
            "error: invalid value for '--seed': Input should be greater than or equal to 0"
            " (see `finops simulate --help`)",
        ),
        (
            ("demo", "--seed", "-5"),
            "error: invalid value for '--seed': Input should be greater than or equal to 0"
            " (see `finops demo --help`)",
        ),
        (
            ("backtest", "--data", __file__, "--seed", "-5"),
            "error: invalid value for '--seed': Input should be greater than or equal to 0"
            " (see `finops backtest --help`)",
        ),
    ],
    ids=[
        "bad-value",
        "out-of-range",
        "unknown-command",
        "unknown-root-option",
        "missing-argument",
        "unknown-option",
        "option-without-value",
        "extra-argument",
        "upgrade-a-step-back",
        "unknown-option-of-a-command-taking-steps",
        "missing-option",
        "unknown-sub-command",
        "sub-app-bad-value",
        "negative-seed-validate",
        "negative-seed-simulate",
        "negative-seed-demo",
        "negative-seed-backtest",
    ],
)
def test_a_usage_error_is_one_line_with_exit_status_2(args, line):
    result = invoke(*args)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == line + "\n"


def test_a_group_without_a_command_still_shows_its_help():
    result = invoke("db")
    assert result.exit_code == 2
    assert "upgrade" in result.stdout and "downgrade" in result.stdout
    assert "error" not in result.stderr


def test_every_command_and_group_reports_usage_errors_in_one_line():
    import typer

    from finops.cli.typer_app import FinopsCommand, FinopsGroup

    def walk(command, path):
        yield path, command
        for name in getattr(command, "commands", {}):
            yield from walk(command.commands[name], f"{path} {name}")

    commands = dict(walk(typer.main.get_command(app), "finops"))
    assert {"finops", "finops tail", "finops db upgrade", "finops experiments validate"} <= set(
        commands
    )
    other = {
        path: type(command).__name__
        for path, command in commands.items()
        if not isinstance(command, FinopsCommand | FinopsGroup)
    }
    assert other == {}


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("--max", "0"), "error: invalid value for '--max': {min_1} (see `finops tail --help`)"),
        (("--max", "-1"), "error: invalid value for '--max': {min_1} (see `finops tail --help`)"),
        (
            ("--idle-timeout", "-5"),
            "error: invalid value for '--idle-timeout': must be more than 0 seconds, got -5.0"
            " (see `finops tail --help`)",
        ),
        (
            ("--idle-timeout", "0"),
            "error: invalid value for '--idle-timeout': must be more than 0 seconds, got 0.0"
            " (see `finops tail --help`)",
        ),
    ],
    ids=["max-0", "max-negative", "idle-timeout-negative", "idle-timeout-0"],
)
def test_tail_refuses_limits_that_mean_nothing(args, line):
    # refused while parsing: no broker is asked (none runs here)
    result = invoke("tail", "agent.cost.v1", *args)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == line.format(min_1="Input should be greater than or equal to 1") + "\n"


@pytest.mark.parametrize("command", ["reprice", "evaluate-policy"])
def test_commands_reading_a_topic_to_its_end_refuse_an_idle_timeout_that_is_not_positive(
    command,
):
    # refused while parsing: no broker is asked (none runs here)
    result = invoke(command, "--idle-timeout", "-1")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "error: invalid value for '--idle-timeout': must be more than 0 seconds, got -1.0"
        f" (see `finops {command} --help`)\n"
    )


@pytest.mark.parametrize(
    "args",
    [
        ("reprice", "--idle-timeout", "inf"),
        ("evaluate-policy", "--idle-timeout", "inf"),
        ("tail", "agent.cost.v1", "--idle-timeout", "inf"),
        ("db", "wait", "--timeout", "inf"),
    ],
    ids=["reprice", "evaluate-policy", "tail", "db-wait"],
)
def test_a_timeout_that_is_not_finite_is_refused(args):
    # `finops reprice --idle-timeout inf` read the topic to its end and then waited for ever
    result = invoke(*args)
    option = args[-2]
    command = " ".join(arg for arg in args[:-2] if not arg.startswith("agent."))
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: invalid value for '{option}': must be a finite number of seconds, got inf"
        f" (see `finops {command} --help`)\n"
    )


@pytest.mark.parametrize("detach", [[], ["--detach"]])
def test_optimizer_workers_with_infra_only_is_refused_not_ignored(detach, tmp_path, monkeypatch):
    # --infra-only starts no service: the workers asked for were silently not started
    monkeypatch.setenv("FINOPS_DATA_DIR", str(tmp_path / "stack"))
    result = invoke("up", *detach, "--infra-only", "--optimizer-workers", "2")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "error: --optimizer-workers has no effect with --infra-only, which starts no service"
        " (see `finops up --help`)\n"
    )
    assert not (tmp_path / "stack").exists()

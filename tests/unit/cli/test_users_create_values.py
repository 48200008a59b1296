"""`finops users create` refuses a bad value as a usage error (exit 2), before it needs the
database: nothing listens at the URL these tests give, so reaching it would exit 1."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from finops.cli.main import app
from finops.cli.stack.ports import free_port

PLAIN = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "COLUMNS": None, "NO_COLOR": "1"}
PASSWORD = "a long enough password"


def create(username: str, email: str, stdin: str, *more: str) -> tuple[int, str, str]:
    env = {**PLAIN, "FINOPS_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/f"}
    args = ["users", "create", "--username", username, "--email", email, "--password-stdin"]
    args += more
    result = CliRunner().invoke(app, args, env=env, input=stdin)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("username", "email", "stdin", "line"),
    [
        (
            "a!",
            "a@example.com",
            PASSWORD,
            "username: username must be 3 to 32 characters of a-z, 0-9, '_', '.' and '-'",
        ),
        (
            "alice",
            "nope",
            PASSWORD,
            "email: not a valid email address: An email address must have an @-sign.",
        ),
        ("alice", "a@example.com", "short", "password: password must have at least 12 characters"),
        (
            "alice",
            "a@example.com",
            "",
            "no password on standard input (--password-stdin reads its first line)",
        ),
        (
            "alice",
            "a@example.com",
            "\n",
            "no password on standard input (--password-stdin reads its first line)",
        ),
    ],
    ids=["username", "email", "password", "empty-stdin", "empty-line"],
)
def test_a_bad_value_exits_2_with_one_line_naming_it(username, email, stdin, line):
    assert create(username, email, stdin) == (2, "", f"error: {line}\n")


def test_every_bad_value_is_named_each_on_its_line():
    code, out, err = create("a!", "nope", "short")
    assert (code, out) == (2, "")
    assert [line.split(":")[1] for line in err.splitlines()] == [
        " username",
        " email",
        " password",
    ]


def test_a_bad_team_exits_2_naming_it_before_the_database():
    code, out, err = create("alice", "a@example.com", PASSWORD, "--team", "ok", "--team", "")
    assert (code, out) == (2, "")
    assert err == "error: teams.1: a team name must have 1 to 128 characters\n"


def test_teams_for_an_admin_exit_2_before_the_database():
    code, out, err = create("alice", "a@example.com", PASSWORD, "--role", "admin", "--team", "x")
    assert code == 2 and out == ""
    assert err.startswith("error: --team binds an account's events to its teams")
    assert err.count("\n") == 1


@pytest.mark.parametrize("command", ["create", "deactivate"])
def test_a_signing_key_the_command_never_uses_does_not_refuse_it(command, tmp_path):
    # FINOPS_JWT_PRIVATE_KEY_FILE, set for the auth service but unreadable where an admin
    # runs the command, refused it (exit 2) though creating an account signs nothing: it
    # now goes on to the database, which nothing answers here (exit 1)
    port = free_port()
    env = {
        **PLAIN,
        "FINOPS_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/f",
        "FINOPS_JWT_PRIVATE_KEY_FILE": str(tmp_path / "absent.pem"),
    }
    args = (
        ["users", "create", "--username", "alice", "--email", "a@example.com", "--password-stdin"]
        if command == "create"
        else ["users", "deactivate", "alice"]
    )
    result = CliRunner().invoke(app, args, env=env, input=PASSWORD)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith(f"error: cannot reach PostgreSQL at 127.0.0.1:{port}")

"""Every `finops ... --help` reads whole on an 80-column terminal and says what the command does."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from finops.cli.main import app
from finops.common import migrations

TERMINAL = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "NO_COLOR": "1", "COLUMNS": "80"}


def _paths(command, path=()):
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        if not sub.hidden:
            yield from _paths(sub, (*path, name))


COMMANDS = list(_paths(typer.main.get_command(app)))


def help_text(*path: str) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env=TERMINAL, prog_name="finops")
    assert result.exit_code == 0, result.output
    return result.stdout


def words(*path: str) -> str:
    """The help as one line of words, whatever the wrapping and the frames."""
    return " ".join(help_text(*path).replace("│", " ").split())


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "finops")
def test_no_help_is_cut_short(path):
    cut = [line for line in help_text(*path).splitlines() if "…" in line]
    assert cut == []


def test_the_command_list_covers_sub_apps():
    assert {(), ("up",), ("db", "upgrade"), ("users", "create")} <= set(COMMANDS)


def test_up_names_the_setting_for_its_optimizer_workers():
    assert "FINOPS_OPTIMIZER_WORKERS" in words("up")


def test_db_upgrade_and_downgrade_say_which_revisions_they_take():
    upgrade, downgrade = words("db", "upgrade"), words("db", "downgrade")
    for form in ("head", "+1", "exp0004", "SERVICE@REVISION", "optimizer@head"):
        assert form in upgrade
    for form in ("base", "-1", "exp0003", "SERVICE@REVISION", "optimizer@base"):
        assert form in downgrade
    # the services the help offers for SERVICE@REVISION are the ones that take it
    offered = "SERVICE being experiments, optimizer or healer"
    assert offered in upgrade and offered in downgrade
    for service in ("experiments", "optimizer", "healer"):
        assert migrations.services_knowing(f"{service}@head") == [service]
    assert migrations.services_knowing("auth@head") == []


def test_users_commands_say_they_use_the_local_stacks_database_unless_told_otherwise():
    assert (
        "Uses the local stack's PostgreSQL (`finops up`) unless FINOPS_DATABASE_URL is set"
        in words("users", "create")
    )
    assert (
        "Uses the local stack's PostgreSQL and Redis (`finops up`) unless FINOPS_DATABASE_URL"
        " and FINOPS_REDIS_URL are set" in words("users", "deactivate")
    )

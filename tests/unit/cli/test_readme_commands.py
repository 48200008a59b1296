"""The README's table of `finops` commands names every command, every option of each (in its
row) and only options that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from finops.cli.main import app

README = Path(__file__).resolve().parents[3] / "README.md"
ROW = re.compile(r"^\| (?P<cell>`finops .*?) \| ", re.MULTILINE)
SPAN = re.compile(r"`(finops [^`]*)`")


def _commands(command: Any, path: tuple[str, ...] = ()) -> dict[str, set[str]]:
    """Every leaf command's words (``"db upgrade"``) with its long options."""
    if hasattr(command, "list_commands"):  # a group (Typer's own copy of Click's)
        out: dict[str, set[str]] = {}
        for name in command.list_commands(None):
            sub = command.get_command(None, name)
            if not sub.hidden:
                out.update(_commands(sub, (*path, name)))
        return out
    options = {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o[:2] == "--"}
    return {" ".join(path): options}


CLI = _commands(typer.main.get_command(app))


def _readme_rows() -> dict[str, set[str]]:
    """Each command the README's table shows, with the options its row names."""
    rows: dict[str, set[str]] = {}
    for row in ROW.finditer(README.read_text()):
        for span in SPAN.findall(row["cell"]):
            words = span.split()[1:]
            name = " ".join(words[:2]) if " ".join(words[:2]) in CLI else words[0]
            rows.setdefault(name, set()).update(re.findall(r"--[a-z][a-z-]*", span))
    return rows


def test_every_command_has_a_row_in_the_readme():
    assert sorted(set(CLI) - set(_readme_rows())) == []


def test_every_option_a_row_names_exists():
    rows = _readme_rows()
    assert set(rows) <= set(CLI), sorted(set(rows) - set(CLI))
    unknown = {name: sorted(opts - CLI[name]) for name, opts in rows.items() if opts - CLI[name]}
    assert unknown == {}


def _row_of(name: str) -> str:
    """The whole README row of a command (its options may be named in the description)."""
    [row] = [
        line
        for line in README.read_text().splitlines()
        if (match := ROW.match(line)) and re.search(rf"`finops {name}[ `]", match["cell"])
    ]
    return row


def test_every_option_of_a_command_is_named_in_its_row():
    """Either name of an on/off pair (``--count/--no-count``) is enough."""
    command = typer.main.get_command(app)
    missing = {}
    for name in CLI:
        leaf: Any = command
        for word in name.split():
            leaf = leaf.get_command(None, word)
        row = _row_of(name)
        absent = [
            param.opts[0]
            for param in leaf.params
            if any(o[:2] == "--" for o in param.opts)
            and not any(
                re.search(rf"{o}\b(?!-)", row) for o in (*param.opts, *param.secondary_opts)
            )
        ]
        if absent:
            missing[name] = absent
    assert missing == {}


def test_the_table_is_read_as_commands_and_options():
    rows = _readme_rows()
    assert rows["db downgrade"] == set()
    assert rows["tail"] >= {"--from-beginning", "--max", "--idle-timeout"}
    assert len(rows) >= 15

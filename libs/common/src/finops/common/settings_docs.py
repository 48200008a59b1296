"""Writes the settings tables in the docs from the settings classes.

A generated block in a markdown file looks like::

    <!-- generated: settings of finops.ingest.settings:IngestSettings -->
    | variable | default | what it is |
    ...
    <!-- end generated -->

The marker names a pydantic-settings class; the table lists the fields the class declares
itself (not those it inherits: those have the block of the class that declares them), each as
its environment variable, its default and what the code says of it: the field's
``description``, else the comment lines right above the field, else the comment at the end
of its line.  ``python -m finops.common.settings_docs FILE...`` rewrites the blocks
(``--check``: exit 1 when one is stale).
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
from dataclasses import dataclass
from typing import Any

from pydantic_settings import BaseSettings, NoDecode

from finops.common.doc_blocks import block_pattern, rewrite_files

BLOCK = block_pattern("settings of")
_FIELD_LINE = re.compile(r"^(?P<indent>\s+)(?P<name>[a-z_][a-z0-9_]*)\s*:")
_COMMENT_LINE = re.compile(r"^\s*#:?\s?(?P<text>.*)$")
_TRAILING_COMMENT = re.compile(r"  # (?P<text>.*)$")  # PEP 8's inline comment
_RULE = re.compile(r"-{3,}")  # a comment drawn as a rule: "# ---- group ----"


@dataclass(frozen=True)
class SettingRow:
    """One row of a settings table."""

    variable: str
    default: str
    what: str


def settings_rows(cls: type[BaseSettings]) -> list[SettingRow]:
    """The rows of the fields ``cls`` declares itself, in source order.

    Examples
    --------
    Comments are read from the class's source file; a class typed in here has none, so only
    descriptions show:

    >>> from pydantic import Field
    >>> from pydantic_settings import SettingsConfigDict
    >>> class Demo(BaseSettings):
    ...     model_config = SettingsConfigDict(env_prefix="DEMO_")
    ...     timeout_s: float = Field(2.0, description="how long a call may take")
    ...     name: str | None = None
    >>> [(r.variable, r.default, r.what) for r in settings_rows(Demo)]
    [('DEMO_TIMEOUT_S', '2.0', 'how long a call may take'), ('DEMO_NAME', 'unset', '')]
    """
    prefix = str(cls.model_config.get("env_prefix", ""))
    own = set(cls.__annotations__)
    comments = _field_comments(cls)
    rows = []
    for name, field in cls.model_fields.items():
        if name not in own:
            continue
        what = field.description or comments.get(name, "")
        rows.append(SettingRow(f"{prefix}{name}".upper(), _default(field), what))
    return rows


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is None:
        return "unset"
    if isinstance(value, tuple | list):
        if not value:
            return "(none)"
        # as the variable is written: pydantic-settings reads a list as JSON, unless the field
        # says NoDecode and splits the text itself (comma-separated, here)
        no_decode = any(m is NoDecode for m in field.metadata)
        return ",".join(str(v) for v in value) if no_decode else json.dumps(list(value))
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _field_comments(cls: type) -> dict[str, str]:
    """Each field's comment: the comment lines right above it, else the one ending its line."""
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    pending: list[str] = []
    body_indent: str | None = None
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            match = _COMMENT_LINE.match(line)
            text = _RULE.sub("", match["text"] if match else "").strip()
            if text:
                pending.append(text)
            continue
        field = _FIELD_LINE.match(line)
        if field and (body_indent is None or field["indent"] == body_indent):
            body_indent = field["indent"]
            trailing = _TRAILING_COMMENT.search(line)
            text = " ".join(pending) or (trailing["text"].strip() if trailing else "")
            out.setdefault(field["name"], text)
        pending = []  # a comment belongs to the line right below it
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("``", "`")


def render(cls: type[BaseSettings]) -> str:
    """The markdown table of a block."""
    out = ["| variable | default | what it is |", "|---|---|---|"]
    for row in settings_rows(cls):
        default = f"`{_cell(row.default)}`"
        out.append(f"| `{row.variable}` | {default} | {_cell(row.what)} |")
    return "\n".join(out) + "\n"


def _settings_class(spec: str) -> type[BaseSettings]:
    module, _, name = spec.partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, BaseSettings)):
        raise TypeError(f"{spec} is not a settings class")
    return cls


def regenerate(markdown: str) -> str:
    """``markdown`` with every generated settings block rewritten from the code."""

    def block(match: re.Match[str]) -> str:
        return match["open"] + render(_settings_class(match["spec"].strip())) + match["close"]

    return BLOCK.sub(block, markdown)


if __name__ == "__main__":
    raise SystemExit(rewrite_files(sys.argv[1:], regenerate))

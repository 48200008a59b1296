"""Writes the error-code tables in the docs from the services' OpenAPI documents.

A generated block in a markdown file looks like::

    <!-- generated: error codes of finops.ingest.app:create_app POST /api/events -->
    | status | code | when |
    ...
    <!-- end generated -->

The marker names the app factory and, optionally, ``summary`` (one table of every code the
service answers) or the endpoints to list (default: every endpoint that declares errors).
``python -m finops.common.error_docs FILE...`` rewrites the blocks (``--check``: exit 1 when
one is stale); the tables come from ``x-error-codes`` (see :mod:`finops.common.api_errors`).
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from finops.common.api_errors import EXTENSION
from finops.common.doc_blocks import block_pattern, rewrite_files

BLOCK = block_pattern("error codes of")
METHODS = ("get", "post", "put", "patch", "delete")

Row = tuple[int, str, str]  # status, code, when


def endpoint_errors(openapi: dict[str, Any]) -> list[tuple[str, list[Row]]]:
    """``[("POST /api/events", [(400, "invalid_json", "..."), ...]), ...]`` in document order."""
    out = []
    for path, operations in openapi.get("paths", {}).items():
        for method in METHODS:
            operation = operations.get(method)
            if not operation:
                continue
            rows = [
                (int(status), item["code"], item["when"])
                for status, answer in operation.get("responses", {}).items()
                for item in answer.get(EXTENSION, [])
            ]
            if rows:
                out.append((f"{method.upper()} {path}", sorted(rows, key=lambda r: r[0])))
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(openapi: dict[str, Any], selection: Sequence[str] = ()) -> str:
    """The markdown table for a block (``selection``: ``["summary"]`` or endpoints)."""
    endpoints = endpoint_errors(openapi)
    if list(selection) == ["summary"]:
        rows = sorted({row for _, rows in endpoints for row in rows}, key=_first_seen(endpoints))
        return _table(["status", "code", "when"], [[str(s), f"`{c}`", w] for s, c, w in rows])
    if selection:
        wanted = [" ".join(selection[i : i + 2]) for i in range(0, len(selection), 2)]
        known = dict(endpoints)
        missing = [e for e in wanted if e not in known]
        if missing:
            raise ValueError(f"no declared errors for {', '.join(missing)}")
        endpoints = [(e, known[e]) for e in wanted]
    if len(endpoints) == 1:
        rows = endpoints[0][1]
        return _table(["status", "code", "when"], [[str(s), f"`{c}`", w] for s, c, w in rows])
    common = set.intersection(*(set(rows) for _, rows in endpoints)) if endpoints else set()
    lines = (
        [["every endpoint", _codes(r for r in endpoints[0][1] if r in common)]] if common else []
    )
    for endpoint, rows in endpoints:
        lines.append([f"`{endpoint}`", _codes(r for r in rows if r not in common) or "none"])
    return _table(
        ["endpoint", "errors" + (" (besides those of every endpoint)" if common else "")], lines
    )


def _first_seen(endpoints: list[tuple[str, list[Row]]]) -> Callable[[Row], tuple[int, int]]:
    order: dict[Row, int] = {}
    for _, rows in endpoints:
        for row in rows:
            order.setdefault(row, len(order))
    return lambda row: (row[0], order[row])


def _codes(rows: Iterable[Row]) -> str:
    """``401 `a`, `b` · 404 `c```: the codes grouped by status."""
    by_status: dict[int, list[str]] = {}
    for status, code, _ in rows:
        if code not in by_status.setdefault(status, []):
            by_status[status].append(code)
    return " · ".join(
        f"{status} " + ", ".join(f"`{c}`" for c in codes) for status, codes in by_status.items()
    )


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def _openapi_of(factory_path: str) -> dict[str, Any]:
    module, _, name = factory_path.partition(":")
    factory: Callable[[], Any] = getattr(importlib.import_module(module), name)
    return dict(factory().openapi())


def regenerate(markdown: str) -> str:
    """``markdown`` with every generated block rewritten from the code."""
    cache: dict[str, dict[str, Any]] = {}

    def block(match: re.Match[str]) -> str:
        factory, *selection = match["spec"].split()
        if factory not in cache:
            cache[factory] = _openapi_of(factory)
        return match["open"] + render(cache[factory], selection) + match["close"]

    return BLOCK.sub(block, markdown)


def main(argv: Sequence[str]) -> int:
    return rewrite_files(argv, regenerate)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

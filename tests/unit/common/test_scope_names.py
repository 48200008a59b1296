"""Scope names are spelled once, in finops.common.auth.scopes; code elsewhere imports them."""

from __future__ import annotations

import ast
from pathlib import Path

from finops.common.auth.scopes import ALL_SCOPES

ROOT = Path(__file__).resolve().parents[3]
SCOPES_MODULE = ROOT / "libs/common/src/finops/common/auth/scopes.py"


def _sources() -> list[Path]:
    found = [*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("libs/*/src/**/*.py")]
    return [p for p in found if p != SCOPES_MODULE]


def test_the_scan_sees_the_services_and_libs():
    paths = {p.relative_to(ROOT).parts[:2] for p in _sources()}
    assert ("services", "optimizer") in paths
    assert ("libs", "common") in paths


def test_no_scope_name_is_spelled_outside_the_scopes_module():
    spelled = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in ALL_SCOPES:
                spelled.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert spelled == []

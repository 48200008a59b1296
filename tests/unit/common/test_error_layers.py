"""Domain errors carry codes only; the API layer's one table answers them over HTTP."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import finops.common.api_errors as api_errors
import finops.common.errors as errors
from finops.common.api_errors import http_answer
from finops.common.auth.errors import InsufficientScope, InvalidToken
from finops.common.errors import DependencyUnavailable, FinopsError, NotAuthenticated, RateLimited

ROOT = Path(__file__).resolve().parents[3]
HTTP_PACKAGES = ("fastapi", "starlette")
SERVICES = ("auth", "experiments", "healer", "ingest", "optimizer")


def _pure_modules() -> list[Path]:
    domain = sorted(ROOT.glob("services/*/src/finops/*/domain/**/*.py"))
    common = ROOT / "libs/common/src/finops/common"
    return [*domain, common / "errors.py", common / "auth/errors.py"]


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_no_domain_module_and_no_error_tree_imports_an_http_framework():
    modules = _pure_modules()
    assert len(modules) > 30  # every service's domain/ was found
    offending = {
        str(path.relative_to(ROOT)): sorted(
            name for name in _imported(path) if name.split(".")[0] in HTTP_PACKAGES
        )
        for path in modules
    }
    assert {path: names for path, names in offending.items() if names} == {}


def _module_name(path: Path) -> str:
    parts = path.relative_to(path.parents[len(path.parts) - 1 - path.parts.index("finops")])
    return ".".join(parts.with_suffix("").parts).removesuffix(".__init__")


def test_importing_the_domain_and_the_error_tree_loads_no_http_framework():
    # also what they import in turn: a domain module must not reach FastAPI through a helper
    modules = [_module_name(path) for path in _pure_modules()]
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HTTP_PACKAGES!r}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert "finops.optimizer.domain.engine" in modules
    assert loaded.strip() == "[]"


def _error_classes() -> list[type[FinopsError]]:
    found, todo = [], [FinopsError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_status_the_docs_declare_for_a_code_is_the_table_s_answer():
    import importlib

    declared: set[tuple[int, str]] = set()
    for service in SERVICES:
        openapi = importlib.import_module(f"finops.{service}.app").create_app().openapi()
        for operations in openapi["paths"].values():
            for operation in operations.values():
                for status, answer in operation.get("responses", {}).items():
                    for row in answer.get(api_errors.EXTENSION, []):
                        declared.add((int(status), row["code"]))
    # an error class's answer, without its constructor's arguments
    answered = {
        cls.code: http_answer(cls.__new__(cls)).status
        for cls in _error_classes()
        if cls.code != "internal_error"
    }
    checked = [(status, code) for status, code in declared if code in answered]
    assert len(checked) > 20
    assert [(s, c) for s, c in checked if answered[c] != s] == []


def test_a_code_missing_from_the_table_takes_its_base_class_s_answer():
    class UsernameTaken(errors.Conflict):
        code = "username_taken"

    assert "username_taken" not in api_errors.ANSWERS
    assert http_answer(UsernameTaken()) == api_errors.ANSWERS["conflict"]
    assert http_answer(FinopsError()).status == 500


@pytest.mark.parametrize(
    ("error", "status", "headers"),
    [
        (RateLimited(retry_after_seconds=900), 429, {"Retry-After": "900"}),
        (DependencyUnavailable(retry_after_seconds=1), 503, {"Retry-After": "1"}),
        (DependencyUnavailable(), 503, {}),
        (InvalidToken(), 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}),
        # no token at all: a challenge with no error code (RFC 6750 section 3.1)
        (NotAuthenticated(), 401, {"WWW-Authenticate": "Bearer"}),
        (
            InsufficientScope("stats:read"),
            403,
            {"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="stats:read"'},
        ),
    ],
)
def test_the_table_builds_status_and_headers_from_the_error(
    error: FinopsError, status: int, headers: dict[str, str]
):
    answer = http_answer(error)
    assert (answer.status, answer.headers(error)) == (status, headers)

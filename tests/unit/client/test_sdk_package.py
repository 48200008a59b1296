"""The SDK as an agent installs it: typed (PEP 561's ``py.typed``, so mypy reads its
annotations instead of skipping it as an untyped module), and free of the platform's server
packages."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from finops.client import AsyncFinOpsClient, FinOpsClient

ROOT = Path(__file__).resolve().parents[3]

AGENT = """
import asyncio

from finops.client import AsyncFinOpsClient, FinOpsClient


async def main() -> None:
    async with AsyncFinOpsClient(agent_id="bot", token="t") as finops:
        event_id: int = await finops.record_call(
            task_type="qa", provider="openai", model="gpt-4o-mini",
            usage={"input_tokens": 1}, latency_ms=5,
        )


with FinOpsClient(agent_id="bot", token="t", ingest_ulr="http://ingest") as blocking:
    pending: str = blocking.pending
    blocking.record_call(
        task_typ="qa", provider="openai", model="gpt-4o-mini", usage={}, latency_ms=5
    )
    choice: int = blocking.recommend("qa", seed=1)
asyncio.run(main())
"""


def test_mypy_reads_the_sdks_types_in_an_agents_script(tmp_path: Path) -> None:
    (tmp_path / "agent.py").write_text(AGENT)
    # the SDK found on the path as an installed package is (PYTHONPATH, as site-packages)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "libs" / "client" / "src")}
    env.pop("MYPYPATH", None)
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file=", "--strict", "--no-incremental",
         "--cache-dir", str(tmp_path / "cache"), "agent.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    assert errors == [
        'agent.py:9: error: Incompatible types in assignment (expression has type "str", '
        'variable has type "int")  [assignment]',
        # the blocking twin's arguments and answers are the async client's (they were
        # **kwargs: Any, so mypy let every misspelt name through)
        'agent.py:15: error: Unexpected keyword argument "ingest_ulr" for "FinOpsClient"; '
        'did you mean "ingest_url"?  [call-arg]',
        'agent.py:16: error: Incompatible types in assignment (expression has type "int", '
        'variable has type "str")  [assignment]',
        'agent.py:17: error: Unexpected keyword argument "task_typ"; did you mean '
        '"task_type"?  [call-arg]',
        "agent.py:20: error: Incompatible types in assignment (expression has type "
        '"dict[str, Any]", variable has type "int")  [assignment]',
    ], checked.stdout


def test_the_blocking_client_has_the_async_clients_parameters_and_docstrings() -> None:
    # help(FinOpsClient.record_call) said "record_call(self, **kwargs: Any) -> str", no more
    # help() and inspect.signature show what __wrapped__ names (compared as they read it, the
    # signatures were equal by construction: that is what is checked here, said so)
    for name in ("record_call", "record_error", "recommend", "assign", "flush"):
        blocking, awaited = getattr(FinOpsClient, name), getattr(AsyncFinOpsClient, name)
        assert blocking.__wrapped__ is awaited, name
        assert "task_type" in str(inspect.signature(blocking)) or name in ("assign", "flush")
        assert blocking.__doc__ == awaited.__doc__ and blocking.__doc__, name
    assert FinOpsClient.__init__.__wrapped__ is AsyncFinOpsClient.__init__  # type: ignore[attr-defined]
    assert inspect.signature(FinOpsClient) == inspect.signature(AsyncFinOpsClient)
    assert FinOpsClient.close.__doc__ and FinOpsClient.call.__doc__
    # and they are its parameters when called: a misspelt one is Python's TypeError
    with FinOpsClient(agent_id="bot", token="t") as finops:
        with pytest.raises(TypeError, match="unexpected keyword argument 'task_typ'"):
            finops.record_call(task_typ="qa")  # type: ignore[call-arg]


#: the platform's server packages (and its own libraries): none may be imported by the SDK
SERVER_PACKAGES = ("fastapi", "starlette", "uvicorn", "faust", "sqlalchemy", "asyncpg",
                   "alembic", "redis", "aiokafka", "pydantic", "finops.common")  # fmt: skip

IMPORT_WITHOUT_SERVER_PACKAGES = f"""
import sys


class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.startswith({SERVER_PACKAGES!r}):
            raise ModuleNotFoundError(f"No module named {{name!r}} (not installed)")


sys.meta_path.insert(0, Absent())
import asyncio
import finops.client


async def main():
    async with finops.client.AsyncFinOpsClient(agent_id="bot", token="t"):
        pass


asyncio.run(main())
finops.client.FinOpsClient(agent_id="bot", token="t").close()
print(sorted(m for m in sys.modules if m.startswith({SERVER_PACKAGES!r})))
"""


def test_the_sdk_needs_no_server_package() -> None:
    project = tomllib.loads((ROOT / "libs" / "client" / "pyproject.toml").read_text())
    assert sorted(project["project"]["dependencies"]) == ["httpx>=0.27", "tenacity>=9.0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "libs" / "client" / "src")}
    ran = subprocess.run(
        [sys.executable, "-c", IMPORT_WITHOUT_SERVER_PACKAGES],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (ran.returncode, ran.stdout) == (0, "[]\n"), ran.stderr


def test_every_public_call_and_parameter_of_the_sdk_is_documented() -> None:
    # help(AsyncFinOpsClient) named none of its constructor's parameters (batch_size,
    # overflow, on_rejected, transport...): an agent's developer had to read the source
    import finops.client

    for name in finops.client.__all__:
        assert getattr(finops.client, name).__doc__, name
    for cls in (AsyncFinOpsClient, FinOpsClient):
        for name, member in vars(cls).items():
            if not name.startswith("_") and (callable(member) or isinstance(member, property)):
                assert member.__doc__, f"{cls.__name__}.{name}"
    undocumented = [
        name
        for name in inspect.signature(AsyncFinOpsClient).parameters
        if f"``{name}``" not in (AsyncFinOpsClient.__doc__ or "")
    ]
    assert undocumented == []

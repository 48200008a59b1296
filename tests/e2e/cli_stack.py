"""Helpers for tests that run a whole local stack through the `finops` command."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import support

from finops.cli.stack.ports import FREE_PORTS_ENV, free_port
from finops.common.settings import LOCAL_BROKER_ENV

COMPONENTS = [
    "postgres",
    "redis",
    "storage",
    "broker",
    "kafka",
    "auth",
    "ingest",
    "optimizer",
    "healer",
    "experiments",
]


def finops(
    *args: str, env: dict[str, str], timeout: float = 180, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finops.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    env: dict[str, str] | None = None,
) -> Any:
    """Poll ``condition`` until it is truthy; on timeout, fail with the stack's log tails
    when ``env`` names the stack (its folder is gone once the test ends)."""
    return support.wait_for(
        condition, timeout, what, 0.3, lambda: f"\n{stack_log_tails(env)}" if env else ""
    )


def stack_log_tails(env: dict[str, str], lines: int = 25) -> str:
    """The last lines of every component's log (and the stack state) of the stack in ``env``."""
    root = Path(env["FINOPS_DATA_DIR"])
    parts = []
    for log in [*sorted((root / "logs").glob("*.log")), root / "stack.json"]:
        if log.exists():
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(tail))
    return "\n".join(parts)


def fresh_env(data_dir: Path) -> dict[str, str]:
    """The environment of a stack of its own: its data folder, free ports (and this test
    worker's range of them, for the ports the stack picks itself)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("FINOPS_") or k == FREE_PORTS_ENV
    }
    env["FINOPS_DATA_DIR"] = str(data_dir)
    env["COLUMNS"] = "200"
    for name in COMPONENTS:
        env[f"FINOPS_{name.upper()}_PORT"] = str(free_port())
    return env


def another_instance(env: dict[str, str], service: str, port: int) -> subprocess.Popen[bytes]:
    """One more instance of ``service`` on the stack's PostgreSQL, Redis, broker and auth, on
    ``port`` (its log: ``logs/<service>-2.log``)."""
    instance_env = {
        **env,
        **LOCAL_BROKER_ENV,
        "FINOPS_PORT": str(port),
        "FINOPS_HOST": "127.0.0.1",
        "FINOPS_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{env['FINOPS_POSTGRES_PORT']}/finops",
        "FINOPS_REDIS_URL": f"redis://127.0.0.1:{env['FINOPS_REDIS_PORT']}/0",
        "FINOPS_KAFKA_BOOTSTRAP": f"127.0.0.1:{env['FINOPS_KAFKA_PORT']}",
        "FINOPS_AUTH_URL": url_of(env, "auth"),
    }
    log = (Path(env["FINOPS_DATA_DIR"]) / "logs" / f"{service}-2.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", f"finops.{service}"],
        env=instance_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def url_of(env: dict[str, str], service: str) -> str:
    return f"http://127.0.0.1:{env[f'FINOPS_{service.upper()}_PORT']}"


def operator_token(env: dict[str, str]) -> tuple[str, str]:
    """Create an operator with `finops users create` and log in: (username, access token)."""
    name = "op-" + uuid.uuid4().hex[:8]
    password = "operator password " + uuid.uuid4().hex
    db = f"postgresql://postgres@127.0.0.1:{env['FINOPS_POSTGRES_PORT']}/finops"
    created = finops(
        "users",
        "create",
        "--username",
        name,
        "--email",
        f"{name}@example.com",
        "--role",
        "operator",
        "--password-stdin",
        env={**env, "FINOPS_DATABASE_URL": db},
        stdin=password + "\n",
    )
    assert created.returncode == 0, created.stdout + created.stderr
    resp = httpx.post(
        f"{url_of(env, 'auth')}/api/auth/login",
        json={"login": name, "password": password},
        timeout=30,
    )
    resp.raise_for_status()
    return name, str(resp.json()["access_token"])

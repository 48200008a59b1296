"""Every full Python program in README.md and docs/ runs, as written, against a real platform.

Auth, ingest and the healer run in this process (uvicorn) on the session's PostgreSQL, Redis
and broker; each program runs in its own interpreter with only what a user would set:
FINOPS_API_KEY (a real key of the account `support-bot`), FINOPS_AUTH_URL, FINOPS_INGEST_URL
and FINOPS_HEALER_URL. A block
preceded by ``<!-- fragment: not a full program -->`` is only compiled.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from support import serve

from finops.auth.admin import create_user
from finops.auth.app import create_app as auth_app
from finops.auth.settings import AuthSettings
from finops.cli.stack.ports import free_port
from finops.common.auth.scopes import Role
from finops.common.kafka import read_topic
from finops.common.settings import LOCAL_BROKER_ENV, CommonSettings
from finops.common.topics import AGENT_COST, AGENT_ERROR
from finops.healer.app import create_app as healer_app
from finops.healer.settings import HealerSettings
from finops.ingest.app import create_app as ingest_app
from finops.ingest.settings import IngestSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FRAGMENT = "<!-- fragment: not a full program -->"
BLOCK = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)```", re.DOTALL)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
AGENT = "support-bot"  # the agent the examples report as
PASSWORD = "correct horse battery staple 42"


@dataclass(frozen=True)
class Example:
    where: str
    code: str
    fragment: bool


def examples() -> list[Example]:
    found = []
    for path in DOCS:
        text = path.read_text()
        for match in BLOCK.finditer(text):
            line = text[: match.start("code")].count("\n") + 1
            found.append(
                Example(f"{path.name}:{line}", match["code"], match["before"].strip() == FRAGMENT)
            )
    return found


EXAMPLES = examples()
PROGRAMS = [e for e in EXAMPLES if not e.fragment]


def test_the_docs_hold_full_programs_and_every_block_compiles():
    assert [e.where.split(":")[0] for e in PROGRAMS] == [
        "README.md",
        "events.md",
        "events.md",
        "healer.md",
    ]
    for example in EXAMPLES:
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT if example.fragment else 0
        compile(example.code, example.where, "exec", flags=flags)


@dataclass(frozen=True)
class Platform:
    env: dict[str, str]
    kafka: CommonSettings


async def _api_key_for_agent(http: httpx.AsyncClient, settings: AuthSettings) -> str:
    """A real key of the account `support-bot`, made by an operator as a user would."""
    operator = f"docs-op-{uuid.uuid4().hex[:8]}"
    await create_user(settings, operator, f"{operator}@example.com", PASSWORD, Role("operator"))
    login = await http.post("/api/auth/login", json={"login": operator, "password": PASSWORD})
    token = login.json()["access_token"]
    user = {"username": AGENT, "email": f"{AGENT}@example.com", "password": PASSWORD}
    registered = await http.post("/api/auth/register", json=user)
    if registered.status_code == 201:
        user_id = registered.json()["id"]
    else:  # a database kept from an earlier run
        assert registered.json()["error"]["code"] == "username_taken", registered.text
        connection = await asyncpg.connect(settings.database_url)
        try:
            user_id = str(
                await connection.fetchval("SELECT id FROM users WHERE username=$1", AGENT)
            )
        finally:
            await connection.close()
    key = await http.post(
        "/api/auth/api-keys",
        json={"name": "docs examples", "user_id": user_id},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert key.status_code == 201, key.text
    return str(key.json()["key"])


@pytest.fixture(scope="module")
async def platform(infra, tmp_path_factory) -> AsyncIterator[Platform]:
    # the local broker's settings, as the stack gives its services (LOCAL_BROKER_ENV): with
    # Faust's 60 s session timeout the healer's join waited 30 s on the local broker
    broker = LOCAL_BROKER_ENV if infra.local_broker else {}
    common = {
        **{key.removeprefix("FINOPS_").lower(): value for key, value in broker.items()},
        "database_url": infra.database_url,
        "redis_url": infra.redis_url,
        "kafka_bootstrap": infra.kafka_bootstrap,
        "environment": "test",
    }
    auth_settings = AuthSettings(data_dir=tmp_path_factory.mktemp("docs-auth"), **common)
    auth_port, ingest_port, healer_port = free_port(), free_port(), free_port()
    async with serve(auth_app(auth_settings), auth_port) as auth_url:
        ingest_settings = IngestSettings(
            data_dir=tmp_path_factory.mktemp("docs-ingest"), auth_url=auth_url, **common
        )
        healer_settings = HealerSettings(
            data_dir=tmp_path_factory.mktemp("docs-healer"),
            auth_url=auth_url,
            effectiveness_checkpoint_name=f"docs-healer-{uuid.uuid4().hex[:8]}",
            faust_app_id=f"docs-healer-{uuid.uuid4().hex[:8]}",
            **common,
        )
        async with (
            serve(ingest_app(ingest_settings), ingest_port) as ingest_url,
            serve(healer_app(healer_settings), healer_port) as healer_url,
            httpx.AsyncClient(base_url=auth_url, timeout=30) as http,
        ):
            env = {k: v for k, v in os.environ.items() if not k.startswith("FINOPS_")}
            env.update(
                FINOPS_API_KEY=await _api_key_for_agent(http, auth_settings),
                FINOPS_AUTH_URL=auth_url,
                FINOPS_INGEST_URL=ingest_url,
                FINOPS_HEALER_URL=healer_url,
                # nothing listens here: an example that needs the optimizer fails loudly
                FINOPS_OPTIMIZER_URL=f"http://127.0.0.1:{free_port()}",
            )
            yield Platform(env, CommonSettings(kafka_bootstrap=infra.kafka_bootstrap))


@pytest.mark.parametrize("example", PROGRAMS, ids=[e.where for e in PROGRAMS])
async def test_the_example_runs_as_written_and_its_events_arrive(platform, example):
    code, out, err = await run_program(example.code, platform.env)
    assert code == 0, err
    assert err == ""  # no retry warning, no rejected event
    reported = set(UUID.findall(out))
    assert out.startswith("reported ") and reported
    agents: dict[str, str] = {}

    async def collect(topic: str) -> None:
        # both topics at once, until every reported id is found: a read that stopped at the
        # first 1 s lull missed events on a loaded machine; idle_s now only bounds a miss
        async for record in read_topic(
            platform.kafka, topic, idle_s=20.0, timeout_s=90, until=lambda: reported <= set(agents)
        ):
            try:
                event = json.loads(record.value)
            except ValueError:  # another test's poison record (test_service_apps.py)
                continue
            if isinstance(event, dict) and event.get("id") in reported:
                agents[event["id"]] = event["data"]["agent_id"]

    await asyncio.gather(collect(AGENT_COST.name), collect(AGENT_ERROR.name))
    assert agents == dict.fromkeys(reported, AGENT)


async def run_program(code: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_readme_example_with_a_wrong_key_or_url_fails_at_once_saying_what_to_fix(
    platform,
):
    [readme] = [e for e in PROGRAMS if e.where.startswith("README.md")]
    wrong_key = {**platform.env, "FINOPS_API_KEY": "fo_ak_" + "0" * 43}
    code, out, err = await run_program(readme.code, wrong_key)
    assert (code, out) == (1, "")
    auth_url = platform.env["FINOPS_AUTH_URL"]
    assert err.splitlines()[-1] == (
        f"finops.client.errors.RequestRefused: the auth service at {auth_url} refused the API "
        "key (401 invalid_client: the API key is invalid or revoked); check api_key: it must be "
        "an active key (fo_ak_…) of agent 'support-bot'; 1 event was not delivered"
    )

    wrong_url = {**platform.env, "FINOPS_AUTH_URL": platform.env["FINOPS_INGEST_URL"]}
    code, out, err = await run_program(readme.code, wrong_url)
    assert (code, out) == (1, "")
    assert err.splitlines()[-1].endswith(
        "/api/auth/token answered 404 not_found: Not Found; is auth_url the auth service "
        "(port 8001 on the local stack by default)?; 1 event was not delivered"
    )

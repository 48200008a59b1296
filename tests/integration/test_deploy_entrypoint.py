"""The container image's entrypoint (deploy/entrypoint.sh) runs each of its commands against
real PostgreSQL, Redis and broker, with the environment the image sets (production)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from support import own_database, wait_until

from finops.cli.stack.ports import free_port
from finops.common import migrations
from finops.common.settings import CommonSettings
from finops.common.topic_admin import KafkaUnreachable, missing_topics, wait_for_topics
from finops.common.topics import ALL_TOPICS, TopicSpec

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"


@pytest.fixture
def image_env(infra, tmp_path) -> dict[str, str]:
    """The image's ENV lines (deploy/Dockerfile), on loopback, plus the session's infra."""
    return {
        **os.environ,
        **infra.env(),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONUNBUFFERED": "1",
        "FINOPS_HOST": "127.0.0.1",
        "FINOPS_DATA_DIR": str(tmp_path),
        "FINOPS_ENVIRONMENT": "production",
    }


def _entrypoint(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_create_topics_finds_every_declared_topic_and_creates_none_twice(image_env):
    result = _entrypoint("create-topics", env=image_env)
    assert result.returncode == 0, result.stderr
    assert "topics ready (0 created: none)" in result.stdout


def test_wait_topics_exits_0_when_every_declared_topic_exists(image_env):
    result = _entrypoint("wait-topics", "5", env=image_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "every declared topic exists"


def test_wait_topics_names_the_missing_topics_and_creates_none(image_env):
    never = TopicSpec("finops.never-created.v1", partitions=1, key="none", description="")
    settings = CommonSettings(kafka_bootstrap=image_env["FINOPS_KAFKA_BOOTSTRAP"])
    missing = asyncio.run(
        wait_for_topics(settings, [*ALL_TOPICS, never], timeout_s=0.5, poll_s=0.1)
    )
    assert missing == [never.name]
    assert asyncio.run(missing_topics(settings, [never])) == [never.name]


def test_wait_topics_ends_on_a_broker_that_never_answered_naming_the_bootstrap():
    bootstrap = f"127.0.0.1:{free_port()}"
    settings = CommonSettings(kafka_bootstrap=bootstrap)
    with pytest.raises(KafkaUnreachable) as unreachable:
        asyncio.run(wait_for_topics(settings, ALL_TOPICS[:2], timeout_s=0.5, poll_s=0.1))
    assert f"FINOPS_KAFKA_BOOTSTRAP={bootstrap}" in unreachable.value.message


def test_wait_topics_run_against_a_silent_broker_says_so_in_one_line(image_env):
    bootstrap = f"127.0.0.1:{free_port()}"
    result = _entrypoint("wait-topics", "1", env={**image_env, "FINOPS_KAFKA_BOOTSTRAP": bootstrap})
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"kafka_unreachable: cannot reach Kafka at FINOPS_KAFKA_BOOTSTRAP={bootstrap} ("
    )
    assert result.stderr.count("\n") == 1


def test_wait_topics_refuses_a_wait_that_is_not_more_than_0(image_env):
    result = _entrypoint("wait-topics", "0", env=image_env)
    assert result.returncode == 2
    assert "--wait must be more than 0 seconds, got 0" in result.stderr


@pytest.fixture
async def empty_database(infra) -> AsyncIterator[str]:
    """A database of its own on the test server, with no schema; dropped afterwards."""
    async with own_database(infra.database_url, "wait") as url:
        yield url


async def test_wait_schema_exits_1_until_the_schema_is_at_head(image_env, empty_database):
    env = {**image_env, "FINOPS_DATABASE_URL": empty_database}
    none = await asyncio.to_thread(_entrypoint, "wait-schema", "auth", "0.5", env=env)
    await asyncio.to_thread(migrations.upgrade, empty_database, "0003", ["auth"])
    behind = await asyncio.to_thread(_entrypoint, "wait-schema", "auth", "0.5", env=env)
    await asyncio.to_thread(migrations.upgrade, empty_database, "head", ["auth"])
    at_head = await asyncio.to_thread(_entrypoint, "wait-schema", "auth", "5", env=env)
    assert (none.returncode, behind.returncode, at_head.returncode) == (1, 1, 0)
    head = "0005_users_teams"
    assert f"auth at no schema, head {head}" in " ".join(none.stderr.split())
    assert f"auth at 0003_refresh_tokens_expiry_idx, head {head}" in " ".join(behind.stderr.split())
    assert at_head.stdout.strip() == "schemas at head: auth"


def test_wait_schema_gives_up_at_once_on_a_database_that_does_not_exist(image_env):
    missing = urlunsplit(urlsplit(image_env["FINOPS_DATABASE_URL"])._replace(path="/nowhere"))
    env = {**image_env, "FINOPS_DATABASE_URL": missing}
    result = _entrypoint("wait-schema", "auth", "300", env=env)
    assert result.returncode == 1
    assert 'database: database "nowhere" does not exist' in result.stderr


async def test_a_schema_newer_than_the_code_counts_as_at_head(empty_database):
    await asyncio.to_thread(migrations.upgrade, empty_database, "head", ["auth"])
    newer = await asyncpg.connect(empty_database)
    try:
        await newer.execute("UPDATE alembic_version_auth SET version_num = '0005_from_later'")
    finally:
        await newer.close()
    assert await migrations.schemas_behind(empty_database, ["auth", "healer"]) == [
        migrations.SchemaBehind("healer", (), tuple(migrations.heads("healer")))
    ]


def test_wait_schema_without_a_service_exits_2_with_the_usage(image_env):
    result = _entrypoint("wait-schema", env=image_env)
    assert result.returncode == 2
    assert "wait-schema SERVICE [SECONDS]" in result.stderr


def test_migrate_brings_every_schema_to_head(image_env):
    result = _entrypoint("migrate", env=image_env)
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stdout.split())
    # the test database is at head already ("already at"), or a schema was moved ("to")
    for service in ("auth", "experiments", "optimizer", "healer"):
        head = migrations.heads(service)[0]
        assert f"{service} to {head}" in said or f"{service} already at {head}" in said, said


def test_an_unknown_command_exits_2_with_the_usage(image_env):
    result = _entrypoint("billing", env=image_env)
    assert result.returncode == 2
    assert "usage: finops-service auth|ingest|optimizer|healer|experiments" in result.stderr


def _command_line(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_text().split("\0")


async def test_a_service_command_execs_that_service_until_it_is_ready(image_env):
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        "sh",
        str(ENTRYPOINT),
        "ingest",
        env={**image_env, "FINOPS_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient() as client:
                answer = await client.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                return answer.status_code == 200
        except httpx.HTTPError:
            return False

    try:
        await wait_until(ready, timeout=90, what="ingest's /readyz from the entrypoint")
        # exec: the service itself is the container's process and gets its SIGTERM.
        assert _command_line(process.pid)[1:3] == ["-m", "finops.ingest"]
        async with httpx.AsyncClient() as client:
            schemas = await client.get(f"http://127.0.0.1:{port}/api/schemas", timeout=5)
        assert schemas.status_code == 200
        assert "agent.llm_call" in schemas.json()
    finally:
        process.terminate()
        # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught.
        assert await asyncio.wait_for(process.wait(), timeout=30) == -signal.SIGTERM

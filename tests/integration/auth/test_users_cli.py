"""`finops users create` and `finops keys rotate` against the real database and key folder."""

from __future__ import annotations

import asyncio

import pytest
from auth_helpers import PASSWORD, claims_of, unique_name
from typer.testing import CliRunner

from finops.auth.adapters.keystore import KeyStore
from finops.auth.settings import AuthSettings
from finops.cli.main import app as finops_cli
from finops.common.auth import generate_signing_key

pytestmark = pytest.mark.integration


def finops(*args: str, env: dict[str, str], stdin: str | None = None):
    # CliRunner swaps os.environ while it runs; the command runs its own event loop, so it
    # runs in a worker thread, away from the test's loop.
    return CliRunner().invoke(finops_cli, list(args), input=stdin, env=env)


async def test_users_create_makes_an_admin_who_can_log_in(client, infra):
    username = unique_name("admin")
    result = await asyncio.to_thread(
        finops,
        "users", "create", "--username", username, "--email", f"{username}@example.com",
        "--password-stdin", "--role", "admin",
        env={"FINOPS_DATABASE_URL": infra.database_url},
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"created user {username}" in result.output and "role admin" in result.output
    login = await client.post("/api/auth/login", json={"login": username, "password": PASSWORD})
    assert login.status_code == 200, login.text
    claims = claims_of(login.json()["access_token"])[1]
    assert claims["role"] == "admin"
    assert "users:write" in claims["scope"].split()


async def test_users_create_binds_an_agent_to_its_teams(client, infra):
    username = unique_name("bot")
    result = await asyncio.to_thread(
        finops,
        "users", "create", "--username", username, "--email", f"{username}@example.com",
        "--password-stdin", "--team", "search", "--team", "finance", "--team", "search",
        env={"FINOPS_DATABASE_URL": infra.database_url},
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "role agent, teams finance, search)" in result.output
    login = await client.post("/api/auth/login", json={"login": username, "password": PASSWORD})
    assert login.status_code == 200, login.text
    assert claims_of(login.json()["access_token"])[1]["teams"] == ["finance", "search"]


async def test_users_create_applies_the_registration_rules(infra):
    env = {"FINOPS_DATABASE_URL": infra.database_url}
    weak = await asyncio.to_thread(
        finops, "users", "create", "--username", unique_name(), "--email", "w@example.com",
        "--password", "password", env=env,
    )  # fmt: skip
    assert weak.exit_code == 2  # a bad value (docs/cli.md)
    assert "password" in weak.output and "at least 12" in weak.output
    username = unique_name()
    args = ["users", "create", "--username", username, "--email", f"{username}@example.com"]
    first = await asyncio.to_thread(finops, *args, "--password", PASSWORD, env=env)
    assert first.exit_code == 0, first.output
    second = await asyncio.to_thread(finops, *args, "--password", PASSWORD, env=env)
    assert second.exit_code == 1
    assert "already registered" in second.output
    wrong_role = await asyncio.to_thread(finops, *args, "--role", "root", env=env)
    assert wrong_role.exit_code == 2


async def test_keys_rotate_refuses_keys_that_come_from_settings(tmp_path):
    pem = generate_signing_key().private_pem.decode()
    result = await asyncio.to_thread(
        finops,
        "keys", "rotate",
        env={"FINOPS_DATA_DIR": str(tmp_path), "FINOPS_JWT_PRIVATE_KEY_PEM": pem},
    )  # fmt: skip
    assert result.exit_code == 1
    assert "rotate it there" in result.output


async def test_keys_rotate_refuses_a_folder_auth_never_ran_with(tmp_path):
    result = await asyncio.to_thread(
        finops, "keys", "rotate", env={"FINOPS_DATA_DIR": str(tmp_path)}
    )
    assert result.exit_code == 1
    assert f"no signing key in {(tmp_path / 'keys').resolve()}" in " ".join(result.output.split())
    assert list((tmp_path / "keys").glob("*.pem")) == []


async def test_keys_rotate_keeps_the_previous_key_in_the_folder(tmp_path):
    env = {"FINOPS_DATA_DIR": str(tmp_path)}
    started = KeyStore(AuthSettings(data_dir=tmp_path)).load()  # as auth does when it starts
    first = await asyncio.to_thread(finops, "keys", "rotate", env=env)
    assert first.exit_code == 0, first.output
    second = await asyncio.to_thread(finops, "keys", "rotate", env=env)
    new_kid = second.output.split("new signing key ")[1].split()[0]
    previous_kid = second.output.split("previous key ")[1].split()[0]
    assert new_kid != previous_kid and previous_kid in first.output
    assert f"previous key {started.current.kid}" in first.output
    keys = tmp_path / "keys"
    assert sorted(p.name for p in keys.glob("*.pem")) == ["current.pem", "previous.pem"]
    assert (keys / "current.pem").stat().st_mode & 0o777 == 0o600


async def test_users_deactivate_refuses_the_users_tokens_everywhere(accounts, infra, elsewhere):
    user = await accounts.create()
    assert await elsewhere(user.access_token)
    env = {"FINOPS_DATABASE_URL": infra.database_url, "FINOPS_REDIS_URL": infra.redis_url}
    result = await asyncio.to_thread(finops, "users", "deactivate", user.username, env=env)
    assert result.exit_code == 0, result.output
    assert f"deactivated user {user.username} (id {user.id})" in result.output
    assert not await elsewhere(user.access_token)
    by_id = await asyncio.to_thread(finops, "users", "deactivate", user.id, env=env)
    assert by_id.exit_code == 0, by_id.output  # repeating it is harmless, and says so
    assert f"user {user.username} (id {user.id}) was deactivated already" in by_id.output
    unknown = await asyncio.to_thread(finops, "users", "deactivate", "nobody-at-all", env=env)
    assert unknown.exit_code == 1
    assert "no such user: 'nobody-at-all'" in unknown.output

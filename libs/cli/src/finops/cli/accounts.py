"""Accounts a command makes on a local stack: an operator (written to the database, as
``finops users create`` does, then logged in) and agents with an API key each."""

from __future__ import annotations

import uuid
from typing import Any

import httpx


async def operator_token(stack: Any) -> str:
    """A new operator's access token; ``stack`` has ``database_url`` and ``service_url()``."""
    from finops.auth.admin import create_user
    from finops.auth.settings import AuthSettings
    from finops.common.auth.scopes import Role

    name = "demo-operator-" + uuid.uuid4().hex[:6]
    password = "demo operator " + uuid.uuid4().hex
    await create_user(
        AuthSettings(database_url=stack.database_url),
        name,
        f"{name}@example.com",
        password,
        Role.OPERATOR,
    )
    async with httpx.AsyncClient(base_url=stack.service_url("auth"), timeout=30) as http:
        resp = await http.post("/api/auth/login", json={"login": name, "password": password})
        resp.raise_for_status()
        return str(resp.json()["access_token"])


async def agent_api_key(stack: Any, operator: str, name: str) -> str:
    """Register the agent ``name`` and have the operator make it an API key."""
    password = "demo agent " + uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=stack.service_url("auth"), timeout=30) as http:
        user = await http.post(
            "/api/auth/register",
            json={"username": name, "email": f"{name}@example.com", "password": password},
        )
        user.raise_for_status()
        key = await http.post(
            "/api/auth/api-keys",
            json={"name": f"{name} key", "user_id": user.json()["id"]},
            headers={"Authorization": f"Bearer {operator}"},
        )
        key.raise_for_status()
        return str(key.json()["key"])

"""Helpers of the auth integration tests (imported by conftest and the test modules)."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

PASSWORD = "violet tractor mirage 42"


def asgi_client(app: FastAPI, address: str = "10.9.8.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://auth")


def unique_name(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims_of(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, payload) of a JWT, read without verifying it."""

    def part(segment: str) -> dict[str, Any]:
        return dict(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))

    header, payload, _ = token.split(".")
    return part(header), part(payload)


@dataclass
class Account:
    id: str
    username: str
    email: str
    password: str
    access_token: str = ""
    refresh_token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class Accounts:
    """Creates accounts through the API and promotes them straight in the database."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client

    async def register(self, password: str = PASSWORD) -> Account:
        username = unique_name()
        email = f"{username}@example.com"
        response = await self.client.post(
            "/api/auth/register", json={"username": username, "email": email, "password": password}
        )
        assert response.status_code == 201, response.text
        return Account(response.json()["id"], username, email, password)

    async def login(self, account: Account) -> Account:
        response = await self.client.post(
            "/api/auth/login", json={"login": account.username, "password": account.password}
        )
        assert response.status_code == 200, response.text
        account.access_token = response.json()["access_token"]
        account.refresh_token = response.json()["refresh_token"]
        return account

    async def create(self, role: str = "agent") -> Account:
        account = await self.register()
        if role != "agent":
            await self.app.state.db.execute(
                "UPDATE users SET role = $2 WHERE id = $1", uuid.UUID(account.id), role
            )
        return await self.login(account)


class CommitGate:
    """A unit-of-work factory whose next commit, once armed, stops until the test releases it.

    ``when="before"`` holds the transaction open (its row and advisory locks still held);
    ``when="after"`` holds the use case just after its commit, before it answers. Either way
    the test runs another use case in that gap, so a race is replayed in one exact order.
    """

    def __init__(self, factory, when: str) -> None:
        assert when in ("before", "after")
        self.factory = factory
        self.when = when
        self.armed = False
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    def arm(self) -> None:
        self.armed = True

    def __call__(self) -> _GatedUnitOfWork:
        return _GatedUnitOfWork(self, self.factory())


class _GatedUnitOfWork:
    def __init__(self, gate: CommitGate, inner) -> None:
        self._gate = gate
        self._inner = inner

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    async def __aenter__(self) -> _GatedUnitOfWork:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self._inner.__aexit__(*exc_info)

    async def commit(self) -> None:
        gate = self._gate
        stop, gate.armed = gate.armed, False
        if stop and gate.when == "before":
            gate.reached.set()
            await gate.release.wait()
        await self._inner.commit()
        if stop and gate.when == "after":
            gate.reached.set()
            await gate.release.wait()


async def until_blocked_on_a_lock_or_done(pool, task: asyncio.Task) -> None:
    """Poll until ``task`` finished or a session of the pool's database waits for a lock."""
    query = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with asyncio.timeout(10):
        while not task.done() and not await pool.fetchval(query):
            await asyncio.sleep(0.01)

"""Expired refresh tokens are deleted: by the use case, and periodically by the running app."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from asgi_lifespan import LifespanManager
from support import wait_until

from finops.auth.app import create_app

pytestmark = pytest.mark.integration


async def add_refresh_token(pool, user_id: str, expires_at: datetime) -> uuid.UUID:
    token_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, scope, access_jti,"
        " issued_at, expires_at) VALUES ($1, $2, $3, $4, '', 'jti', $5, $6)",
        token_id,
        uuid.uuid4(),
        uuid.UUID(user_id),
        uuid.uuid4().hex,
        expires_at - timedelta(days=14),
        expires_at,
    )
    return token_id


async def stored(pool, token_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    rows = await pool.fetch("SELECT id FROM refresh_tokens WHERE id = ANY($1::uuid[])", token_ids)
    return {row["id"] for row in rows}


async def test_expired_refresh_tokens_are_pruned_and_live_ones_kept(client, accounts, auth_app):
    user = await accounts.create()
    pool, now = auth_app.state.db, datetime.now(UTC)
    expired = [await add_refresh_token(pool, user.id, now - timedelta(days=d)) for d in (1, 30)]
    live = await add_refresh_token(pool, user.id, now + timedelta(days=1))

    pruned = await auth_app.state.auth_service.prune_expired_refresh_tokens()

    assert pruned >= 2
    assert await stored(pool, [*expired, live]) == {live}
    # The session of the login itself is alive and still refreshes.
    response = await client.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
    assert response.status_code == 200, response.text
    assert await auth_app.state.auth_service.prune_expired_refresh_tokens() == 0


async def test_the_running_service_prunes_on_its_own(make_auth_settings, accounts, auth_app):
    user = await accounts.create()
    pool = auth_app.state.db
    expired = await add_refresh_token(pool, user.id, datetime.now(UTC) - timedelta(hours=1))
    app = create_app(make_auth_settings(refresh_token_prune_seconds=0.2))
    async with LifespanManager(app, startup_timeout=60):
        await wait_until(
            lambda: _gone(pool, expired), 10, "the periodic prune to delete the expired token"
        )


async def _gone(pool, token_id: uuid.UUID) -> bool:
    return not await stored(pool, [token_id])

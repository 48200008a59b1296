"""Assembles the auth service. Nothing connects at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI

from finops.auth.adapters.keystore import ActiveKeys, KeyStore
from finops.auth.adapters.postgres import PostgresUnitOfWork
from finops.auth.adapters.redis_store import (
    RedisLoginThrottle,
    RedisRegistrationThrottle,
    RedisTokenRevocations,
)
from finops.auth.api import ROUTERS
from finops.auth.domain.passwords import PasswordHashing
from finops.auth.service_layer.auth_policy import AuthPolicy
from finops.auth.service_layer.auth_service import AuthService
from finops.auth.service_layer.ports import UnitOfWork
from finops.auth.settings import AuthSettings
from finops.common.health import postgres_check, redis_check
from finops.common.http import create_service_app
from finops.common.lifespan import shared_resources

log = logging.getLogger(__name__)

TAGS = [
    {"name": "auth", "description": "Register, log in, tokens, refresh, logout."},
    {"name": "api keys", "description": "Keys agents exchange for short-lived tokens."},
    {"name": "users", "description": "The caller's account; role changes by admins."},
    {"name": "keys", "description": "Public signing keys (JWKS) for every verifier."},
]


def create_app(settings: AuthSettings | None = None) -> FastAPI:
    settings = settings or AuthSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Key generation and the dummy password hash take CPU time: keep the loop free.
        keys = await asyncio.to_thread(ActiveKeys, KeyStore(settings))
        app.state.keys = keys
        app.state.hashing = await asyncio.to_thread(PasswordHashing, settings.argon2)
        async with shared_resources(
            app,
            settings,
            postgres_pool_size=settings.db_pool_max_size,
            # Auth verifies its own tokens with the keys it holds: no HTTP round trip to itself.
            keys=keys.verification_keys,
        ):
            app.state.auth_service = build_auth_service(
                settings, app.state.db, app.state.redis, app.state.hashing, keys
            )
            chores = [
                asyncio.create_task(_follow_key_rotations(keys, settings.key_reload_seconds)),
                asyncio.create_task(
                    _prune_refresh_tokens(
                        app.state.auth_service, settings.refresh_token_prune_seconds
                    )
                ),
            ]
            try:
                yield
            finally:
                for chore in chores:
                    chore.cancel()
                for chore in chores:
                    with contextlib.suppress(asyncio.CancelledError):
                        await chore

    app = create_service_app(
        settings,
        title="FinOps auth",
        description="Users, tokens (RS256 + JWKS), API keys and the token blocklist.",
        lifespan=lifespan,
        readiness=lambda: {
            "postgres": lambda: postgres_check(app.state.db),
            "redis": lambda: redis_check(app.state.redis),
        },
        max_body_bytes=settings.max_body_bytes,
        openapi_tags=TAGS,
    )
    for router in ROUTERS:
        app.include_router(router)
    app.state.settings = settings
    return app


def build_auth_service(
    settings: AuthSettings,
    pool: asyncpg.Pool,
    redis: Any,
    hashing: PasswordHashing,
    keys: ActiveKeys,
    *,
    uow: Callable[[], UnitOfWork] | None = None,
) -> AuthService:
    """The use cases wired to PostgreSQL, Redis and the active signing key (``uow`` replaces
    the PostgreSQL unit of work, e.g. with one that tests pause at a commit)."""
    return AuthService(
        uow=uow or (lambda: PostgresUnitOfWork(pool)),
        hashing=hashing,
        signer=keys.signer,
        throttle=RedisLoginThrottle(redis, settings.login_failure_window_seconds),
        registrations=RedisRegistrationThrottle(redis, settings.registration_window_seconds),
        revocations=RedisTokenRevocations(
            redis, max(settings.access_token_ttl_seconds, settings.api_key_token_ttl_seconds)
        ),
        policy=AuthPolicy(
            refresh_token_ttl_seconds=settings.refresh_token_ttl_seconds,
            api_key_token_ttl_seconds=settings.api_key_token_ttl_seconds,
            max_failures_per_account=settings.login_max_failures_per_account,
            max_failures_per_address=settings.login_max_failures_per_address,
            registration_open=settings.registration_open,
            max_registrations_per_address=settings.registration_max_per_address,
            registration_hashes_in_flight=settings.registration_hashes_in_flight,
            registration_hash_wait_seconds=settings.registration_hash_wait_seconds,
        ),
    )


async def _follow_key_rotations(keys: ActiveKeys, every_seconds: float) -> None:
    """Pick up `finops keys rotate` (run by another process) without a restart."""
    while True:
        await asyncio.sleep(every_seconds)
        try:
            if await asyncio.to_thread(keys.reload_if_changed):
                log.info("signing keys reloaded", extra={"kid": keys.signer().kid})
        except Exception:  # a half-written key must not stop the watcher; next round retries
            log.exception("reloading the signing keys failed")


async def _prune_refresh_tokens(service: AuthService, every_seconds: float) -> None:
    """Delete expired refresh tokens now and then (the table would otherwise only grow)."""
    while True:
        try:
            pruned = await service.prune_expired_refresh_tokens()
            if pruned:
                log.info("expired refresh tokens deleted", extra={"count": pruned})
        except Exception as exc:  # the database may be away for a while; the next round retries
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                # Cancelled mid-commit, asyncpg's rollback fails with its own error: that is
                # the shutdown's cancellation, and swallowing it would hang the shutdown.
                raise asyncio.CancelledError() from exc
            log.exception("deleting expired refresh tokens failed")
        await asyncio.sleep(every_seconds)

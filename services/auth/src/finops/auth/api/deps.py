"""Dependency aliases of the auth API (``Annotated[..., Depends(...)]``)."""

from __future__ import annotations

import functools
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import Depends, Request, Response
from fastapi.security import OAuth2PasswordBearer

from finops.auth.adapters.postgres import PostgresUserViews
from finops.auth.domain.model import User
from finops.auth.service_layer.auth_service import AuthService
from finops.common.auth import InvalidToken, Principal, authenticate, scope_checker
from finops.common.auth.dependencies import PrincipalDependency
from finops.common.auth.scopes import API_KEYS_WRITE, USERS_WRITE

# The OAuth2 password flow, so the Authorize button of /docs logs in with a username/password.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


# Dependencies are ``async def`` even without awaiting: FastAPI runs plain ``def`` ones in a
# thread pool, and those thread hops cost GET /api/users/me a third of its throughput.


async def get_pool(request: Request) -> asyncpg.Pool:
    return request.app.state.db


async def get_redis(request: Request) -> Any:
    return request.app.state.redis


DbPool = Annotated[asyncpg.Pool, Depends(get_pool)]
RedisClient = Annotated[Any, Depends(get_redis)]


async def get_auth_service(request: Request) -> AuthService:
    """The use cases, assembled once at start-up (see ``app.build_auth_service``)."""
    return request.app.state.auth_service  # type: ignore[no-any-return]


Service = Annotated[AuthService, Depends(get_auth_service)]


async def current_principal(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    return await authenticate(request, token)


async def principal_even_if_revoked(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    """For logout: a second logout with the same token must succeed, not fail as revoked."""
    return await authenticate(request, token, check_revoked=False)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
LoggingOutPrincipal = Annotated[Principal, Depends(principal_even_if_revoked)]


async def current_user(principal: CurrentPrincipal, pool: DbPool) -> User:
    """The caller's account, read straight from PostgreSQL (a read needs no unit of work)."""
    try:
        user_id = UUID(principal.sub)
    except ValueError:
        raise InvalidToken("the access token's subject is not a user id") from None
    user = await PostgresUserViews(pool).user(user_id)
    if user is None or not user.is_active:
        # A token was sent: it is invalid (as a revoked account's), not missing.
        raise InvalidToken("the account behind this token no longer exists or is disabled")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


@functools.cache
def require_scope(scope: str) -> PrincipalDependency:
    return scope_checker(scope, current_principal)


UserAdmin = Annotated[Principal, Depends(require_scope(USERS_WRITE))]
ApiKeyManager = Annotated[Principal, Depends(require_scope(API_KEYS_WRITE))]


async def client_address(request: Request) -> str:
    """The peer address; X-Forwarded-For replaces it only when the peer is one of
    FINOPS_TRUSTED_PROXIES (uvicorn's proxy headers, see ``finops.common.runner``)."""
    return request.client.host if request.client else "unknown"


ClientAddress = Annotated[str, Depends(client_address)]


async def no_store(response: Response) -> None:
    """Answers that carry a credential (a token pair, an API key shown once) must not be kept
    by any cache, as OAuth2 asks of token responses (RFC 6749 5.1)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


NO_STORE = [Depends(no_store)]

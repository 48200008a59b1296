"""FastAPI glue: install a verifier on an app, then depend on ``CurrentPrincipal`` or a scope.

```python
app = create_service_app(settings, ...)
install_verifier(app, TokenVerifier(settings, redis))


@app.post("/api/events")
async def ingest(principal: Annotated[Principal, Depends(require_scope("events:write"))]): ...
```
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from finops.common.auth.errors import InsufficientScope
from finops.common.auth.principal import Principal
from finops.common.auth.verifier import TokenVerifier
from finops.common.errors import NotAuthenticated

PrincipalDependency = Callable[..., Awaitable[Principal]]

_bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="An access token from the auth service (`POST /api/auth/token`).",
)


def install_verifier(app: FastAPI, verifier: TokenVerifier) -> None:
    """Make ``verifier`` the one that ``CurrentPrincipal`` and ``require_scope`` use."""
    app.state.token_verifier = verifier


def installed_verifier(app: Any) -> TokenVerifier:
    verifier = getattr(app.state, "token_verifier", None)
    if verifier is None:
        raise RuntimeError("no token verifier on this app: call install_verifier(app, verifier)")
    return verifier  # type: ignore[no-any-return]


async def authenticate(
    request: Request, token: str | None, *, check_revoked: bool = True
) -> Principal:
    """The principal for a raw bearer token taken from ``request``'s app verifier."""
    if not token:
        raise NotAuthenticated("a bearer access token is required")
    return await installed_verifier(request.app).verify(token, check_revoked=check_revoked)


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    return await authenticate(request, credentials.credentials if credentials else None)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def scope_checker(scope: str, principal_dependency: PrincipalDependency) -> PrincipalDependency:
    """A dependency returning the principal from ``principal_dependency`` if it has ``scope``."""

    # A default, not Annotated: the closure variable cannot be resolved from a string
    # annotation (this module uses postponed evaluation).
    async def check_scope(principal: Principal = Depends(principal_dependency)) -> Principal:
        if not principal.has_scope(scope):
            raise InsufficientScope(scope)
        return principal

    check_scope.__name__ = f"require_scope[{scope}]"
    return check_scope


@functools.cache  # one function per scope, so FastAPI's per-request dependency cache applies
def require_scope(scope: str) -> PrincipalDependency:
    """``Depends(require_scope("events:write"))``: the principal, or 403 insufficient_scope."""
    return scope_checker(scope, current_principal)

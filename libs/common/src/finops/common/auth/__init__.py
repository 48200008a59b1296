"""Shared authentication: verify auth's access tokens in any service.

Tokens are RS256 JWTs signed by the auth service; every service verifies them itself with
the keys from auth's JWKS and checks the Redis blocklist, so auth is not on the hot path.
"""

import importlib
from typing import TYPE_CHECKING, Any

from finops.common.auth.blocklist import (
    blocklist_key,
    blocklist_redis,
    is_revoked,
    revoke,
    revoke_session,
    revoke_subject,
)
from finops.common.auth.errors import InsufficientScope, InvalidToken, TokenRevoked
from finops.common.auth.key_sources import JwksFromUrl, KeySource, StaticKeys
from finops.common.auth.principal import Principal
from finops.common.auth.scopes import ALL_SCOPES, ROLE_SCOPES, Role, scopes_for
from finops.common.auth.tokens import SigningKey, TokenSigner, generate_signing_key
from finops.common.auth.verifier import TokenVerifier

if TYPE_CHECKING:
    from finops.common.auth.dependencies import (
        CurrentPrincipal,
        authenticate,
        current_principal,
        install_verifier,
        installed_verifier,
        require_scope,
        scope_checker,
    )

#: The FastAPI dependencies, imported on first use: the token errors and the scopes stay
#: importable by domain code without loading an HTTP framework.
_HTTP_NAMES = frozenset(
    {
        "CurrentPrincipal",
        "authenticate",
        "current_principal",
        "install_verifier",
        "installed_verifier",
        "require_scope",
        "scope_checker",
    }
)


def __getattr__(name: str) -> Any:
    if name in _HTTP_NAMES:
        return getattr(importlib.import_module("finops.common.auth.dependencies"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALL_SCOPES",
    "ROLE_SCOPES",
    "CurrentPrincipal",
    "InsufficientScope",
    "InvalidToken",
    "JwksFromUrl",
    "KeySource",
    "Principal",
    "Role",
    "SigningKey",
    "StaticKeys",
    "TokenRevoked",
    "TokenSigner",
    "TokenVerifier",
    "authenticate",
    "blocklist_key",
    "blocklist_redis",
    "current_principal",
    "generate_signing_key",
    "install_verifier",
    "installed_verifier",
    "is_revoked",
    "require_scope",
    "revoke",
    "revoke_session",
    "revoke_subject",
    "scope_checker",
    "scopes_for",
]

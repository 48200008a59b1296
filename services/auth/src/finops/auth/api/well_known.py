"""Public keys for verifiers: ``GET /.well-known/jwks.json``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from finops.auth.api.schemas import Jwks

router = APIRouter(tags=["keys"])


@router.get("/.well-known/jwks.json", summary="Public signing keys (current and previous)")
async def jwks(request: Request, response: Response) -> Jwks:
    """Verifiers cache this; after a rotation the previous key stays listed so tokens it
    signed keep verifying until they expire."""
    # As short as the verifiers' own cache: a removed key must not linger in HTTP caches.
    response.headers["Cache-Control"] = "public, max-age=5"
    return Jwks.model_validate(request.app.state.keys.jwks())

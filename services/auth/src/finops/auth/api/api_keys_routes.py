"""API keys: created by operators for agent accounts, exchanged for short-lived tokens."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response, status

from finops.auth.api.deps import NO_STORE, ApiKeyManager, Service
from finops.auth.api.responses import BODY_ERRORS, PROTECTED, errors
from finops.auth.api.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut

router = APIRouter(prefix="/api/auth/api-keys", tags=["api keys"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (operator+, scope api-keys:write)",
    dependencies=NO_STORE,
    responses=errors(*BODY_ERRORS, *PROTECTED, 403, 404),
)
async def create_api_key(
    body: ApiKeyCreate, actor: ApiKeyManager, service: Service
) -> ApiKeyCreated:
    """The key is in this answer only; auth keeps a hash. Exchange it at `POST /api/auth/token`
    with `grant_type=client_credentials&client_secret=<key>`."""
    key, plaintext = await service.create_api_key(actor, body.name, body.user_id)
    return ApiKeyCreated(**ApiKeyOut.of(key).model_dump(), key=plaintext)


@router.get(
    "",
    summary="API keys you created or own (all keys for admins)",
    responses=errors(*PROTECTED, 403),
)
async def list_api_keys(actor: ApiKeyManager, service: Service) -> list[ApiKeyOut]:
    return [ApiKeyOut.of(key) for key in await service.list_api_keys(actor)]


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Revoke an API key and the tokens issued for it",
    responses=errors(422, *PROTECTED, 403, 404),
)
async def revoke_api_key(key_id: UUID, actor: ApiKeyManager, service: Service) -> Response:
    await service.revoke_api_key(actor, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

"""The caller's account, and role changes by admins."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from finops.auth.api.deps import CurrentUser, Service, UserAdmin
from finops.auth.api.responses import BODY_ERRORS, PROTECTED, errors
from finops.auth.api.schemas import RoleChange, UserOut

router = APIRouter(prefix="/api/users", tags=["users"])


@router.get("/me", summary="The account the token belongs to", responses=errors(*PROTECTED))
async def me(user: CurrentUser) -> UserOut:
    return UserOut.of(user)


@router.patch(
    "/{user_id}/role",
    summary="Change a user's role (admin, scope users:write)",
    responses=errors(*BODY_ERRORS, *PROTECTED, 403, 404, 409),
)
async def change_role(
    user_id: UUID, body: RoleChange, admin: UserAdmin, service: Service
) -> UserOut:
    """Ends the user's sessions: tokens carry their scopes, and none may keep the old ones."""
    return UserOut.of(await service.change_role(admin, user_id, body.role))

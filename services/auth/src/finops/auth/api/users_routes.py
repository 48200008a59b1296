"""The caller's account; role changes, team bindings and deactivation by admins."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from finops.auth.adapters.postgres import PostgresUserViews
from finops.auth.api.deps import CurrentUser, DbPool, Service, UserAdmin
from finops.auth.api.responses import BODY_ERRORS, PROTECTED, errors
from finops.auth.api.schemas import AdminUserOut, RoleChange, TeamsChange, UserOut

router = APIRouter(prefix="/api/users", tags=["users"])


@router.get("/me", summary="The account the token belongs to", responses=errors(*PROTECTED))
async def me(user: CurrentUser) -> UserOut:
    return UserOut.of(user)


@router.get(
    "",
    summary="Every user, with warnings (admin, scope users:write)",
    responses=errors(422, *PROTECTED, 403),
)
async def list_users(
    admin: UserAdmin,
    pool: DbPool,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1, description="up to PostgreSQL's bigint")] = 0,
) -> list[AdminUserOut]:
    """Oldest first, `limit` per page from `offset`. `warnings` flags what an admin should
    look at, such as an email address whose letters mix lookalike scripts ("alice" spelled
    with a Cyrillic "a", U+0430), which may imitate another account."""
    return [AdminUserOut.of(user) for user in await PostgresUserViews(pool).users(limit, offset)]


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


@router.put(
    "/{user_id}/teams",
    summary="Bind a user to its teams, or unbind it (admin, scope users:write)",
    responses=errors(*BODY_ERRORS, *PROTECTED, 403, 404),
)
async def change_teams(
    user_id: UUID, body: TeamsChange, admin: UserAdmin, service: Service
) -> UserOut:
    """A bound account's events and recommendations may name only these teams (or none):
    ingest and the optimizer answer 403 `team_mismatch` for another one. `null` unbinds it
    (any team, as an account never bound). Ends the user's sessions: tokens carry their
    teams, and none may keep the old ones."""
    return UserOut.of(await service.change_teams(admin, user_id, body.teams))


@router.post(
    "/{user_id}/deactivate",
    summary="Deactivate a user (admin, scope users:write)",
    responses=errors(422, *PROTECTED, 403, 404, 409),
)
async def deactivate(user_id: UUID, admin: UserAdmin, service: Service) -> UserOut:
    """Every access token, refresh token and API key of the user is refused on every service
    from this answer on, and the password no longer logs in. Repeating it is harmless; the
    last active admin cannot be deactivated (409 `last_admin`)."""
    return UserOut.of(await service.deactivate_user(user_id))

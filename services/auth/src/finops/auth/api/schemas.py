"""Request and response bodies of the auth API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
)

from finops.auth.domain.model import ApiKey, User
from finops.auth.domain.policy import (
    EMAIL_MAX_CHARS,
    PASSWORD_MAX_CHARS,
    PASSWORD_MIN_CHARS,
    email_warnings,
    has_forbidden_characters,
)
from finops.common.auth.scopes import Role


def _refuse_forbidden_characters(value: Any) -> Any:
    # Before any other validation: NUL or a lone surrogate would break hashing or PostgreSQL.
    if isinstance(value, str) and has_forbidden_characters(value):
        raise ValueError("control characters and unpaired surrogates are not allowed")
    return value


Clean = BeforeValidator(_refuse_forbidden_characters)
SafeText = Annotated[str, Clean]
Username = Annotated[
    str,
    Field(min_length=3, max_length=32, pattern=r"^[a-z0-9_.-]+$", examples=["build-agent-7"]),
    Clean,
]
Email = Annotated[EmailStr, Field(max_length=EMAIL_MAX_CHARS, examples=["ops@example.com"]), Clean]
NewPassword = Annotated[
    str,
    Field(
        min_length=PASSWORD_MIN_CHARS,
        max_length=PASSWORD_MAX_CHARS,
        examples=["a long passphrase of yours"],
    ),
    Clean,
]
# Login accepts what registration accepts, plus legacy passwords up to a sane bound.
LoginPassword = Annotated[str, Field(min_length=1, max_length=1024), Clean]
LoginName = Annotated[
    str, Field(min_length=1, max_length=EMAIL_MAX_CHARS, examples=["build-agent-7"]), Clean
]
OpaqueToken = Annotated[str, Field(min_length=1, max_length=512), Clean]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterRequest(_Strict):
    username: Username
    email: Email
    password: NewPassword


class LoginRequest(_Strict):
    login: LoginName = Field(description="username or email address")
    password: LoginPassword
    scope: Annotated[str, Field(max_length=1024), Clean] | None = Field(
        None, description="space-separated subset of the account's scopes (default: all)"
    )


class TokenForm(BaseModel):
    """The OAuth2 token request (``application/x-www-form-urlencoded``)."""

    grant_type: Annotated[str, Field(max_length=64), Clean] | None = Field(
        None,
        description="password (default), client_credentials (API key) or refresh_token",
    )
    username: Annotated[str, Field(max_length=EMAIL_MAX_CHARS), Clean] | None = None
    password: Annotated[str, Field(max_length=1024), Clean] | None = None
    scope: Annotated[str, Field(max_length=1024), Clean] = ""
    client_id: Annotated[str, Field(max_length=256), Clean] | None = None
    client_secret: Annotated[str, Field(max_length=512), Clean] | None = Field(
        None, description="the API key, for grant_type=client_credentials"
    )
    refresh_token: Annotated[str, Field(max_length=512), Clean] | None = None


class RefreshRequest(_Strict):
    refresh_token: OpaqueToken


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (OAuth2's token type, not a secret)
    expires_in: int = Field(description="seconds until the access token expires")
    refresh_token: str | None = Field(
        None, description="absent for client_credentials; rotates on every refresh"
    )
    scope: str = Field(description="space-separated scopes the access token carries")


class UserOut(BaseModel):
    id: UUID
    username: str
    email: str
    role: Role
    is_active: bool = Field(description="false once an admin deactivated the account")
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            username=user.username,
            email=user.email,
            role=user.role,
            is_active=user.is_active,
            created_at=user.created_at,
        )


class AccountWarning(BaseModel):
    code: str = Field(description="email_mixed_scripts: a part mixes lookalike scripts")
    part: str = Field(description="the part of the address it is about")
    scripts: list[str]
    message: str


class AdminUserOut(UserOut):
    """A user as admins list them: with warnings such as a lookalike email address."""

    warnings: list[AccountWarning]

    @classmethod
    def of(cls, user: User) -> AdminUserOut:
        return cls(
            **UserOut.of(user).model_dump(),
            warnings=[AccountWarning(**w) for w in email_warnings(user.email)],
        )


class RoleChange(_Strict):
    role: Role


class ApiKeyCreate(_Strict):
    name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), Clean
    ]
    user_id: UUID | None = Field(
        None, description="the account the key acts as (default: yourself), e.g. an agent"
    )


class ApiKeyOut(BaseModel):
    id: UUID
    user_id: UUID
    created_by: UUID | None
    name: str
    prefix: str = Field(description="the key's first characters, to recognise it")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyOut:
        return cls(
            id=key.id,
            user_id=key.user_id,
            created_by=key.created_by,
            name=key.name,
            prefix=key.prefix,
            created_at=key.created_at,
            last_used_at=key.last_used_at,
            revoked_at=key.revoked_at,
        )


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the API key itself; shown this once, store it now")


class Jwk(BaseModel):
    kty: Literal["RSA"]
    kid: str
    use: Literal["sig"]
    alg: Literal["RS256"]
    n: str
    e: str


class Jwks(BaseModel):
    keys: list[Jwk]

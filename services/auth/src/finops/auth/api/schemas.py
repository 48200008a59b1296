"""Request and response bodies of the auth API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from finops.auth.domain.model import ApiKey, User
from finops.auth.domain.policy import (
    EMAIL_MAX_CHARS,
    PASSWORD_MAX_CHARS,
    PASSWORD_MIN_CHARS,
    account_problems,
    email_warnings,
    has_forbidden_characters,
)
from finops.auth.domain.teams import MAX_TEAMS, TEAM_MAX_CHARS
from finops.common.auth.scopes import Role


def _refuse_forbidden_characters(value: Any) -> Any:
    # Before any other validation: NUL or a lone surrogate would break hashing or PostgreSQL.
    if isinstance(value, str) and has_forbidden_characters(value):
        raise ValueError("control characters and unpaired surrogates are not allowed")
    return value


Clean = BeforeValidator(_refuse_forbidden_characters)
SafeText = Annotated[str, Clean]
# A new account's fields are only typed here: their rules (format, length, characters, the
# password policy) are the domain's (``account_problems``), so that one answer lists every
# broken rule. The OpenAPI document still shows the rules.
Username = Annotated[
    str,
    Field(
        json_schema_extra={"minLength": 3, "maxLength": 32, "pattern": r"^[a-z0-9_.-]+$"},
        examples=["build-agent-7"],
    ),
]
Email = Annotated[
    str,
    Field(
        json_schema_extra={"format": "email", "maxLength": EMAIL_MAX_CHARS},
        examples=["ops@example.com"],
    ),
]
NewPassword = Annotated[
    str,
    Field(
        json_schema_extra={"minLength": PASSWORD_MIN_CHARS, "maxLength": PASSWORD_MAX_CHARS},
        examples=["a long passphrase of yours"],
    ),
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
    """A new account. Every rule it breaks (username format, email, password policy, or a
    field missing) is reported in one answer, one entry per field."""

    username: Username
    email: Email
    password: NewPassword

    @model_validator(mode="wrap")
    @classmethod
    def _with_the_rules_the_other_fields_break(
        cls, data: Any, handler: ModelWrapValidatorHandler[RegisterRequest]
    ) -> RegisterRequest:
        """A field missing or not a string, listed with the rules the other fields break:
        one answer still reports every problem, one entry per field."""
        try:
            return handler(data)
        except ValidationError as invalid:
            if not isinstance(data, dict):
                raise
            shape = invalid.errors()
            unusable = {error["loc"][0] for error in shape if error["loc"]}
            values = {
                name: value if name not in unusable and isinstance(value, str) else None
                for name in ("username", "email", "password")
                for value in [data.get(name)]
            }
            rules = account_problems(**values)
            line_errors = [_line_error(e["type"], e["msg"], e["loc"], e["input"]) for e in shape]
            line_errors += [
                _line_error(p["type"], p["message"], (p["field"],), data.get(p["field"]))
                for p in rules
            ]
            raise ValidationError.from_exception_data(invalid.title, line_errors) from None


def _line_error(kind: str, message: str, loc: tuple[Any, ...], value: Any) -> InitErrorDetails:
    # The message goes in the context: a template is formatted, and messages hold braces.
    error = PydanticCustomError(kind, "{message}", {"message": message})
    return InitErrorDetails(type=error, loc=loc, input=value)


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
    teams: list[str] | None = Field(
        description="the teams its events and recommendations may name, sorted; null: any "
        "team (not bound)"
    )

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            username=user.username,
            email=user.email,
            role=user.role,
            is_active=user.is_active,
            created_at=user.created_at,
            teams=None if user.teams is None else sorted(user.teams),
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


# Each name's rules are the domain's (``team_problems``), so one answer lists every bad name.
TeamName = Annotated[
    str,
    Field(json_schema_extra={"minLength": 1, "maxLength": TEAM_MAX_CHARS}, examples=["finance"]),
    Clean,
]


class TeamsChange(_Strict):
    teams: list[TeamName] | None = Field(
        description=f"the team names (at most {MAX_TEAMS} distinct; duplicates removed) the "
        "account's events and recommendations may name; [] none; null any (unbound)",
    )


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

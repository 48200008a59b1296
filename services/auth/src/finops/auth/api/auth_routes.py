"""Registration, login, token exchange, refresh and logout."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Response, status

from finops.auth.api.deps import NO_STORE, ClientAddress, LoggingOutPrincipal, Service
from finops.auth.api.responses import (
    BODY_ERRORS,
    FORM_ERRORS,
    LOGIN_THROTTLING,
    PROTECTED,
    REGISTRATION_CLOSED,
    REGISTRATION_THROTTLING,
    errors,
)
from finops.auth.api.schemas import (
    LoginRequest,
    RefreshRequest,
    RegisterRequest,
    TokenForm,
    TokenResponse,
    UserOut,
)
from finops.auth.domain.errors import MissingParameter, UnsupportedGrantType
from finops.auth.domain.model import TokenPair

router = APIRouter(prefix="/api/auth", tags=["auth"])


def _token_response(pair: TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
        scope=pair.scope,
    )


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    summary="Create an agent account",
    responses=errors(
        *BODY_ERRORS, 409, throttling=REGISTRATION_THROTTLING, own=(REGISTRATION_CLOSED,)
    ),
)
async def register(body: RegisterRequest, service: Service, address: ClientAddress) -> UserOut:
    """Public registration always creates role `agent`; admins change roles later. With
    `FINOPS_REGISTRATION_OPEN=false` it is closed: 403 `registration_closed`. Each
    client address may start `FINOPS_REGISTRATION_MAX_PER_ADDRESS` registrations per
    `FINOPS_REGISTRATION_WINDOW_SECONDS` (429 `too_many_registrations` beyond, with
    `Retry-After`); 429 `registration_busy` says the service is hashing as many passwords
    for registrations as it may at once."""
    user = await service.register(
        body.username, str(body.email), body.password, client_address=address
    )
    return UserOut.of(user)


@router.post(
    "/login",
    summary="Log in with username or email and password",
    dependencies=NO_STORE,
    responses=errors(*BODY_ERRORS, 401, throttling=LOGIN_THROTTLING),
)
async def login(body: LoginRequest, service: Service, address: ClientAddress) -> TokenResponse:
    pair = await service.login(body.login, body.password, client_address=address, scope=body.scope)
    return _token_response(pair)


@router.post(
    "/token",
    summary="OAuth2 token endpoint (password, client_credentials, refresh_token)",
    dependencies=NO_STORE,
    responses=errors(*FORM_ERRORS, 401, form=True, throttling=LOGIN_THROTTLING),
)
async def token(
    form: Annotated[TokenForm, Form()], service: Service, address: ClientAddress
) -> TokenResponse:
    """Form-encoded (`application/x-www-form-urlencoded`, as OAuth2 asks; any other body,
    JSON included, is refused with 415 `unsupported_media_type`). `grant_type=password` (the
    default) takes `username` and `password`; `client_credentials` takes an API key as
    `client_secret`; `refresh_token` takes `refresh_token`. `scope` narrows the token to a
    subset of the account's scopes."""
    grant = form.grant_type or "password"
    if grant == "password":
        if not form.username:
            raise MissingParameter("username")
        if not form.password:
            raise MissingParameter("password")
        pair = await service.login(
            form.username, form.password, client_address=address, scope=form.scope
        )
    elif grant == "client_credentials":
        if not form.client_secret:
            raise MissingParameter("client_secret")
        pair = await service.exchange_api_key(form.client_secret, form.scope)
    elif grant == "refresh_token":
        if not form.refresh_token:
            raise MissingParameter("refresh_token")
        pair = await service.refresh(form.refresh_token, form.scope)
    else:
        raise UnsupportedGrantType()
    return _token_response(pair)


@router.post(
    "/refresh",
    summary="Exchange a refresh token for a new token pair",
    dependencies=NO_STORE,
    responses=errors(*BODY_ERRORS, 401),
)
async def refresh(body: RefreshRequest, service: Service) -> TokenResponse:
    """The refresh token rotates: the one sent is spent. Sending a spent one again revokes
    the whole session (every token descended from the same login)."""
    return _token_response(await service.refresh(body.refresh_token))


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Revoke this access token and its session",
    responses=errors(*PROTECTED),
)
async def logout(principal: LoggingOutPrincipal, service: Service) -> Response:
    """Every service refuses the token from now on. Calling it again is harmless."""
    await service.logout(principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

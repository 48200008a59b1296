"""Property-based run over the auth OpenAPI: no 5xx, and every answer matches the schema.

schemathesis drives the ASGI app in-process (its own event loop thread runs the lifespan),
against the session's real PostgreSQL and Redis. The schema is read from an app built at
import time (building one connects to nothing); the calls go to an app configured for the
session's infrastructure, passed per call. (``schemathesis.pytest.from_fixture`` would be
the natural loader, but it does not work with pytest 9 yet.) Protected operations get a fresh admin
token per case, so logout in one case does not lock the others out.
"""

from __future__ import annotations

import asyncpg
import pytest
import schemathesis
from auth_helpers import PASSWORD, bearer, unique_name
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from finops.auth.adapters.keystore import ActiveKeys, KeyStore
from finops.auth.adapters.postgres import PostgresUnitOfWork
from finops.auth.app import create_app
from finops.auth.domain.passwords import PasswordHashing
from finops.auth.service_layer.auth_service import register_user
from finops.auth.settings import AuthSettings
from finops.common.auth.scopes import ALL_SCOPES, Role

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]


class AdminTokens:
    def __init__(self, keys: ActiveKeys, user_id: str, username: str) -> None:
        self.keys, self.user_id, self.username = keys, user_id, username

    def fresh(self) -> str:
        issued = self.keys.signer().issue(
            subject=self.user_id, username=self.username, role="admin", scopes=ALL_SCOPES
        )
        return issued.token


@pytest.fixture(scope="module")
async def admin_tokens(make_auth_settings) -> AdminTokens:
    settings = make_auth_settings()
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        username = unique_name("fuzzadmin")
        user = await register_user(
            PostgresUnitOfWork(pool),
            PasswordHashing(settings.argon2),
            username,
            f"{username}@example.com",
            PASSWORD,
            Role.ADMIN,
        )
    finally:
        await pool.close()
    return AdminTokens(ActiveKeys(KeyStore(settings)), str(user.id), username)


@pytest.fixture(scope="module")
def fuzzed_app(make_auth_settings):
    app = create_app(make_auth_settings())
    yield app
    asgi.shutdown_lifespans()  # ends the lifespan schemathesis started for the app


schema = schemathesis.openapi.from_dict(create_app(AuthSettings(environment="test")).openapi())


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_server_errors_and_no_schema_violations(case, fuzzed_app, admin_tokens):
    generated = {name.lower() for name in case.headers or {}}
    # Keep generated credentials when there are some (they are fuzzed too); else be admin.
    headers = None if "authorization" in generated else bearer(admin_tokens.fresh())
    case.call_and_validate(headers=headers, checks=CHECKS, app=fuzzed_app)

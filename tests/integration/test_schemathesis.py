"""Property-based run over every service's OpenAPI: no 5xx, and every answer matches the schema.

Each service runs in-process over ASGI on the session's real PostgreSQL, Redis and broker;
schemathesis starts its lifespan on its own event-loop thread. Every operation gets valid
and invalid generated requests, a bounded number of each, so the whole run stays within
about a minute and a half on two cores. Protected operations get a fresh admin token per
request in place of generated credentials (logout in one request must not lock the others
out), except when the credentials are what a negative case mutates: those must be refused.
"""

from __future__ import annotations

import asyncio
import importlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support import TokenFactory

from finops.common.auth import TokenVerifier
from finops.common.datastores import redis_client
from finops.common.settings import LOCAL_BROKER_ENV

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
#: generated requests per operation and mode: enough to reach every status an operation has,
#: few enough that the five services together take about a minute and a half on two cores.
EXAMPLES = 20
SERVICES = ["auth", "ingest", "optimizer", "healer", "experiments"]

Tokens = Callable[[], str]


def _settings(service: str, infra: Any, data_dir: Path) -> Any:
    module = importlib.import_module(f"finops.{service}.settings")
    settings_class = getattr(module, f"{service.capitalize()}Settings")
    broker = LOCAL_BROKER_ENV if infra.local_broker else {}
    values: dict[str, Any] = {
        **{key.removeprefix("FINOPS_").lower(): value for key, value in broker.items()},
        "database_url": infra.database_url,
        "redis_url": infra.redis_url,
        "kafka_bootstrap": infra.kafka_bootstrap,
        "data_dir": data_dir,
        "environment": "test",
    }
    tag = uuid.uuid4().hex[:8]
    if service == "optimizer":
        values.update(consumer_group=f"fuzz-{tag}", checkpoint_name=f"fuzz-{tag}")
    if service in ("healer", "experiments"):
        values.update(faust_app_id=f"fuzz-{service}-{tag}")  # a Faust group of its own
    return settings_class(**values)


async def _auth_admin_tokens(settings: Any) -> Tokens:
    """Tokens of a real admin account, signed with the auth service's own key."""
    from finops.auth.adapters.keystore import ActiveKeys, KeyStore
    from finops.auth.adapters.postgres import PostgresUnitOfWork
    from finops.auth.domain.passwords import PasswordHashing
    from finops.auth.service_layer.accounts import register_user
    from finops.common.auth.scopes import ALL_SCOPES, Role

    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        username = f"fuzzadmin{uuid.uuid4().hex[:12]}"
        user = await register_user(
            PostgresUnitOfWork(pool),
            PasswordHashing(settings.argon2),
            username,
            f"{username}@example.com",
            "violet tractor mirage 42",
            Role.ADMIN,
        )
    finally:
        await pool.close()
    keys = ActiveKeys(KeyStore(settings))

    def fresh() -> str:
        return (
            keys.signer()
            .issue(subject=str(user.id), username=username, role="admin", scopes=ALL_SCOPES)
            .token
        )

    return fresh


@pytest.fixture(params=SERVICES)
def service_under_fuzz(
    request: pytest.FixtureRequest, infra: Any, tmp_path: Path
) -> Iterator[tuple[FastAPI, Tokens]]:
    service = request.param
    settings = _settings(service, infra, tmp_path)
    create_app = importlib.import_module(f"finops.{service}.app").create_app
    if service == "auth":
        app = create_app(settings)
        tokens = asyncio.run(_auth_admin_tokens(settings))
    else:
        # Other services verify tokens against auth's JWKS; here against test keys instead.
        factory = TokenFactory(settings)
        app = create_app(
            settings, verifier=TokenVerifier(settings, redis_client(settings), factory.keys)
        )

        def tokens() -> str:
            return factory.token("fuzz-admin", role="admin")

    try:
        yield app, tokens
    finally:
        asgi.shutdown_lifespans()  # ends the lifespan schemathesis started for the app


def test_no_server_errors_and_no_schema_violations(service_under_fuzz) -> None:
    app, tokens = service_under_fuzz
    schema = schemathesis.openapi.from_dict(app.openapi())
    # Refusing invalid data with 413 is right where the invalid part is the size: ingest's
    # `batch_too_large` (a batch over maxItems), documented on the route.
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        try:
            _fuzz(operation, app, tokens)
        except Exception as exc:  # one operation's failure must not hide the others'
            failures[operation.label] = f"{type(exc).__name__}: {exc}"
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())


def _fuzz(operation: Any, app: FastAPI, tokens: Tokens) -> None:
    strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
        GenerationMode.NEGATIVE
    )

    @settings(
        max_examples=2 * EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        header = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
        if header is not None and header.mode == GenerationMode.NEGATIVE:
            headers = None  # the credentials are what is fuzzed: they must be refused
        else:  # a real token in place of a generated one, so the request gets past auth
            headers = {"Authorization": f"Bearer {tokens()}"}
        case.call_and_validate(headers=headers, checks=CHECKS, app=app)

    run()

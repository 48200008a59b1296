"""A healer app on the test session's infrastructure, tokens for it, and a look at what its
classifier decides (``from healer_helpers import ...``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from support import TokenFactory

from finops.common.auth import TokenVerifier
from finops.common.auth.blocklist import blocklist_redis
from finops.common.provider_errors.taxonomy import ErrorKind, ProviderError
from finops.healer.app import create_app
from finops.healer.settings import HealerSettings

TOKENS = TokenFactory()


@asynccontextmanager
async def healer(settings: HealerSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings, verifier=TokenVerifier(settings, blocklist_redis(settings.redis_url), TOKENS.keys)
    )
    async with LifespanManager(app, startup_timeout=90, shutdown_timeout=60):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://healer"
        ) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def settings_for(infra: Any, data_dir: Any) -> HealerSettings:
    with pytest.MonkeyPatch.context() as env:
        for name, value in infra.env().items():
            env.setenv(name, value)
        # a Faust group of its own, as the labs have (circuit_lab.py)
        return HealerSettings(
            data_dir=data_dir,
            label_refresh_interval_s=0.2,
            faust_app_id=f"finops-healer-{uuid.uuid4().hex[:8]}",
        )


def auth(role: str = "operator") -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS.token(f'{role}-1', role=role)}"}


def kind_of(client: httpx.AsyncClient, message: str, status: int | None = None) -> ErrorKind:
    classifier = client.app.state.classifier  # type: ignore[attr-defined]
    return classifier.classify(ProviderError(message=message, status=status)).kind  # type: ignore[no-any-return]

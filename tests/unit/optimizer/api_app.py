"""The optimizer's HTTP layer on an in-memory engine, for API unit tests.

Checkpoints go nowhere but are counted; tokens are verified for real (RS256) against a
blocklist that holds nothing.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from support import EmptyBlocklist, TokenFactory

from finops.common.auth import TokenVerifier, install_verifier
from finops.common.circuits import CircuitTable
from finops.common.http import create_service_app
from finops.common.settings import CommonSettings
from finops.optimizer.api.routes import router
from finops.optimizer.domain.engine import OptimizerEngine
from finops.optimizer.service_layer.commands import OperatorChange
from finops.optimizer.settings import OptimizerSettings


class InMemoryIntake:
    def __init__(self) -> None:
        self.engine = OptimizerEngine()
        self.checkpoints = 0

    async def checkpoint(self) -> None:
        self.checkpoints += 1

    def configured(self) -> OptimizerEngine:
        return self.engine

    async def apply(self, change: OperatorChange) -> Any:
        result = change.apply(self.engine)
        await self.checkpoint()
        return result


class KeptLog:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def record(self, recommendation: dict[str, Any]) -> None:
        self.records.append(recommendation)


def operator_client() -> TestClient:
    """A client of the optimizer API with an operator's token; the app's state is in memory."""
    settings = CommonSettings(service_name="optimizer")
    app = create_service_app(settings, title="optimizer", description="test")
    app.include_router(router)
    app.state.intake = app.state.changes = InMemoryIntake()
    app.state.reclog = KeptLog()
    app.state.circuits = CircuitTable()
    app.state.settings = OptimizerSettings()
    tokens = TokenFactory(settings)
    app.state.tokens = tokens  # for a test that needs another caller's token
    install_verifier(app, TokenVerifier(settings, EmptyBlocklist(), tokens.keys))
    headers = {"Authorization": f"Bearer {tokens.token('operator-1', role='operator')}"}
    return TestClient(app, headers=headers, raise_server_exceptions=False)

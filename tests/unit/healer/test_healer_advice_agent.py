"""``POST /api/healing/advice`` speaks for the caller only: an ``agent_id`` that is not the
token's own (username or user id) needs ``events:write:any``, as for events at ingest, or the
answer is 403 ``agent_mismatch`` and no advice is published on ``finops.healing.v1``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support import EmptyBlocklist, TokenFactory, agent_mismatch_error

from finops.common.auth import TokenVerifier, install_verifier
from finops.common.settings import CommonSettings
from finops.healer.adapters.catalog import catalog_from_prices
from finops.healer.app import create_app
from finops.healer.domain.advice import Advice, Advisor, NoBreakers
from finops.healer.domain.classify import ErrorClassifier
from finops.healer.domain.healing_stats import HealingLedger
from finops.healer.settings import HealerSettings

TOKENS = TokenFactory(CommonSettings())
AGENT_SUB = "7a1c2a52-0b7e-4f7e-9d54-3f0b7b9e2c11"


class RecordedLog:
    """The advice log: what would go on finops.healing.v1, as (agent_id, task_type)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []

    async def publish(self, advice: Advice, task_type: str) -> None:
        self.published.append((advice.agent_id, task_type))


@pytest.fixture
def healer() -> tuple[TestClient, RecordedLog]:
    app = create_app()  # no lifespan: the advice's collaborators are set here
    install_verifier(app, TokenVerifier(CommonSettings(), EmptyBlocklist(), TOKENS.keys))
    log = RecordedLog()
    app.state.classifier = ErrorClassifier()
    app.state.advisor = Advisor(
        catalog_from_prices(HealerSettings().fallback_models), NoBreakers(), HealingLedger().learner
    )
    app.state.healing_log = log
    return TestClient(app, raise_server_exceptions=False), log


def ask(client: TestClient, token: str, agent_id: str | None) -> Any:
    body: dict[str, Any] = {
        "task_type": "summarize",
        "provider": "openai",
        "model": "gpt-4o",
        "error": {"message": "rate limit exceeded", "status_code": 429},
    }
    if agent_id is not None:
        body["agent_id"] = agent_id
    return client.post(
        "/api/healing/advice", json=body, headers={"Authorization": f"Bearer {token}"}
    )


def test_an_agent_cannot_get_advice_in_another_agents_name(healer) -> None:
    client, log = healer
    token = TOKENS.token("agent-a", role="agent", subject=AGENT_SUB)
    answer = ask(client, token, "someone-else")
    assert (answer.status_code, answer.json()["error"]) == (
        403,
        agent_mismatch_error("someone-else"),
    )
    assert log.published == []


def test_an_agent_gets_advice_in_its_own_name_by_username_user_id_or_default(healer) -> None:
    client, log = healer
    token = TOKENS.token("agent-a", role="agent", subject=AGENT_SUB)
    statuses = [ask(client, token, agent_id).status_code for agent_id in ("agent-a", AGENT_SUB)]
    statuses.append(ask(client, token, None).status_code)
    assert statuses == [200, 200, 200]
    # by its user id too, the advice is recorded under its username: one name per agent
    assert log.published == [("agent-a", "summarize")] * 3


def test_a_token_with_events_write_any_may_ask_for_any_agent(healer) -> None:
    client, log = healer
    admin = TOKENS.token("ops", role="admin")  # admins hold events:write:any
    assert ask(client, admin, "someone-else").status_code == 200
    assert log.published == [("someone-else", "summarize")]


def test_a_retry_after_date_without_a_date_header_is_waited_for(healer) -> None:
    # read against the time of the advice: it was ignored, and a 0.3 s retry advised
    client, _ = healer
    token = TOKENS.token("agent-a", role="agent", subject=AGENT_SUB)
    later = datetime.now(UTC) + timedelta(hours=2)
    body = {
        "task_type": "summarize",
        "provider": "openai",
        "model": "gpt-4o",
        "error": {
            "message": "rate limit exceeded",
            "status_code": 429,
            "headers": {"retry-after": format_datetime(later, usegmt=True)},
        },
    }
    answer = client.post(
        "/api/healing/advice", json=body, headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert answer["remedy"]["action"] == "wait"
    # two hours, less the second the date format drops and the time the request took
    assert 7_190_000 <= answer["remedy"]["delay_ms"] <= 7_200_000 * 1.25

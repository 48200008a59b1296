"""One name per agent: a caller naming itself by its user id is recorded by its username."""

from __future__ import annotations

from finops.common.auth.principal import Principal
from finops.common.auth.scopes import EVENTS_WRITE_ANY


def test_the_callers_user_id_is_named_by_its_username_any_other_id_as_given():
    agent = Principal("uuid-1", "bot1", "agent", frozenset(), "jti", 0)
    assert [agent.agent_name(a) for a in ("uuid-1", "bot1")] == ["bot1", "bot1"]
    admin = Principal("uuid-a", "root", "admin", frozenset({EVENTS_WRITE_ANY}), "jti", 0)
    # another agent's user id: no auth lookup here, so it stays as given
    assert [admin.agent_name(a) for a in ("uuid-a", "uuid-1", "bot1")] == [
        "root",
        "uuid-1",
        "bot1",
    ]

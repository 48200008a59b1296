"""Which services a ``finops db upgrade/downgrade REVISION`` migrates: each service has its own
revision ids, so an id names one service; ``head``, ``base`` and ``-1`` name every one."""

from __future__ import annotations

import pytest

from finops.common.migrations import services_knowing, services_with_migrations


@pytest.mark.parametrize("revision", ["head", "heads", "base", "-1", "+1", "head-1"])
def test_a_symbolic_revision_is_every_services(revision: str) -> None:
    assert services_knowing(revision) == services_with_migrations()
    assert services_with_migrations() == ["auth", "experiments", "optimizer", "healer"]


@pytest.mark.parametrize(
    ("revision", "service"),
    [("0001_users", "auth"), ("opt0002", "optimizer"), ("heal0004", "healer")],
)
def test_a_revision_id_is_its_own_services(revision: str, service: str) -> None:
    assert services_knowing(revision) == [service]


@pytest.mark.parametrize("revision", ["no-such-revision", "auth@base", "--hlep", ""])
def test_a_revision_no_service_has_is_no_services(revision: str) -> None:
    # 'auth@base': auth has no such branch label, and its Alembic would go down to its base
    assert services_knowing(revision) == []

"""Real infrastructure for the whole test session.

Order of preference: the ``FINOPS_*`` URLs when set (each one replaces that component),
testcontainers when ``FINOPS_TEST_CONTAINERS=1`` and a Docker engine answers, otherwise the
embedded stack that ``finops up --infra-only`` runs, on free ports in a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import worker_port_range

from finops.cli.failures import CliError
from finops.cli.stack.infra import LocalInfra
from finops.cli.stack.local_stack import Stack, StackSettings
from finops.cli.stack.ports import FREE_PORTS_ENV, free_port, free_port_range
from finops.common.settings import LOCAL_BROKER_ENV


def pytest_configure(config: pytest.Config) -> None:
    """Give each pytest-xdist worker a range of free ports of its own (``FINOPS_FREE_PORTS``,
    a slice of the range it would use otherwise), for itself and the stacks it starts: the
    other workers can then never be handed a port of this one's, not even one of a stack that
    is down between a test's ``finops down`` and ``finops up``."""
    # services run inside the test process: a loop failing on purpose must not SIGTERM it
    os.environ["FINOPS_EXIT_ON_LOOP_FAILURE"] = "false"
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    planned = getattr(config.option, "numprocesses", None)
    try:
        if worker:
            workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", ""))
            low, high = worker_port_range(free_port_range(), worker, workers)
            os.environ[FREE_PORTS_ENV] = f"{low}-{high}"
        elif isinstance(planned, int) and planned > 0:
            # checked before the workers start: a worker that fails here is a traceback, and
            # pytest-xdist starts it again and again
            worker_port_range(free_port_range(), "gw0", planned)
    except (ValueError, CliError) as exc:
        raise pytest.UsageError(f"free ports of the test workers: {exc}") from None


@dataclass(frozen=True)
class Infra:
    database_url: str
    redis_url: str
    kafka_bootstrap: str
    local_broker: bool

    def env(self) -> dict[str, str]:
        env = {
            "FINOPS_DATABASE_URL": self.database_url,
            "FINOPS_REDIS_URL": self.redis_url,
            "FINOPS_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
        }
        if self.local_broker:
            env.update(LOCAL_BROKER_ENV)
        return env


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:
        return False


def own_stack_settings(root: Path, **overrides: Any) -> StackSettings:
    """A stack of the test's own: its folder, free ports, no fsync (see :func:`infra`)."""
    return StackSettings(
        data_dir=root,
        postgres_port=free_port(),
        redis_port=free_port(),
        kafka_port=free_port(),
        storage_port=free_port(),
        postgres_fsync=False,
        **overrides,
    )


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    if os.environ.get("FINOPS_TEST_CONTAINERS") == "1" and _docker_available():
        yield from _containers()
        return
    # Not under pytest's basetemp: pytest strips group/other access from it at every session
    # start, and PostgreSQL runs as another OS user when the suite runs as root.
    root = Path(tempfile.mkdtemp(prefix="finops-test-stack-"))
    settings = own_stack_settings(
        root,
        database_url=os.environ.get("FINOPS_DATABASE_URL"),
        redis_url=os.environ.get("FINOPS_REDIS_URL"),
        kafka_bootstrap=os.environ.get("FINOPS_KAFKA_BOOTSTRAP"),
    )
    stack = Stack(settings, infra_only=True)
    stack.start()
    try:
        yield Infra(stack.database_url, stack.redis_url, stack.kafka_bootstrap, stack.local_broker)
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


def _containers() -> Iterator[Infra]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    from finops.cli.stack.local_stack import Stack

    with (
        PostgresContainer("postgres:17", driver=None) as pg,
        RedisContainer("redis:7") as rd,
        KafkaContainer() as kf,
    ):
        redis_url = f"redis://{rd.get_container_host_ip()}:{rd.get_exposed_port(6379)}/0"
        infra = Infra(pg.get_connection_url(), redis_url, kf.get_bootstrap_server(), False)
        stack = Stack(
            StackSettings(
                database_url=infra.database_url,
                redis_url=infra.redis_url,
                kafka_bootstrap=infra.kafka_bootstrap,
            ),
            infra_only=True,
        )
        stack.bootstrap_infra()
        yield infra


@pytest.fixture(autouse=True)
def environment_restored() -> Iterator[None]:
    """The environment as it was before each test: the CLI fills in the stack's addresses it
    is not given (``os.environ.setdefault``) when a test runs a command in-process, and a
    leaked ``FINOPS_KAFKA_BOOTSTRAP`` pointed a later test's own stack at the default port."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def infra_env(infra: Infra, monkeypatch: pytest.MonkeyPatch) -> Infra:
    """Point every settings class at the session's infrastructure."""
    for key, value in infra.env().items():
        monkeypatch.setenv(key, value)
    return infra


@pytest.fixture(scope="session")
def initialised_postgres() -> Iterator[Path]:
    """A PostgreSQL data folder initialised once per session and never started: each test's
    own stack starts from a copy instead of running ``initdb`` (3-4 s) again."""
    root = Path(tempfile.mkdtemp(prefix="finops-test-postgres-"))
    LocalInfra(own_stack_settings(root), root, echo=lambda _: None).prepare_postgres()
    yield root / "postgres"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def stack_dir(initialised_postgres: Path) -> Iterator[Path]:
    """A data folder PostgreSQL's OS user can reach (see :func:`infra`), its PostgreSQL data
    already initialised."""
    root = Path(tempfile.mkdtemp(prefix="finops-test-stack-"))
    # cp -a keeps the owner (PostgreSQL's OS user when the suite runs as root) and modes
    subprocess.run(["cp", "-a", str(initialised_postgres), str(root / "postgres")], check=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def disk_stack(stack_dir: Path) -> Iterator[Stack]:
    """Infrastructure of the test's own whose broker keeps its log on disk (the stack's
    default), so the log survives a restart of the broker; whatever ``FINOPS_*`` the
    environment holds."""
    settings = own_stack_settings(
        stack_dir, kafka_storage="disk", database_url=None, redis_url=None, kafka_bootstrap=None
    )
    stack = Stack(settings, infra_only=True)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def disk_infra(disk_stack: Stack) -> Infra:
    """:func:`disk_stack` as an :class:`Infra`: for a test whose figures would otherwise
    depend on what earlier tests left on the session's broker."""
    return Infra(
        disk_stack.database_url,
        disk_stack.redis_url,
        disk_stack.kafka_bootstrap,
        disk_stack.local_broker,
    )

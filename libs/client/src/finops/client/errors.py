"""What the SDK raises. Every message says what went wrong and, where it can, what to fix."""

from __future__ import annotations

from typing import Any


class FinOpsError(RuntimeError):
    """Base of every error the SDK raises."""


class BufferFull(FinOpsError):
    """The pending-event buffer is full and the overflow policy is ``"raise"``."""


class ClientClosed(FinOpsError):
    """The client was closed: every use but ``close()`` raises it (``record_*``, ``flush()``,
    ``call()``, ``recommend()``, ``assign()``); after a ``close()`` that did not deliver
    everything, its message says how many events were not delivered."""


class InvalidSetting(FinOpsError, ValueError):
    """A setting of the client (an argument, or the ``FINOPS_*`` variable it defaults to) that
    cannot work, raised when the client is built; the message names the argument and the
    variable and says what it takes. A ``ValueError`` too, as the client's other argument
    checks raise."""


class RequestRefused(FinOpsError):
    """The platform refused a request in a way that retrying cannot fix.

    A wrong or revoked API key, a URL that points at the wrong service, a missing scope, an
    unknown task type for a recommendation. ``status`` and ``code`` are the platform's answer
    (``code`` is ``None`` when the answer was not a FinOps error, e.g. another server's 404).
    Once delivery meets one, the client keeps its pending events and raises it from every
    later ``record_*``, ``flush`` and ``close``. ``status`` is 0 when there was no answer to
    read: a URL the HTTP client cannot send to (no ``http://`` or ``https://``).
    """

    def __init__(self, message: str, *, status: int, code: str | None, url: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.url = url


class EventsRejected(FinOpsError):
    """Ingest refused these events as invalid; the rest of their batches was delivered.

    Raised by ``flush()`` / ``close()`` unless an ``on_rejected`` callback takes them.
    ``reasons`` holds the platform's error answers, one per refused batch.
    """

    def __init__(self, message: str, events: list[dict[str, Any]], reasons: list[Any]) -> None:
        super().__init__(message)
        self.events = events
        self.reasons = reasons


class PlatformUnavailable(FinOpsError):
    """A service did not answer (connection errors, 5xx) within the attempts allowed."""

"""The FinOps agent SDK: record LLM calls and errors; delivery is batched and retried."""

from finops.client._healing import CallOptions, Clock, WallClock
from finops.client.client import AsyncFinOpsClient, ClientStats
from finops.client.errors import (
    BufferFull,
    ClientClosed,
    EventsRejected,
    FinOpsError,
    InvalidSetting,
    PlatformUnavailable,
    RequestRefused,
)
from finops.client.sync import FinOpsClient

__all__ = [
    "AsyncFinOpsClient",
    "BufferFull",
    "CallOptions",
    "ClientClosed",
    "ClientStats",
    "Clock",
    "EventsRejected",
    "FinOpsClient",
    "FinOpsError",
    "InvalidSetting",
    "PlatformUnavailable",
    "RequestRefused",
    "WallClock",
]

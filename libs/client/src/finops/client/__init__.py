"""The FinOps agent SDK: record LLM calls and errors; delivery is batched and retried."""

from finops.client.client import AsyncFinOpsClient, BufferFull, ClientClosed, ClientStats
from finops.client.sync import FinOpsClient

__all__ = ["AsyncFinOpsClient", "BufferFull", "ClientClosed", "ClientStats", "FinOpsClient"]

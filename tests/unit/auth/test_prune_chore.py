"""auth's refresh-token pruning chore stops when the shutdown cancels it, even mid-commit."""

from __future__ import annotations

import asyncio

import pytest

from finops.auth.app import _prune_refresh_tokens


class CommitInterruptedByCancel:
    """A service whose prune is cancelled mid-commit and, as asyncpg's rollback does then,
    raises an error of its own instead of the cancellation."""

    def __init__(self) -> None:
        self.committing = asyncio.Event()

    async def prune_expired_refresh_tokens(self) -> int:
        self.committing.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("cannot rollback; the transaction is in error state") from None
        return 0


class FailingOnce:
    def __init__(self) -> None:
        self.calls = 0

    async def prune_expired_refresh_tokens(self) -> int:
        self.calls += 1
        if self.calls == 1:
            raise OSError("the database is away")
        return 3


async def test_a_cancel_mid_commit_ends_the_chore() -> None:
    service = CommitInterruptedByCancel()
    chore = asyncio.create_task(_prune_refresh_tokens(service, 3600))  # type: ignore[arg-type]
    await service.committing.wait()
    chore.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(chore, timeout=10)
    assert chore.cancelled()


async def test_a_failure_that_is_not_a_cancel_is_retried_next_round() -> None:
    service = FailingOnce()
    chore = asyncio.create_task(_prune_refresh_tokens(service, 0))  # type: ignore[arg-type]
    while service.calls < 2:
        await asyncio.sleep(0)
    chore.cancel()
    with pytest.raises(asyncio.CancelledError):
        await chore
    assert service.calls >= 2

"""A cap on the password hashes registrations run at once in this process."""

from __future__ import annotations

import asyncio

from finops.auth.domain.errors import RegistrationBusy
from finops.auth.domain.passwords import PasswordHashing


class HashSlots:
    """At most ``size`` registration hashes at once; one waits ``wait_seconds`` at most for a
    slot, else :class:`RegistrationBusy` (429, ``Retry-After: 1``).

    Each argon2 hash takes tens of milliseconds of a core, run in the thread pool that login
    verifications use too: registrations sent many at once (from as many addresses as one
    likes) would otherwise take every core and starve the logins. A slot is given back when
    its hash ends, not when its request does: a request cancelled mid-hash leaves the thread
    hashing, and its slot taken, until it is done.
    """

    def __init__(self, size: int, wait_seconds: float) -> None:
        self._free = asyncio.Semaphore(size)
        self.wait_seconds = wait_seconds

    async def hash(self, hashing: PasswordHashing, password: str) -> str:
        await self.take()
        return await self.run(hashing, password)

    async def take(self) -> None:
        """Take a slot, waiting ``wait_seconds`` at most, else :class:`RegistrationBusy`.
        The caller must then :meth:`run` the hash, which gives the slot back."""
        try:
            async with asyncio.timeout(self.wait_seconds):
                await self._free.acquire()
        except TimeoutError:
            raise RegistrationBusy(1) from None

    async def run(self, hashing: PasswordHashing, password: str) -> str:
        """Hash ``password`` in a slot taken by :meth:`take`, giving it back at the end."""
        work = asyncio.ensure_future(asyncio.to_thread(hashing.hash, password))
        work.add_done_callback(self._give_back)
        return await asyncio.shield(work)

    def _give_back(self, work: asyncio.Future[str]) -> None:
        self._free.release()
        if not work.cancelled():
            work.exception()  # retrieved here too: nobody may be awaiting it any more

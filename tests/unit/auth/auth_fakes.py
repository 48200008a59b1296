"""In-memory stand-ins for the auth service's ports (no mocks: real, small behaviour)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Self
from uuid import UUID

from finops.auth.domain.errors import EmailTaken, UsernameTaken
from finops.auth.domain.model import ApiKey, RefreshToken, User
from finops.auth.domain.passwords import Argon2Parameters, PasswordHashing
from finops.auth.domain.rules import AttemptVerdict
from finops.common.auth.scopes import Role
from finops.common.errors import DependencyUnavailable


class FakeStore:
    """The "database": committed state shared by every unit of work."""

    def __init__(self) -> None:
        self.users: dict[UUID, User] = {}
        self.refresh_tokens: dict[UUID, RefreshToken] = {}
        self.api_keys: dict[UUID, ApiKey] = {}
        self.commits = 0


class FakeUsers:
    def __init__(self, rows: dict[UUID, User]) -> None:
        self.rows = rows

    async def add(self, user: User) -> None:
        for other in self.rows.values():
            if other.username == user.username:
                raise UsernameTaken()
            if other.email.lower() == user.email.lower():
                raise EmailTaken()
        self.rows[user.id] = user

    async def get(self, user_id: UUID) -> User | None:
        return self.rows.get(user_id)

    async def get_by_login(self, login: str) -> User | None:
        for user in self.rows.values():
            if (
                "@" in login and user.email.lower() == login.lower()
            ) or user.username == login.lower():
                return user
        return None

    async def set_password_hash(self, user_id: UUID, hashed_password: str) -> None:
        self.rows[user_id] = dataclasses.replace(
            self.rows[user_id], hashed_password=hashed_password
        )

    async def set_role(self, user_id: UUID, role: Role) -> User | None:
        if user_id not in self.rows:
            return None
        self.rows[user_id] = dataclasses.replace(self.rows[user_id], role=role)
        return self.rows[user_id]

    async def set_active(self, user_id: UUID, active: bool) -> User | None:
        if user_id not in self.rows:
            return None
        self.rows[user_id] = dataclasses.replace(self.rows[user_id], is_active=active)
        return self.rows[user_id]

    async def set_teams(self, user_id: UUID, teams: frozenset[str] | None) -> User | None:
        if user_id not in self.rows:
            return None
        self.rows[user_id] = dataclasses.replace(self.rows[user_id], teams=teams)
        return self.rows[user_id]

    async def count_active_admins(self) -> int:
        return sum(1 for u in self.rows.values() if u.role == Role.ADMIN and u.is_active)


class FakeRefreshTokens:
    def __init__(self, rows: dict[UUID, RefreshToken]) -> None:
        self.rows = rows

    async def add(self, token: RefreshToken) -> None:
        self.rows[token.id] = token

    async def claim(self, token_hash: str, now: datetime) -> RefreshToken | None:
        for token in self.rows.values():
            if (
                token.token_hash == token_hash
                and token.used_at is None
                and token.revoked_at is None
                and token.expires_at > now
            ):
                self.rows[token.id] = dataclasses.replace(token, used_at=now)
                return self.rows[token.id]
        return None

    async def get_by_hash(self, token_hash: str) -> RefreshToken | None:
        return next((t for t in self.rows.values() if t.token_hash == token_hash), None)

    async def lock_family_of(self, token_hash: str) -> UUID | None:
        # One event loop and no awaits inside a use case's fake calls: nothing to lock.
        token = await self.get_by_hash(token_hash)
        return token.family_id if token else None

    async def lock_family(self, family_id: UUID) -> bool:
        return any(t.family_id == family_id for t in self.rows.values())

    async def revoke_family(self, family_id: UUID, now: datetime) -> int:
        return self._revoke(lambda t: t.family_id == family_id, now)

    async def revoke_all_of_user(self, user_id: UUID, now: datetime) -> int:
        return self._revoke(lambda t: t.user_id == user_id, now)

    async def delete_expired(self, before: datetime, limit: int) -> int:
        expired = [t.id for t in self.rows.values() if t.expires_at < before][:limit]
        for token_id in expired:
            del self.rows[token_id]
        return len(expired)

    def _revoke(self, matches, now: datetime) -> int:
        count = 0
        for token in list(self.rows.values()):
            if matches(token) and token.revoked_at is None:
                self.rows[token.id] = dataclasses.replace(token, revoked_at=now)
                count += 1
        return count


class FakeApiKeys:
    def __init__(self, rows: dict[UUID, ApiKey]) -> None:
        self.rows = rows

    async def add(self, key: ApiKey) -> None:
        self.rows[key.id] = key

    async def get(self, key_id: UUID) -> ApiKey | None:
        return self.rows.get(key_id)

    async def get_by_hash(self, key_hash: str) -> ApiKey | None:
        return next((k for k in self.rows.values() if k.key_hash == key_hash), None)

    async def list(self, visible_to: UUID | None) -> list[ApiKey]:
        return [
            k
            for k in self.rows.values()
            if visible_to is None or visible_to in (k.user_id, k.created_by)
        ]

    async def revoke(self, key_id: UUID, now: datetime) -> None:
        self.rows[key_id] = dataclasses.replace(self.rows[key_id], revoked_at=now)

    async def revoke_all_of_user(self, user_id: UUID, now: datetime) -> int:
        mine = [k for k in self.rows.values() if k.user_id == user_id and k.revoked_at is None]
        for key in mine:
            self.rows[key.id] = dataclasses.replace(key, revoked_at=now)
        return len(mine)

    async def touch(self, key_id: UUID, now: datetime) -> bool:
        if self.rows[key_id].revoked_at is not None:
            return False
        self.rows[key_id] = dataclasses.replace(self.rows[key_id], last_used_at=now)
        return True


class FakeUnitOfWork:
    """Works on copies; ``commit`` writes them back, leaving without it discards them."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def __aenter__(self) -> Self:
        self.users = FakeUsers(dict(self.store.users))
        self.refresh_tokens = FakeRefreshTokens(dict(self.store.refresh_tokens))
        self.api_keys = FakeApiKeys(dict(self.store.api_keys))
        return self

    async def commit(self) -> None:
        self.store.users = dict(self.users.rows)
        self.store.refresh_tokens = dict(self.refresh_tokens.rows)
        self.store.api_keys = dict(self.api_keys.rows)
        self.store.commits += 1

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class FakeThrottle:
    """Counters without a clock: a window never ends within a unit test."""

    def __init__(self, window_seconds: int = 900) -> None:
        self.failures: dict[str, int] = {}
        self.in_flight: dict[str, set[str]] = {}
        self.ended: dict[str, bool] = {}
        self.window_seconds = window_seconds

    async def begin_attempt(self, keys: dict[str, int], attempt_id: str) -> AttemptVerdict:
        if any(self.failures.get(k, 0) >= limit for k, limit in keys.items()):
            return AttemptVerdict(admitted=False, retry_after_seconds=self.window_seconds)
        if any(
            self.failures.get(k, 0) + len(self.in_flight.get(k, ())) >= limit
            for k, limit in keys.items()
        ):
            return AttemptVerdict(admitted=False)
        for key in keys:
            self.in_flight.setdefault(key, set()).add(attempt_id)
        return AttemptVerdict(admitted=True)

    async def end_attempt(self, keys: list[str], attempt_id: str, *, failed: bool) -> bool:
        if attempt_id in self.ended:  # sent again: answered as the first time, nothing counted
            return self.ended[attempt_id]
        held = True
        for key in keys:
            leases = self.in_flight.get(key, set())
            held = held and attempt_id in leases
            leases.discard(attempt_id)
            if failed:
                self.failures[key] = self.failures.get(key, 0) + 1
        self.ended[attempt_id] = held
        return held

    def lapse(self) -> None:
        """Every lease held now lapses (as after the lease time)."""
        self.in_flight.clear()

    async def reset(self, key: str) -> None:
        self.failures.pop(key, None)


class FakeRegistrations:
    """Registration counters without a clock: a window never ends within a unit test."""

    def __init__(self, window_seconds: int = 60) -> None:
        self.counts: dict[str, int] = {}
        self.window_seconds = window_seconds
        self.down = False

    async def admit(self, key: str, limit: int) -> int:
        if self.down:
            raise DependencyUnavailable("Redis did not answer the registration count")
        if self.counts.get(key, 0) >= limit:
            return self.window_seconds
        self.counts[key] = self.counts.get(key, 0) + 1
        return 0

    async def give_back(self, key: str) -> None:
        if self.down:
            raise DependencyUnavailable("Redis did not answer the registration count")
        if self.counts.get(key, 0) > 0:
            self.counts[key] -= 1


class FakeRevocations:
    def __init__(self) -> None:
        self.blocklist: dict[str, int] = {}
        self.sessions: set[str] = set()
        self.users: set[str] = set()
        self.groups: dict[str, dict[str, int]] = {}
        #: revoke_group fails as a Redis that does not answer would
        self.groups_down = False

    def refuses(self, principal) -> bool:
        """What every verifier answers: revoked by jti, by session or by account."""
        return (
            principal.jti in self.blocklist
            or principal.session_id in self.sessions
            or principal.sub in self.users
        )

    async def revoke(self, jti: str, expires_at: int) -> None:
        if expires_at > time.time():
            self.blocklist[jti] = expires_at

    async def revoke_session(self, session_id: str) -> None:
        self.sessions.add(session_id)

    async def revoke_user(self, user_id: str) -> None:
        self.users.add(user_id)

    async def remember(self, groups: list[str], jti: str, expires_at: int) -> None:
        for group in groups:
            self.groups.setdefault(group, {})[jti] = expires_at

    async def revoke_group(self, group: str) -> int:
        if self.groups_down:
            raise DependencyUnavailable("Redis did not answer the revocation")
        live = self.groups.pop(group, {})
        self.blocklist.update(live)
        return len(live)


class CountingHashing(PasswordHashing):
    """The real hasher at the lowest cost, counting dummy verifications and hashes."""

    def __init__(self) -> None:
        super().__init__(Argon2Parameters(memory_kib=64, time_cost=1, parallelism=1))
        self.dummy_verifications = 0
        self.hashes = 0

    def hash(self, password: str) -> str:
        self.hashes += 1
        return super().hash(password)

    def verify_dummy(self, password: str) -> None:
        self.dummy_verifications += 1
        super().verify_dummy(password)


class HeldHashing(CountingHashing):
    """Hashes and verifications that wait for ``release`` while ``hold`` is set: ``holding``
    is set once one waits, ``started`` counts the hashes begun, ``during`` runs at the start
    of each verification."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = threading.Event()
        self.release = threading.Event()
        self.holding = threading.Event()
        self.during: Callable[[], None] = lambda: None
        self.started = 0
        self._lock = threading.Lock()

    def _wait_while_held(self) -> None:
        if self.hold.is_set():
            self.holding.set()
            self.release.wait(10)

    def hash(self, password: str) -> str:
        with self._lock:
            self.started += 1
        self._wait_while_held()
        return super().hash(password)

    def verify(self, hashed: str, password: str) -> bool:
        self.during()
        self._wait_while_held()
        return super().verify(hashed, password)


class FakeRedis:
    """The two commands the blocklist uses, with expiry."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[bytes, float]] = {}
        self.down = False
        self.mget_calls = 0

    async def set(self, key: str, value: bytes, ex: int) -> None:
        self.values[key] = (value, time.time() + ex)

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        if self.down:
            raise ConnectionError("redis is down")
        self.mget_calls += 1
        now = time.time()
        return [v[0] if (v := self.values.get(k)) and v[1] > now else None for k in keys]

    async def exists(self, key: str) -> int:
        if self.down:
            raise ConnectionError("redis is down")
        entry = self.values.get(key)
        return int(entry is not None and entry[1] > time.time())

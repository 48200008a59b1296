"""The auth use cases: register, log in, refresh, log out, roles, teams and API keys.

:class:`AuthService` is their facade; the accounts' functions (shared with `finops users`)
are in :mod:`~finops.auth.service_layer.accounts`, the API keys' in
:mod:`~finops.auth.service_layer.api_keys`, the login sessions' (password login, refresh,
logout) in :mod:`~finops.auth.service_layer.sessions`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from finops.auth.domain.errors import (
    LastAdmin,
    RegistrationClosed,
    RegistrationThrottled,
    UserNotFound,
)
from finops.auth.domain.model import ApiKey, TokenPair, User
from finops.auth.domain.passwords import PasswordHashing
from finops.auth.domain.policy import check_new_account
from finops.auth.domain.rules import granted_scopes, registration_throttle_key, user_group
from finops.auth.domain.teams import team_binding
from finops.auth.service_layer import api_keys
from finops.auth.service_layer.accounts import (
    deactivate_account,
    is_last_active_admin,
    store_new_user,
    utcnow,
)
from finops.auth.service_layer.auth_policy import AuthPolicy
from finops.auth.service_layer.hash_slots import HashSlots
from finops.auth.service_layer.ports import (
    AccessTokenRevocations,
    LoginThrottle,
    RegistrationThrottle,
    UnitOfWork,
)
from finops.auth.service_layer.sessions import GRANT_RECHECKS, LoginSessions
from finops.common.auth.principal import Principal
from finops.common.auth.scopes import Role, format_scope
from finops.common.auth.tokens import IssuedToken, TokenSigner
from finops.common.errors import DependencyUnavailable

log = logging.getLogger(__name__)


class AuthService:
    def __init__(
        self,
        *,
        uow: Callable[[], UnitOfWork],
        hashing: PasswordHashing,
        signer: Callable[[], TokenSigner],
        throttle: LoginThrottle,
        registrations: RegistrationThrottle,
        revocations: AccessTokenRevocations,
        policy: AuthPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._uow = uow
        self._hashing = hashing
        self._registrations = registrations
        self._revocations = revocations
        self._sessions = LoginSessions(
            uow=uow,
            hashing=hashing,
            signer=signer,
            throttle=throttle,
            revocations=revocations,
            policy=policy or AuthPolicy(),
            clock=clock,
            sleep=sleep,
        )
        self._hash_slots = HashSlots(
            self.policy.registration_hashes_in_flight, self.policy.registration_hash_wait_seconds
        )
        self._clock = clock

    @property
    def policy(self) -> AuthPolicy:
        """The limits and lifetimes; one set here applies from the next call (the login
        sessions read it too), except the hash slots, sized when the service is built."""
        return self._sessions.policy

    @policy.setter
    def policy(self, policy: AuthPolicy) -> None:
        self._sessions.policy = policy

    # ---- accounts --------------------------------------------------------------------

    async def register(
        self,
        username: str,
        email: str,
        password: str,
        role: Role = Role.AGENT,
        *,
        client_address: str | None = None,
    ) -> User:
        """Create an account. Its password hash waits for one of this process's slots
        (:class:`HashSlots`); a registration from ``client_address`` (the API always names
        it) counts against that client's budget of the window first (so one over its budget
        waits for no slot), and is uncounted if it never gets a slot (429
        ``registration_busy``, or its request cancelled while it waited): what a client's
        budget counts is the registrations that reached their hash. An invalid account is
        refused before either: it costs no hash.
        """
        if not self.policy.registration_open:
            raise RegistrationClosed()
        account = check_new_account(username, email, password)
        counted = None
        if client_address is not None:
            counted = await self._count_registration(client_address)
        try:
            await self._hash_slots.take()
        except BaseException:
            if counted is not None:
                await self._give_back_registration(counted)
            raise
        hashed = await self._hash_slots.run(self._hashing, password)
        return await store_new_user(self._uow(), account, hashed, role, now=self._clock())

    async def _count_registration(self, client_address: str) -> str | None:
        """The client's key, its registration counted; :class:`RegistrationThrottled` once
        the client has used its registrations of the window. Without Redis the count is
        skipped (None), not the registration: it needs no Redis otherwise, and the hash
        slots still bound what registrations cost."""
        key = registration_throttle_key(client_address)
        try:
            wait = await self._registrations.admit(key, self.policy.max_registrations_per_address)
        except DependencyUnavailable as exc:
            log.warning("a registration went uncounted", extra={"error": exc.message})
            return None
        if wait:
            raise RegistrationThrottled(wait)
        return key

    async def _give_back_registration(self, key: str) -> None:
        """Uncount a registration that got no hash slot; if Redis fails meanwhile, it stays
        counted (logged): the budget errs on the side of the logins."""
        try:
            await self._registrations.give_back(key)
        except Exception as exc:
            log.warning("a registration that got no hash slot stayed counted", exc_info=exc)

    async def deactivate_user(self, user_id: UUID) -> User:
        return await deactivate_account(self._uow(), self._revocations, user_id, self._clock())

    async def prune_expired_refresh_tokens(self, batch_size: int = 10_000) -> int:
        """Delete the refresh tokens that expired (none can ever be used again); how many."""
        pruned = 0
        while True:
            async with self._uow() as uow:
                deleted = await uow.refresh_tokens.delete_expired(self._clock(), batch_size)
                await uow.commit()
            pruned += deleted
            if deleted < batch_size:
                return pruned

    async def _commit_ending_tokens(self, uow: UnitOfWork, user_id: UUID) -> None:
        """Commit a change the account's tokens carry (its role, its teams), refusing every
        access token it has: before the commit, so a Redis that fails aborts the change and
        the admin's retry makes all of it (once committed, a retry finds nothing to change
        and would refuse nothing); and after it, for tokens issued meanwhile (a login or key
        exchange that read the account before the commit: its own recheck,
        ``grants_changed``, withdraws them too)."""
        await self._revocations.revoke_group(user_group(user_id))
        await uow.commit()
        await self._revocations.revoke_group(user_group(user_id))

    async def change_role(self, actor: Principal, user_id: UUID, role: Role) -> User:
        async with self._uow() as uow:
            user = await uow.users.get(user_id)
            if user is None:
                raise UserNotFound()
            if user.role == role:
                return user
            if await is_last_active_admin(uow, user):
                raise LastAdmin()
            updated = await uow.users.set_role(user_id, role)
            # Tokens carry their scopes: end the user's sessions so none keeps the old ones.
            await uow.refresh_tokens.revoke_all_of_user(user_id, self._clock())
            await self._commit_ending_tokens(uow, user_id)
        assert updated is not None
        return updated

    async def change_teams(
        self, actor: Principal, user_id: UUID, teams: Iterable[str] | None
    ) -> User:
        """Bind the account to ``teams`` (None: unbind it; see :mod:`finops.auth.domain.teams`).

        Raises :class:`TeamsInvalid` for names no event's ``team`` could hold,
        :class:`UserNotFound` for no such account.
        """
        binding = team_binding(teams)
        async with self._uow() as uow:
            user = await uow.users.get(user_id)
            if user is None:
                raise UserNotFound()
            if user.teams == binding:
                return user
            updated = await uow.users.set_teams(user_id, binding)
            # Tokens carry the teams: end the user's sessions so none keeps the old ones.
            await uow.refresh_tokens.revoke_all_of_user(user_id, self._clock())
            await self._commit_ending_tokens(uow, user_id)
        assert updated is not None
        return updated

    # ---- password login and sessions -------------------------------------------------

    async def login(
        self, login: str, password: str, *, client_address: str, scope: str | None = None
    ) -> TokenPair:
        """A new login session, once ``password`` is judged within the login throttle."""
        return await self._sessions.login(
            login, password, client_address=client_address, scope=scope
        )

    async def refresh(self, refresh_token: str, scope: str | None = None) -> TokenPair:
        """A new pair for a refresh token, which is spent (see :meth:`LoginSessions.refresh`)."""
        return await self._sessions.refresh(refresh_token, scope)

    async def logout(self, principal: Principal) -> None:
        """End the login session of this access token (see :meth:`LoginSessions.logout`)."""
        await self._sessions.logout(principal)

    # ---- API keys --------------------------------------------------------------------

    async def create_api_key(
        self, actor: Principal, name: str, user_id: UUID | None = None
    ) -> tuple[ApiKey, str]:
        """The stored key and its only plaintext copy."""
        return await api_keys.create_api_key(self._uow(), actor, name, user_id, self._clock())

    async def list_api_keys(self, actor: Principal) -> list[ApiKey]:
        return await api_keys.list_api_keys(self._uow(), actor)

    async def revoke_api_key(self, actor: Principal, key_id: UUID) -> None:
        """Revoke a key and every access token it was exchanged for. Safe to repeat."""
        await api_keys.revoke_api_key(self._uow(), self._revocations, actor, key_id, self._clock())

    async def exchange_api_key(self, api_key: str, scope: str | None = None) -> TokenPair:
        """OAuth2 client credentials: an API key for a short-lived access token."""
        for _ in range(GRANT_RECHECKS):
            exchanged = await self._exchange_once(api_key, scope)
            if await self._sessions.grants_changed(exchanged.user) is None:
                return exchanged.pair
            # Issued for the role or teams the account had before a change that may not have
            # seen this token: withdraw it and exchange again with the account as it is now.
            await self._revocations.revoke(exchanged.access.jti, exchanged.access.expires_at)
        raise DependencyUnavailable(
            "the account's role or teams kept changing during the exchange; retry"
        )

    async def _exchange_once(self, api_key: str, scope: str | None) -> KeyExchange:
        key, user = await api_keys.redeem_api_key(self._uow(), api_key, self._clock())
        scopes = granted_scopes(user.role, scope)
        access = self._sessions.issue_access(
            user, scopes, self.policy.api_key_token_ttl_seconds, session_id=str(key.id)
        )
        await self._revocations.remember([user_group(user.id)], access.jti, access.expires_at)
        pair = TokenPair(access.token, access.expires_in, None, format_scope(scopes))
        return KeyExchange(pair, access, user)


@dataclass(frozen=True)
class KeyExchange:
    """What one exchange of an API key issued, and the account it was issued for."""

    pair: TokenPair
    access: IssuedToken
    user: User

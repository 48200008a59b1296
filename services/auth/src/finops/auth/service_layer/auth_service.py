"""The auth use cases: register, log in, refresh, log out, roles and API keys.

:class:`AuthService` is their facade; the accounts' functions (shared with `finops users`)
are in :mod:`~finops.auth.service_layer.accounts`, the API keys' in
:mod:`~finops.auth.service_layer.api_keys`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from tenacity import AsyncRetrying, retry_if_result

from finops.auth.domain.credentials import hash_secret, new_refresh_token
from finops.auth.domain.errors import (
    InvalidCredentials,
    InvalidRefreshToken,
    LastAdmin,
    LoginThrottled,
    RefreshTokenReused,
    RegistrationThrottled,
    UserNotFound,
)
from finops.auth.domain.model import ApiKey, RefreshToken, TokenPair, User
from finops.auth.domain.passwords import PasswordHashing
from finops.auth.domain.policy import check_new_account
from finops.auth.domain.rules import (
    AttemptVerdict,
    account_throttle_key,
    address_throttle_key,
    granted_scopes,
    narrowed_scopes,
    registration_throttle_key,
    user_group,
)
from finops.auth.service_layer import api_keys
from finops.auth.service_layer.accounts import (
    deactivate_account,
    is_last_active_admin,
    store_new_user,
    utcnow,
)
from finops.auth.service_layer.auth_policy import (
    AuthPolicy,
    busy_backoff,
    held_back_by_attempts_in_flight,
)
from finops.auth.service_layer.hash_slots import HashSlots
from finops.auth.service_layer.ports import (
    AccessTokenRevocations,
    LoginThrottle,
    RegistrationThrottle,
    UnitOfWork,
)
from finops.common.auth.principal import Principal
from finops.common.auth.scopes import Role, format_scope, parse_scope
from finops.common.auth.tokens import IssuedToken, TokenSigner
from finops.common.errors import DependencyUnavailable

log = logging.getLogger(__name__)

#: How many times a login or key exchange issues again when a role change overtook it.
ROLE_RECHECKS = 3


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
        self._signer = signer
        self._throttle = throttle
        self._registrations = registrations
        self._revocations = revocations
        self.policy = policy or AuthPolicy()
        self._hash_slots = HashSlots(
            self.policy.registration_hashes_in_flight, self.policy.registration_hash_wait_seconds
        )
        self._clock = clock
        self._sleep = sleep

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
            await uow.commit()
        await self._revocations.revoke_group(user_group(user_id))
        assert updated is not None
        return updated

    # ---- password login and sessions -------------------------------------------------

    async def login(
        self, login: str, password: str, *, client_address: str, scope: str | None = None
    ) -> TokenPair:
        async with self._uow() as uow:
            user = await uow.users.get_by_login(login)
        account_key = account_throttle_key(user.id if user else None, login)
        address_key = address_throttle_key(client_address)
        keys = {
            account_key: self.policy.max_failures_per_account,
            address_key: self.policy.max_failures_per_address,
        }
        if not await self._password_accepted(keys, user, password):
            raise InvalidCredentials()
        assert user is not None
        await self._throttle.reset(account_key)
        return await self._open_session(user, password, scope)

    async def _open_session(self, user: User, password: str, scope: str | None) -> TokenPair:
        """A new login session for ``user``, whose ``password`` was just verified (rehashed
        if its parameters are old), issued for the role the account has when it is
        recorded."""
        rehash = self._hashing.needs_rehash(user.hashed_password)
        for _ in range(ROLE_RECHECKS):
            scopes = granted_scopes(user.role, scope)
            family_id = uuid4()
            async with self._uow() as uow:
                if rehash:
                    rehashed = await asyncio.to_thread(self._hashing.hash, password)
                    await uow.users.set_password_hash(user.id, rehashed)
                    rehash = False
                pair, access = await self._start_session(uow, user, scopes, family_id=family_id)
                await uow.commit()
            await self._revocations.remember([user_group(user.id)], access.jti, access.expires_at)
            current = await self._role_changed(user)
            if current is None:
                return pair
            # The session was issued for the role the account had before a role change that
            # may not have seen its token: end it, and issue again for the role as it is now.
            async with self._uow() as uow:
                await uow.refresh_tokens.lock_family(family_id)
                await self._end_session(uow, family_id, self._clock())
            if not current.is_active:
                raise InvalidCredentials()  # deactivated meanwhile too: nothing to issue
            user = current
        raise DependencyUnavailable("the account's role kept changing while logging in; retry")

    async def _password_accepted(
        self, keys: dict[str, int], user: User | None, password: str
    ) -> bool:
        """Whether ``password`` is the active ``user``'s, judged within the throttle's limits
        on ``keys`` (:class:`LoginThrottled` when they leave no room).

        The attempt holds a lease while it is judged; one whose lease lapsed meanwhile (a
        queue of password checks longer than the lease) is refused as throttled, its failure
        counted, so a flood cannot let more guesses through than the limit.
        """
        attempt_id = uuid4().hex
        try:
            await self._admit(keys, attempt_id)
        except LoginThrottled:
            raise
        except BaseException:
            # the start may have taken its leases before its answer was lost: give them back
            with suppress(Exception):
                await self._throttle.end_attempt(list(keys), attempt_id, failed=False)
            raise
        failed = True  # until judged: a check that raised counts as a failure
        try:
            if user is None:
                await asyncio.to_thread(self._hashing.verify_dummy, password)
                matches = False
            else:
                matches = await asyncio.to_thread(
                    self._hashing.verify, user.hashed_password, password
                )
            failed = user is None or not matches or not user.is_active
        finally:
            held = await self._throttle.end_attempt(list(keys), attempt_id, failed=failed)
        if not held:
            raise LoginThrottled(1)
        return not failed

    async def _admit(self, keys: dict[str, int], attempt_id: str) -> None:
        """Raise :class:`LoginThrottled` unless the attempt may be judged now.

        Failures and attempts in flight count together, checked and counted in one step, so
        concurrent guesses cannot all pass the limit before the first of them fails. An
        attempt held back only by others in flight (several right passwords at once, many
        users behind one address) waits for them, asking again after a backoff
        (:func:`busy_backoff`) for ``policy.busy_wait_seconds`` of waiting at most, rather
        than being refused at once.
        """
        budget = self.policy.busy_wait_seconds
        retrying = AsyncRetrying(
            retry=retry_if_result(held_back_by_attempts_in_flight),
            wait=busy_backoff(self.policy),
            # the waits, not the clock: the last ask comes once the whole budget is waited
            stop=lambda state: state.idle_for >= budget - 1e-9,
            sleep=self._sleep,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        verdict: AttemptVerdict = await retrying(self._throttle.begin_attempt, keys, attempt_id)
        if verdict.admitted:
            return
        raise LoginThrottled(verdict.retry_after_seconds or 1)

    async def refresh(self, refresh_token: str, scope: str | None = None) -> TokenPair:
        """A new pair for a refresh token, which is spent; ``scope`` narrows it (OAuth2's
        refresh request: asking for a scope the session does not hold is ``invalid_scope``,
        and the token sent stays unspent)."""
        token_hash = hash_secret(refresh_token)
        now = self._clock()
        async with self._uow() as uow:
            # Under the family's lock: a logout or reuse revocation of this family either
            # waits for this refresh (and then revokes what it wrote) or is seen by it.
            family_id = await uow.refresh_tokens.lock_family_of(token_hash)
            record = None if family_id is None else await uow.refresh_tokens.claim(token_hash, now)
            if record is None:
                known = await uow.refresh_tokens.get_by_hash(token_hash)
                if known is not None and known.was_used() and known.revoked_at is None:
                    # A used token came back: one of its holders is not the user. End it all.
                    await self._end_session(uow, known.family_id, now)
                    raise RefreshTokenReused()
                raise InvalidRefreshToken()
            user = await uow.users.get(record.user_id)
            if user is None or not user.is_active:
                await self._end_session(uow, record.family_id, now)
                raise InvalidRefreshToken()
            # The role may have changed since the login: never grant more than it allows now.
            scopes = narrowed_scopes(
                granted_scopes(user.role, None) & parse_scope(record.scope), scope
            )
            pair, access = await self._start_session(uow, user, scopes, family_id=record.family_id)
            # Before the commit: if Redis fails, the presented token stays unspent and the
            # client can retry, instead of the retry looking like a reuse of a spent token.
            await self._revocations.remember([user_group(user.id)], access.jti, access.expires_at)
            await uow.commit()
        return pair

    async def logout(self, principal: Principal) -> None:
        """Blocklist this access token and end the login session it belongs to, whichever
        generation of it the token is. Safe to repeat."""
        await self._revocations.revoke(principal.jti, principal.expires_at)
        family_id = _session_uuid(principal)
        if family_id is None:
            return
        async with self._uow() as uow:
            # No refresh tokens: the token came from an API key, whose other tokens stay valid.
            if await uow.refresh_tokens.lock_family(family_id):
                await self._end_session(uow, family_id, self._clock())

    async def _end_session(self, uow: UnitOfWork, family_id: UUID, now: datetime) -> None:
        """Revoke a login session: its refresh tokens, and every access token with its sid.

        The family's lock is held. The blocklist entry is written before the commit, so a
        failure leaves the session refused rather than half ended.
        """
        await self._revocations.revoke_session(str(family_id))
        await uow.refresh_tokens.revoke_family(family_id, now)
        await uow.commit()

    async def _start_session(
        self, uow: UnitOfWork, user: User, scopes: frozenset[str], *, family_id: UUID
    ) -> tuple[TokenPair, IssuedToken]:
        access = self._issue_access(user, scopes, session_id=str(family_id))
        plain, token_hash = new_refresh_token()
        now = self._clock()
        await uow.refresh_tokens.add(
            RefreshToken(
                id=uuid4(),
                family_id=family_id,
                user_id=user.id,
                token_hash=token_hash,
                scope=format_scope(scopes),
                access_jti=access.jti,
                issued_at=now,
                expires_at=now + timedelta(seconds=self.policy.refresh_token_ttl_seconds),
            )
        )
        pair = TokenPair(access.token, access.expires_in, plain, format_scope(scopes))
        return pair, access

    def _issue_access(
        self,
        user: User,
        scopes: frozenset[str],
        ttl_seconds: int | None = None,
        *,
        session_id: str,
    ) -> IssuedToken:
        return self._signer().issue(
            subject=str(user.id),
            username=user.username,
            role=user.role.value,
            scopes=scopes,
            ttl_seconds=ttl_seconds,
            session_id=session_id,
        )

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
        for _ in range(ROLE_RECHECKS):
            pair, access, user = await self._exchange_once(api_key, scope)
            if await self._role_changed(user) is None:
                return pair
            # Issued for the role the account had before a role change that may not have
            # seen this token: withdraw it and exchange again with the roles as they are now.
            await self._revocations.revoke(access.jti, access.expires_at)
        raise DependencyUnavailable("the account's role kept changing during the exchange; retry")

    async def _role_changed(self, user: User) -> User | None:
        """The account as it is now if its role is no longer ``user.role``, else None.

        Asked after a token was recorded among the account's live ones: a role change that
        committed before this read blocklists only the tokens recorded when it runs, so a
        token issued for the old role is withdrawn by the caller; one that commits after it
        finds the token recorded and blocklists it itself.
        """
        async with self._uow() as uow:
            current = await uow.users.get(user.id)
        return current if current is not None and current.role != user.role else None

    async def _exchange_once(
        self, api_key: str, scope: str | None
    ) -> tuple[TokenPair, IssuedToken, User]:
        key, user = await api_keys.redeem_api_key(self._uow(), api_key, self._clock())
        scopes = granted_scopes(user.role, scope)
        access = self._issue_access(
            user, scopes, self.policy.api_key_token_ttl_seconds, session_id=str(key.id)
        )
        await self._revocations.remember([user_group(user.id)], access.jti, access.expires_at)
        return TokenPair(access.token, access.expires_in, None, format_scope(scopes)), access, user


def _session_uuid(principal: Principal) -> UUID | None:
    """The login session (refresh-token family) id a token names, if it names one."""
    try:
        return UUID(principal.session_id) if principal.session_id else None
    except ValueError:
        return None

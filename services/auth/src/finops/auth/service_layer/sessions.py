"""The login sessions: password login (throttled), refresh, logout, and the tokens issued.

A session is a family of refresh tokens; each access token of it names the family as its
``sid``. :class:`~finops.auth.service_layer.auth_service.AuthService` offers these use cases
and issues the access token of an API-key exchange with :meth:`LoginSessions.issue_access`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from tenacity import AsyncRetrying, retry_if_result

from finops.auth.domain.credentials import hash_secret, new_refresh_token
from finops.auth.domain.errors import (
    InvalidCredentials,
    InvalidRefreshToken,
    LoginThrottled,
    RefreshTokenReused,
    ScopeBeyondSession,
)
from finops.auth.domain.model import RefreshToken, TokenPair, User
from finops.auth.domain.passwords import PasswordHashing
from finops.auth.domain.rules import (
    AttemptVerdict,
    account_throttle_key,
    address_throttle_key,
    granted_scopes,
    narrowed_scopes,
    user_group,
)
from finops.auth.service_layer.auth_policy import (
    AuthPolicy,
    busy_backoff,
    held_back_by_attempts_in_flight,
)
from finops.auth.service_layer.ports import AccessTokenRevocations, LoginThrottle, UnitOfWork
from finops.common.auth.principal import Principal
from finops.common.auth.scopes import format_scope, parse_scope
from finops.common.auth.tokens import IssuedToken, TokenSigner
from finops.common.errors import DependencyUnavailable

#: How many times a login or key exchange issues again when a change of the account's role
#: or teams overtook it.
GRANT_RECHECKS = 3


@dataclass(frozen=True)
class StartedSession:
    """A session's new pair of tokens, and its access token as issued."""

    pair: TokenPair
    access: IssuedToken


class LoginSessions:
    """Password login, refresh and logout over the unit of work, throttle and blocklist.

    ``policy`` is read at each call, so replacing it applies from the next one.
    """

    def __init__(
        self,
        *,
        uow: Callable[[], UnitOfWork],
        hashing: PasswordHashing,
        signer: Callable[[], TokenSigner],
        throttle: LoginThrottle,
        revocations: AccessTokenRevocations,
        policy: AuthPolicy,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._uow = uow
        self._hashing = hashing
        self._signer = signer
        self._throttle = throttle
        self._revocations = revocations
        self.policy = policy
        self._clock = clock
        self._sleep = sleep

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
        if its parameters are old), issued for the role and teams the account has when it is
        recorded."""
        rehash = self._hashing.needs_rehash(user.hashed_password)
        for _ in range(GRANT_RECHECKS):
            scopes = granted_scopes(user.role, scope)
            family_id = uuid4()
            async with self._uow() as uow:
                if rehash:
                    rehashed = await asyncio.to_thread(self._hashing.hash, password)
                    await uow.users.set_password_hash(user.id, rehashed)
                    rehash = False
                started = await self._start_session(uow, user, scopes, family_id=family_id)
                await uow.commit()
            access = started.access
            await self._revocations.remember([user_group(user.id)], access.jti, access.expires_at)
            current = await self.grants_changed(user)
            if current is None:
                return started.pair
            # The session was issued for the role or teams the account had before a change
            # that may not have seen its token: end it, and issue again for the account as it
            # is now.
            async with self._uow() as uow:
                await uow.refresh_tokens.lock_family(family_id)
                await self._end_session(uow, family_id, self._clock())
            if not current.is_active:
                raise InvalidCredentials()  # deactivated meanwhile too: nothing to issue
            user = current
        raise DependencyUnavailable(
            "the account's role or teams kept changing while logging in; retry"
        )

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
            # The role may have changed since the login: never grant more than it allows now
            # (the teams are the account's as it is now: the token issued below carries them).
            scopes = narrowed_scopes(
                granted_scopes(user.role, None) & parse_scope(record.scope),
                scope,
                beyond=ScopeBeyondSession,
            )
            started = await self._start_session(uow, user, scopes, family_id=record.family_id)
            access = started.access
            # Before the commit: if Redis fails, the presented token stays unspent and the
            # client can retry, instead of the retry looking like a reuse of a spent token.
            await self._revocations.remember([user_group(user.id)], access.jti, access.expires_at)
            await uow.commit()
        return started.pair

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
    ) -> StartedSession:
        access = self.issue_access(user, scopes, session_id=str(family_id))
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
        return StartedSession(pair, access)

    def issue_access(
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
            teams=user.teams,
        )

    async def grants_changed(self, user: User) -> User | None:
        """The account as it is now if its role or teams are no longer ``user``'s, else None.

        Asked after a token was recorded among the account's live ones: a change of role or
        teams that committed before this read blocklists only the tokens recorded when it
        runs, so a token issued for the old role or teams is withdrawn by the caller; one that
        commits after it finds the token recorded and blocklists it itself.
        """
        async with self._uow() as uow:
            current = await uow.users.get(user.id)
        if current is None or (current.role, current.teams) == (user.role, user.teams):
            return None
        return current


def _session_uuid(principal: Principal) -> UUID | None:
    """The login session (refresh-token family) id a token names, if it names one."""
    try:
        return UUID(principal.session_id) if principal.session_id else None
    except ValueError:
        return None

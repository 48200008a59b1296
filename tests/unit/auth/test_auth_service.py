"""The auth use cases over in-memory fakes: sessions, reuse detection, throttling, keys."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from auth_fakes import (
    CountingHashing,
    FakeRegistrations,
    FakeRevocations,
    FakeStore,
    FakeThrottle,
    FakeUnitOfWork,
)

from finops.auth.domain.errors import (
    AccountInvalid,
    ApiKeyNotFound,
    EmailTaken,
    InvalidClient,
    InvalidCredentials,
    InvalidRefreshToken,
    InvalidScope,
    LastAdmin,
    LoginThrottled,
    RefreshTokenReused,
    RegistrationClosed,
    RoleNotAllowed,
    TeamsInvalid,
    UsernameTaken,
    UserNotFound,
)
from finops.auth.service_layer.auth_policy import AuthPolicy
from finops.auth.service_layer.auth_service import AuthService
from finops.common.auth import Principal, StaticKeys, TokenSigner, generate_signing_key
from finops.common.auth.scopes import ROLE_SCOPES, Role, parse_scope
from finops.common.auth.tokens import decode
from finops.common.errors import DependencyUnavailable

PASSWORD = "violet tractor mirage 42"


@pytest.fixture(scope="module")
def signer() -> TokenSigner:
    return TokenSigner(generate_signing_key(), issuer="finops-auth", audience="finops")


class World:
    def __init__(self, signer: TokenSigner) -> None:
        self.store = FakeStore()
        self.throttle = FakeThrottle()
        self.registrations = FakeRegistrations()
        self.revocations = FakeRevocations()
        self.hashing = CountingHashing()
        self.signer = signer
        self.service = AuthService(
            uow=lambda: FakeUnitOfWork(self.store),
            hashing=self.hashing,
            signer=lambda: signer,
            throttle=self.throttle,
            registrations=self.registrations,
            revocations=self.revocations,
            policy=AuthPolicy(max_failures_per_account=3, max_failures_per_address=5),
        )

    async def user(self, name: str, role: Role = Role.AGENT):
        return await self.service.register(name, f"{name}@example.com", PASSWORD, role)

    async def principal(self, name: str, role: Role = Role.AGENT) -> Principal:
        user = await self.user(name, role)
        pair = await self.service.login(name, PASSWORD, client_address="10.0.0.1")
        return await self.verify(pair.access_token, user.id)

    async def verify(self, token: str, user_id=None) -> Principal:
        key = await StaticKeys.of(self.signer.key).key_for(self.signer.kid)
        claims = decode(token, key, issuer="finops-auth", audience="finops")
        principal = Principal.from_claims(claims)
        assert user_id is None or principal.sub == str(user_id)
        return principal


@pytest.fixture
def world(signer) -> World:
    return World(signer)


async def test_register_then_login_issues_a_token_pair_for_the_role(world):
    user = await world.user("alice")
    assert user.role == Role.AGENT and user.hashed_password.startswith("$argon2id$")
    pair = await world.service.login("alice", PASSWORD, client_address="10.0.0.1")
    principal = await world.verify(pair.access_token, user.id)
    assert principal.scopes == ROLE_SCOPES[Role.AGENT]
    assert pair.refresh_token and pair.expires_in == 900
    [stored] = world.store.refresh_tokens.values()
    assert stored.access_jti == principal.jti and stored.user_id == user.id


async def test_closed_registration_refuses_before_any_count_or_hash(world):
    # open, anyone could make a second account and with it the breakers' quorum of two
    world.service.policy = AuthPolicy(registration_open=False)
    with pytest.raises(RegistrationClosed) as refused:
        await world.service.register(
            "mallory2", "m2@example.com", PASSWORD, client_address="10.0.0.9"
        )
    assert refused.value.code == "registration_closed"
    assert (world.store.users, world.hashing.hashes, world.registrations.counts) == ({}, 0, {})


async def test_duplicates_and_invalid_accounts_are_refused(world):
    await world.user("alice")
    with pytest.raises(UsernameTaken):
        await world.service.register("alice", "other@example.com", PASSWORD)
    with pytest.raises(EmailTaken):
        await world.service.register("alice2", "ALICE@example.com", PASSWORD)
    with pytest.raises(AccountInvalid) as invalid:
        await world.service.register("A", "nope", "short")
    assert {p["field"] for p in invalid.value.details} == {"username", "email", "password"}


async def test_unknown_users_cost_a_dummy_hash_and_get_the_same_error(world):
    await world.user("alice")
    with pytest.raises(InvalidCredentials) as wrong:
        await world.service.login("alice", "not the password", client_address="a")
    assert world.hashing.dummy_verifications == 0
    with pytest.raises(InvalidCredentials) as unknown:
        await world.service.login("bob", PASSWORD, client_address="a")
    assert world.hashing.dummy_verifications == 1
    assert (wrong.value.code, wrong.value.message) == (unknown.value.code, unknown.value.message)


async def test_failures_are_throttled_per_account_and_per_address(world):
    await world.user("alice")
    for _ in range(3):
        with pytest.raises(InvalidCredentials):
            await world.service.login("alice", "wrong password!", client_address="a")
    with pytest.raises(LoginThrottled) as throttled:
        await world.service.login("alice", PASSWORD, client_address="b")
    assert throttled.value.retry_after_seconds == 900
    # Address "a" has 3 failures; two more on other accounts reach its limit of 5.
    for name in ("ghost1", "ghost2"):
        with pytest.raises(InvalidCredentials):
            await world.service.login(name, PASSWORD, client_address="a")
    await world.user("carol")
    with pytest.raises(LoginThrottled):
        await world.service.login("carol", PASSWORD, client_address="a")
    assert await world.service.login("carol", PASSWORD, client_address="c")


async def test_failures_count_per_account_whichever_spelling_reached_it(world):
    await world.user("alice")
    for n, spelling in enumerate(("alice", "ALICE@example.com", "alice@EXAMPLE.COM")):
        with pytest.raises(InvalidCredentials):
            await world.service.login(spelling, "wrong password!", client_address=f"10.0.0.{n}")
    with pytest.raises(LoginThrottled):
        await world.service.login("Alice@Example.com", PASSWORD, client_address="10.0.0.9")


async def test_refresh_rotates_and_reuse_revokes_the_family(world):
    user = await world.user("alice")
    first = await world.service.login("alice", PASSWORD, client_address="a")
    second = await world.service.refresh(first.refresh_token)
    third = await world.service.refresh(second.refresh_token)
    principals = [await world.verify(p.access_token, user.id) for p in (first, second, third)]
    assert len({p.session_id for p in principals}) == 1

    with pytest.raises(RefreshTokenReused):
        await world.service.refresh(first.refresh_token)
    assert all(world.revocations.refuses(p) for p in principals)
    assert all(t.revoked_at for t in world.store.refresh_tokens.values())
    with pytest.raises(InvalidRefreshToken):
        await world.service.refresh(third.refresh_token)
    with pytest.raises(InvalidRefreshToken):
        await world.service.refresh("fo_rt_never-issued")


async def test_refresh_never_grants_more_than_the_current_role(world):
    user = await world.user("olivia", Role.OPERATOR)
    pair = await world.service.login("olivia", PASSWORD, client_address="a")
    world.store.users[user.id] = world.store.users[user.id].__class__(
        **{**world.store.users[user.id].__dict__, "role": Role.AGENT}
    )
    refreshed = await world.service.refresh(pair.refresh_token)
    assert parse_scope(refreshed.scope) == ROLE_SCOPES[Role.AGENT]


async def test_logout_blocklists_the_token_and_revokes_its_session(world):
    principal = await world.principal("alice")
    [session] = world.store.refresh_tokens.values()
    await world.service.logout(principal)
    assert world.revocations.blocklist[principal.jti] == principal.expires_at
    assert world.revocations.sessions == {str(session.family_id)} == {principal.session_id}
    assert world.store.refresh_tokens[session.id].revoked_at is not None
    await world.service.logout(principal)  # idempotent


async def test_logout_with_an_api_key_token_revokes_that_token_only(world):
    operator = await world.principal("olivia", Role.OPERATOR)
    key, plaintext = await world.service.create_api_key(operator, "ci")
    token = await world.verify((await world.service.exchange_api_key(plaintext)).access_token)
    sibling = await world.verify((await world.service.exchange_api_key(plaintext)).access_token)
    assert token.session_id == sibling.session_id == str(key.id)
    await world.service.logout(token)
    assert world.revocations.refuses(token) and not world.revocations.refuses(sibling)
    assert await world.service.exchange_api_key(plaintext)


async def test_role_changes_end_sessions_and_keep_one_admin(world):
    admin = await world.principal("root", Role.ADMIN)
    agent = await world.principal("alice")
    changed = await world.service.change_role(admin, uuid.UUID(agent.sub), Role.OPERATOR)
    assert changed.role == Role.OPERATOR
    assert agent.jti in world.revocations.blocklist
    with pytest.raises(LastAdmin):
        await world.service.change_role(admin, uuid.UUID(admin.sub), Role.AGENT)
    with pytest.raises(UserNotFound):
        await world.service.change_role(admin, uuid.uuid4(), Role.AGENT)


async def test_team_changes_end_sessions_and_tokens_carry_the_teams(world):
    admin = await world.principal("root", Role.ADMIN)
    agent = await world.principal("alice")
    assert agent.teams is None
    _key, plaintext = await world.service.create_api_key(admin, "ci", uuid.UUID(agent.sub))
    exchanged = await world.verify((await world.service.exchange_api_key(plaintext)).access_token)

    changed = await world.service.change_teams(
        admin, uuid.UUID(agent.sub), ["finance", "ops", "finance"]
    )

    assert changed.teams == frozenset({"finance", "ops"})
    assert world.store.users[changed.id].teams == frozenset({"finance", "ops"})
    # Tokens carry the teams: every one issued before the change is refused, refresh too.
    assert agent.jti in world.revocations.blocklist
    assert exchanged.jti in world.revocations.blocklist
    assert all(
        t.revoked_at is not None
        for t in world.store.refresh_tokens.values()
        if str(t.user_id) == agent.sub
    )
    pair = await world.service.login("alice", PASSWORD, client_address="10.0.0.1")
    assert (await world.verify(pair.access_token)).teams == frozenset({"finance", "ops"})
    refreshed = await world.service.refresh(pair.refresh_token or "")
    assert (await world.verify(refreshed.access_token)).teams == frozenset({"finance", "ops"})
    by_key = await world.service.exchange_api_key(plaintext)
    assert (await world.verify(by_key.access_token)).teams == frozenset({"finance", "ops"})

    unbound = await world.service.change_teams(admin, uuid.UUID(agent.sub), None)
    assert unbound.teams is None
    by_key = await world.service.exchange_api_key(plaintext)
    assert (await world.verify(by_key.access_token)).teams is None


async def test_an_unchanged_binding_ends_no_session_and_errors_are_refused(world):
    admin = await world.principal("root", Role.ADMIN)
    agent = await world.principal("alice")
    await world.service.change_teams(admin, uuid.UUID(agent.sub), None)
    assert agent.jti not in world.revocations.blocklist
    with pytest.raises(UserNotFound):
        await world.service.change_teams(admin, uuid.uuid4(), ["ops"])
    with pytest.raises(TeamsInvalid):
        await world.service.change_teams(admin, uuid.UUID(agent.sub), ["ops", ""])
    assert world.store.users[uuid.UUID(agent.sub)].teams is None


async def test_a_binding_or_role_change_redis_refuses_is_not_made_and_its_retry_ends_the_tokens(
    world,
):
    admin = await world.principal("root", Role.ADMIN)
    agent = await world.principal("alice")
    user_id = uuid.UUID(agent.sub)
    world.revocations.groups_down = True
    with pytest.raises(DependencyUnavailable):
        await world.service.change_teams(admin, user_id, ["ops"])
    with pytest.raises(DependencyUnavailable):
        await world.service.change_role(admin, user_id, Role.OPERATOR)
    # nothing committed: a retry is not an unchanged binding that would refuse no token
    assert world.store.users[user_id].teams is None
    assert world.store.users[user_id].role == Role.AGENT
    assert agent.jti not in world.revocations.blocklist

    world.revocations.groups_down = False
    assert (await world.service.change_teams(admin, user_id, ["ops"])).teams == {"ops"}
    assert agent.jti in world.revocations.blocklist


async def test_a_login_overtaken_by_a_team_change_issues_for_the_new_teams(world):
    user = await world.user("alice")
    store, service = world.store, world.service
    recorded = world.revocations.remember

    async def bind_while_recording(groups, jti, expires_at):
        # The change commits after the session was stored, before the token was recorded
        # among the account's live ones: its revocation cannot have seen this token.
        await recorded(groups, jti, expires_at)
        if store.users[user.id].teams is None:
            store.users[user.id] = dataclasses.replace(
                store.users[user.id], teams=frozenset({"ops"})
            )

    world.revocations.remember = bind_while_recording
    pair = await service.login("alice", PASSWORD, client_address="10.0.0.1")
    assert (await world.verify(pair.access_token)).teams == frozenset({"ops"})


async def test_deactivation_refuses_every_credential_and_keeps_one_admin(world):
    admin = await world.principal("root", Role.ADMIN)
    agent = await world.principal("alice")
    key, plaintext = await world.service.create_api_key(admin, "ci", uuid.UUID(agent.sub))
    exchanged = await world.verify((await world.service.exchange_api_key(plaintext)).access_token)

    user = await world.service.deactivate_user(uuid.UUID(agent.sub))

    assert user.is_active is False and world.store.users[user.id].is_active is False
    assert world.revocations.refuses(agent) and world.revocations.refuses(exchanged)
    assert world.store.api_keys[key.id].revoked_at is not None
    revoked = {
        str(t.user_id): t.revoked_at is not None for t in world.store.refresh_tokens.values()
    }
    assert revoked == {agent.sub: True, admin.sub: False}
    with pytest.raises(InvalidCredentials):
        await world.service.login("alice", PASSWORD, client_address="a")
    with pytest.raises(InvalidClient):
        await world.service.exchange_api_key(plaintext)
    with pytest.raises(LastAdmin, match="deactivated"):
        await world.service.deactivate_user(uuid.UUID(admin.sub))
    with pytest.raises(UserNotFound):
        await world.service.deactivate_user(uuid.uuid4())
    assert not world.revocations.refuses(admin)


async def test_pruning_deletes_only_expired_refresh_tokens(world):
    await world.user("alice")
    live = await world.service.login("alice", PASSWORD, client_address="a")
    world.service.policy = AuthPolicy(refresh_token_ttl_seconds=-1)  # born expired
    await world.service.login("alice", PASSWORD, client_address="a")
    await world.service.login("alice", PASSWORD, client_address="a")
    assert len(world.store.refresh_tokens) == 3

    assert await world.service.prune_expired_refresh_tokens(batch_size=1) == 2

    assert len(world.store.refresh_tokens) == 1
    assert await world.service.refresh(live.refresh_token)


async def test_scope_requests_narrow_but_never_widen(world):
    await world.user("alice")
    pair = await world.service.login("alice", PASSWORD, client_address="a", scope="healing:read")
    assert pair.scope == "healing:read"
    with pytest.raises(InvalidScope) as refused:
        await world.service.login("alice", PASSWORD, client_address="a", scope="users:write")
    assert refused.value.message == "the requested scope exceeds what the account is granted"


async def test_a_refresh_narrows_to_the_scope_asked_but_never_widens(world):
    await world.user("alice")
    pair = await world.service.login("alice", PASSWORD, client_address="a")
    narrowed = await world.service.refresh(pair.refresh_token, "healing:read")
    assert narrowed.scope == "healing:read"
    with pytest.raises(InvalidScope) as refused:
        await world.service.refresh(narrowed.refresh_token, "events:write healing:read")
    # the account has events:write: it is the narrowed session that lacks it
    assert refused.value.code == "invalid_scope"
    assert refused.value.message.startswith("the requested scope exceeds what this session holds")
    assert refused.value.details == {"not_granted": ["events:write"]}


async def test_api_keys_are_stored_hashed_and_exchange_until_revoked(world):
    operator = await world.principal("olivia", Role.OPERATOR)
    agent = await world.user("bot")
    key, plaintext = await world.service.create_api_key(operator, "ci", agent.id)
    assert plaintext not in {key.key_hash, key.prefix} and plaintext.startswith(key.prefix)
    pair = await world.service.exchange_api_key(plaintext)
    principal = await world.verify(pair.access_token, agent.id)
    assert pair.refresh_token is None and principal.role == "agent"

    assert principal.session_id == str(key.id)
    await world.service.revoke_api_key(operator, key.id)
    assert world.revocations.refuses(principal)
    with pytest.raises(InvalidClient):
        await world.service.exchange_api_key(plaintext)
    with pytest.raises(InvalidClient):
        await world.service.exchange_api_key("fo_ak_guess")


async def test_who_may_manage_which_keys(world):
    operator = await world.principal("olivia", Role.OPERATOR)
    other = await world.principal("oscar", Role.OPERATOR)
    admin = await world.user("root", Role.ADMIN)
    with pytest.raises(RoleNotAllowed):
        await world.service.create_api_key(operator, "x", admin.id)
    with pytest.raises(RoleNotAllowed):
        await world.service.create_api_key(operator, "x", uuid.UUID(other.sub))
    with pytest.raises(UserNotFound):
        await world.service.create_api_key(operator, "x", uuid.uuid4())
    own, _ = await world.service.create_api_key(operator, "mine")
    assert await world.service.list_api_keys(other) == []
    with pytest.raises(ApiKeyNotFound):
        await world.service.revoke_api_key(other, own.id)

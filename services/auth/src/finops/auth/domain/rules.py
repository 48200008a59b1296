"""Who may get which scopes, whose API keys an actor may manage, how logins are throttled."""

from __future__ import annotations

import hashlib
import ipaddress
import unicodedata
from dataclasses import dataclass
from uuid import UUID

from finops.auth.domain.errors import InvalidScope
from finops.common.auth.scopes import ROLE_RANK, Role, parse_scope, scopes_for


def granted_scopes(role: Role, requested: str | None) -> frozenset[str]:
    """Every scope of the role, or the requested subset of it (OAuth2 ``scope`` parameter)."""
    return narrowed_scopes(scopes_for(role), requested)


def narrowed_scopes(
    allowed: frozenset[str],
    requested: str | None,
    beyond: type[InvalidScope] = InvalidScope,
) -> frozenset[str]:
    """``allowed``, or the requested subset of it; asking for more is ``beyond``
    (:class:`InvalidScope`, or a subclass that says what ``allowed`` is).

    >>> sorted(narrowed_scopes(frozenset({"a", "b"}), "b"))
    ['b']
    >>> sorted(narrowed_scopes(frozenset({"a", "b"}), " "))
    ['a', 'b']
    """
    if not requested or not requested.strip():
        return allowed
    wanted = parse_scope(requested)
    if not wanted <= allowed:
        raise beyond(details={"not_granted": sorted(wanted - allowed)})
    return wanted


def may_act_for(actor_role: Role, actor_id: str, owner_role: Role, owner_id: str) -> bool:
    """An actor manages keys for itself and for roles below its own; an admin for anyone.

    An operator must not mint a key for an admin account: that key would be an admin token.
    """
    return (
        actor_id == owner_id
        or actor_role == Role.ADMIN
        or ROLE_RANK[owner_role] < ROLE_RANK[actor_role]
    )


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def account_throttle_key(user_id: UUID | None, login: str) -> str:
    """Failures count per account: its id, whichever spelling of the username or email
    reached it (PostgreSQL's ``lower()`` and Python's ``casefold()`` disagree, e.g. on "İ",
    so no normalisation of the typed name can stand for the account). A name that reaches
    no account is counted by what was typed, so unknown accounts are throttled too."""
    if user_id is not None:
        return f"account:{user_id}"
    return f"login:{_digest(unicodedata.normalize('NFKC', login).strip().casefold())}"


def address_throttle_key(client_address: str) -> str:
    return f"address:{_digest(client_address)}"


#: NAT64's well-known prefix (RFC 6052): the IPv4 address is the last 32 bits
NAT64_WELL_KNOWN_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")


def registering_client(client_address: str) -> str:
    """Who registers, for the registration throttle: an IPv4 address as it is, an IPv6 one by
    its /64 network (one host, or one customer's link, commonly holds a whole /64 and may
    pick any address in it), an IPv4 address written as IPv6 (``::ffff:a.b.c.d``) or
    translated by NAT64 (the well-known prefix ``64:ff9b::/96``, RFC 6052: every IPv4 client
    of the gateway behind one /64) as that IPv4 address, anything else (no peer address
    known) as it is.

    >>> registering_client("203.0.113.9")
    '203.0.113.9'
    >>> registering_client("2001:db8:1:2:aaaa::1") == registering_client("2001:db8:1:2::ffff")
    True
    >>> registering_client("2001:db8:1:2::1"), registering_client("::ffff:192.0.2.1")
    ('2001:db8:1:2::/64', '192.0.2.1')
    >>> registering_client("64:ff9b::c000:201"), registering_client("64:ff9b::203.0.113.7")
    ('192.0.2.1', '203.0.113.7')
    """
    try:
        address = ipaddress.ip_address(client_address)
    except ValueError:
        return client_address
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        if address in NAT64_WELL_KNOWN_PREFIX:
            return str(ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF))
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def registration_throttle_key(client_address: str) -> str:
    return f"register:{_digest(registering_client(client_address))}"


@dataclass(frozen=True)
class AttemptVerdict:
    """Whether a login attempt may be judged now.

    Not admitted with ``retry_after_seconds`` 0: only attempts still in flight fill a budget,
    and asking again in a moment may let it through.
    """

    admitted: bool
    #: failures fill a key's limit: the seconds until its window ends
    retry_after_seconds: int = 0


def user_group(user_id: object) -> str:
    return f"user:{user_id}"

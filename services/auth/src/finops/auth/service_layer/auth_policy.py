"""How long the auth service lets things take: token lifetimes, login and registration
limits, and the wait of a login held back by attempts in flight."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tenacity import RetryCallState, wait_exponential_jitter

from finops.auth.domain.rules import AttemptVerdict


@dataclass(frozen=True)
class AuthPolicy:
    refresh_token_ttl_seconds: int = 14 * 24 * 3600
    api_key_token_ttl_seconds: int = 15 * 60
    max_failures_per_account: int = 5
    max_failures_per_address: int = 50
    #: whether anyone may create an agent account (``POST /api/auth/register``); closed, only
    #: an admin does (``finops users create``)
    registration_open: bool = True
    #: registrations one client (``rules.registering_client``) may start per window
    max_registrations_per_address: int = 60
    #: registration hashes at once in this process, and how long one waits for a slot
    registration_hashes_in_flight: int = 2
    registration_hash_wait_seconds: float = 2.0
    #: a login held back only by attempts in flight waits for them this long at most, then is
    #: 429; it asks again after a backoff that doubles from the first wait (with up to as
    #: much again of jitter) up to the longest (one argon2 check takes tens of milliseconds;
    #: the longest wait is how late a login may be let in once the others are done)
    busy_wait_seconds: float = 5.0
    busy_first_wait_seconds: float = 0.02
    busy_longest_wait_seconds: float = 0.15


def held_back_by_attempts_in_flight(verdict: AttemptVerdict) -> bool:
    return not verdict.admitted and not verdict.retry_after_seconds


def busy_backoff(policy: AuthPolicy) -> Callable[[RetryCallState], float]:
    """The waits of a login held back by attempts in flight: doubling from
    ``busy_first_wait_seconds`` (plus up to as much again of jitter, so logins held back
    together do not all ask again at once) to ``busy_longest_wait_seconds``, the last one cut
    short so that all of them add up to ``busy_wait_seconds`` exactly.

    >>> policy = AuthPolicy(busy_wait_seconds=1.0, busy_first_wait_seconds=0.1,
    ...                     busy_longest_wait_seconds=0.3)
    >>> waits, state = [], RetryCallState(None, None, (), {})
    >>> while state.idle_for < 1.0:
    ...     state.attempt_number = len(waits) + 1
    ...     waits.append(busy_backoff(policy)(state))
    ...     state.idle_for += waits[-1]
    >>> 4 <= len(waits) <= 5, round(sum(waits), 9), all(w <= 0.3 for w in waits)
    (True, 1.0, True)
    """
    grow = wait_exponential_jitter(
        initial=policy.busy_first_wait_seconds,
        max=policy.busy_longest_wait_seconds,
        jitter=policy.busy_first_wait_seconds,
    )

    def wait(state: RetryCallState) -> float:
        return max(0.0, min(grow(state), policy.busy_wait_seconds - state.idle_for))

    return wait

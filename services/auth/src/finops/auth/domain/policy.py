"""Rules for new accounts: username, email and password. Pure functions, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from confusable_homoglyphs import categories, confusables
from email_validator import EmailNotValidError, validate_email

from finops.auth.domain.errors import AccountInvalid
from finops.auth.domain.passwords import normalized_text

USERNAME_PATTERN = re.compile(r"[a-z0-9_.-]{3,32}")
USERNAME_RULE = "3 to 32 characters of a-z, 0-9, '_', '.' and '-'"
PASSWORD_MIN_CHARS = 12
PASSWORD_MAX_CHARS = 128
EMAIL_MAX_CHARS = 254
# Characters no field may hold: C0/C1 controls (NUL breaks PostgreSQL text) and lone
# surrogates (they cannot be encoded as UTF-8 at all).
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True)
class NewAccount:
    username: str
    email: str  # as email-validator normalised it (domain lowercased, IDNA)


def problem(field: str, message: str, kind: str) -> dict[str, Any]:
    """One per-field problem, in the shape the platform's 422 details use."""
    return {"field": field, "message": message, "type": kind}


def has_forbidden_characters(value: str) -> bool:
    return _FORBIDDEN_CHARS.search(value) is not None


@cache
def common_passwords() -> frozenset[str]:
    text = resources.files("finops.auth.domain").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def _comparable(value: str) -> str:
    return "".join(normalized_text(value).split()).casefold()


def is_common_password(password: str) -> bool:
    listed = common_passwords()
    normalized = normalized_text(password)
    return normalized.strip().casefold() in listed or _comparable(normalized) in listed


def username_problems(username: str) -> list[dict[str, Any]]:
    if USERNAME_PATTERN.fullmatch(username) is None:
        return [problem("username", f"username must be {USERNAME_RULE}", "username_format")]
    return []


def normalized_email(email: str) -> tuple[str | None, list[dict[str, Any]]]:
    """(normalised address, problems). Never resolves the domain: deliverability is off."""
    if len(email) > EMAIL_MAX_CHARS or has_forbidden_characters(email):
        return None, [problem("email", "not a valid email address", "email_invalid")]
    try:
        result = validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        return None, [problem("email", f"not a valid email address: {exc}", "email_invalid")]
    return result.normalized, []


def email_warnings(email: str) -> list[dict[str, Any]]:
    """Signs that an address imitates another: a part of it (the local part, or a label of
    the domain) mixes scripts with letters that look alike, as "alice" spelled with a
    Cyrillic "a" (U+0430).

    Such addresses are valid and accepted; admins see these warnings in the user listing.
    Each part is judged alone, so a Latin name at a Cyrillic domain is not flagged.
    """
    local, _, domain = email.rpartition("@")
    warnings = []
    for part in [local, *domain.split(".")]:
        if part and confusables.is_dangerous(part):
            scripts = sorted(s.title() for s in categories.unique_aliases(part) - {"COMMON"})
            warnings.append(
                {
                    "code": "email_mixed_scripts",
                    "part": part,
                    "scripts": scripts,
                    "message": f"{part!r} mixes {' and '.join(scripts)} letters that look "
                    "alike: the address may imitate another one",
                }
            )
    return warnings


def password_problems(password: str, *, username: str, email: str) -> list[dict[str, Any]]:
    """The maximum length is counted in code points of the password as sent, as the OpenAPI
    document's ``maxLength`` says; the minimum must hold both as sent (``minLength``) and in
    the NFKC form, the one that is hashed, since that is the secret's real length; every
    other rule judges the NFKC form: a fullwidth "password" is "password".

    (Counting only the NFKC form would refuse 8 times U+FDFA, 8 code points that expand to
    144, which the schema allows; counting only the form as sent would accept twelve Hangul
    jamo that compose into a 4-character secret.)
    """
    normalized = normalized_text(password)
    if min(len(password), len(normalized)) < PASSWORD_MIN_CHARS:
        message = f"password must have at least {PASSWORD_MIN_CHARS} characters"
        return [problem("password", message, "password_too_short")]
    if len(password) > PASSWORD_MAX_CHARS:
        message = f"password must have at most {PASSWORD_MAX_CHARS} characters"
        return [problem("password", message, "password_too_long")]
    password = normalized
    if has_forbidden_characters(password):
        message = "password must not contain control characters"
        return [problem("password", message, "password_characters")]
    said = _comparable(password)
    local_part = email.rpartition("@")[0]
    if said in {_comparable(username), _comparable(email), _comparable(local_part)} - {""}:
        message = "password must not be the username or the email address"
        return [problem("password", message, "password_matches_identity")]
    if is_common_password(password):
        message = "password is too common; choose one that is not on lists of leaked passwords"
        return [problem("password", message, "password_common")]
    return []


def account_problems(
    username: str | None, email: str | None, password: str | None
) -> list[dict[str, Any]]:
    """Every rule the given fields break, at most one problem per field; a field that is
    ``None`` (absent from a request) is not judged.

    No rule waits for another field to be valid: the password is compared with the
    username and the email as they were typed, valid or not, since it must not repeat
    either one whatever the fate of the other fields.
    """
    problems = [] if username is None else username_problems(username)
    if email is not None:
        problems += normalized_email(email)[1]
    if password is not None:
        problems += password_problems(password, username=username or "", email=email or "")
    return problems


def check_new_account(username: str, email: str, password: str) -> NewAccount:
    """The account to create, or :class:`AccountInvalid` listing every problem per field."""
    problems = account_problems(username, email, password)
    if problems:
        raise AccountInvalid(problems)
    normalized, _ = normalized_email(email)
    assert normalized is not None
    return NewAccount(username=username, email=normalized)

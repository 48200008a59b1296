"""auth's request bodies: a field over its length says so in characters, and a control
character is refused (NUL or a lone surrogate would break hashing or PostgreSQL), before any
other check except in a registration, whose values are judged by the domain's rules, all at
once."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import BaseModel, ValidationError

from finops.auth.api.schemas import ApiKeyCreate, LoginRequest, RefreshRequest, RegisterRequest
from finops.auth.domain.policy import account_problems


def _errors(build: Callable[[], BaseModel]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        build()
    return [(error["type"], error["msg"]) for error in caught.value.errors()]


@pytest.mark.parametrize(
    ("build", "limit"),
    [
        # an access token sent where a refresh token goes: the first thing a user gets wrong
        (lambda: RefreshRequest(refresh_token="x" * 600), 512),
        (lambda: LoginRequest(login="a" * 400, password="p"), 254),
        (lambda: ApiKeyCreate(name=" " + "n" * 101), 100),
    ],
)
def test_a_field_over_its_length_says_how_many_characters_it_may_have(build, limit):
    assert _errors(build) == [("string_too_long", f"String should have at most {limit} characters")]


def test_a_control_character_is_refused_before_the_length_is_checked():
    assert _errors(lambda: RefreshRequest(refresh_token="x" * 600 + "\x00")) == [
        ("value_error", "Value error, control characters and unpaired surrogates are not allowed")
    ]


def test_an_api_key_name_is_stripped_before_its_length_is_checked():
    assert ApiKeyCreate(name="  deploy bot  ").name == "deploy bot"
    assert _errors(lambda: ApiKeyCreate(name="   ")) == [
        ("string_too_short", "String should have at least 1 character")
    ]


def test_a_registration_is_only_typed_by_its_schema():
    """Its rules are the domain's, judged all together, not the schema's one at a time."""
    body = RegisterRequest(username="Bad Name", email="a@example.com", password="password1234")
    assert body.username == "Bad Name"


def test_a_missing_registration_field_is_listed_with_the_rules_the_others_break():
    with pytest.raises(ValidationError) as caught:
        RegisterRequest.model_validate({"username": "Bad Name", "password": "password1234"})
    assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [
        (("email",), "missing"),
        (("username",), "username_format"),
        (("password",), "password_common"),
    ]


def test_a_rule_message_with_braces_is_kept_as_it_is():
    with pytest.raises(ValidationError) as caught:
        RegisterRequest.model_validate({"username": 7, "email": "a{b}@", "password": "x"})
    assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [
        (("username",), "string_type"),
        (("email",), "email_invalid"),
        (("password",), "password_too_short"),
    ]
    assert caught.value.errors()[1]["msg"].startswith("not a valid email address: ")


def _password_types(password: str) -> list[str]:
    """What the domain's rules (applied to every registration) say of a password."""
    return [p["type"] for p in account_problems(None, None, password)]


def test_the_password_length_rule_is_the_one_the_openapi_schema_states():
    """maxLength counts the password as sent, in code points, whatever NFKC makes of it
    ("\ufdfa" expands to 18 characters); minLength holds as sent and, since the NFKC form is
    the secret that is hashed, for that form too ("e" + U+0301 composes into one)."""
    schema = RegisterRequest.model_json_schema()["properties"]["password"]
    low, high = schema["minLength"], schema["maxLength"]
    expanding, composing = "\ufdfa", "e\u0301"
    assert _password_types(expanding * high) == []  # 2,304 characters once normalised
    assert _password_types(expanding * (high + 1)) == ["password_too_long"]
    assert _password_types(composing * (high // 2) + "x") == ["password_too_long"]
    assert _password_types(composing * (low // 2)) == ["password_too_short"]  # 6 once normalised
    assert _password_types(composing * low) == []  # 12 characters once normalised
    assert _password_types(expanding * (low - 1)) == ["password_too_short"]


def test_a_login_password_is_bounded_as_sent_before_anything_hashes_it():
    """A long password is refused by the schema, in code points as sent, so no hashing (nor
    NFKC normalisation) is spent on it; one that NFKC expands is still within the bound."""
    assert LoginRequest(login="alice", password="\ufdfa" * 1024).password == "\ufdfa" * 1024
    assert _errors(lambda: LoginRequest(login="alice", password="p" * 1025)) == [
        ("string_too_long", "String should have at most 1024 characters")
    ]

"""Username, email and password rules for new accounts."""

from __future__ import annotations

import pytest

from finops.auth.domain.errors import AccountInvalid
from finops.auth.domain.policy import (
    account_problems,
    check_new_account,
    common_passwords,
    is_common_password,
    password_problems,
)

GOOD = "violet tractor mirage 42"


def kinds(password: str, username: str = "alice", email: str = "alice@example.com") -> list[str]:
    return [p["type"] for p in password_problems(password, username=username, email=email)]


def test_a_good_account_passes_with_the_email_normalised():
    account = check_new_account("alice.ops-1_x", "Alice@EXAMPLE.com", GOOD)
    assert account.username == "alice.ops-1_x"
    assert account.email == "Alice@example.com"


@pytest.mark.parametrize(
    "username", ["ab", "a" * 33, "Alice", "al ice", "al@ice", "ålice", "x'--", ""]
)
def test_bad_usernames(username):
    with pytest.raises(AccountInvalid) as invalid:
        check_new_account(username, "a@example.com", GOOD)
    assert [p["field"] for p in invalid.value.details] == ["username"]


@pytest.mark.parametrize(
    "email", ["plain", "a@", "@b.com", "a b@c.com", "a@b@c.com", "a\x00@b.com", "x" * 250 + "@b.co"]
)
def test_bad_emails(email):
    with pytest.raises(AccountInvalid) as invalid:
        check_new_account("alice", email, GOOD)
    assert [p["field"] for p in invalid.value.details] == ["email"]


@pytest.mark.parametrize(
    "email",
    [
        "Ann <ann@example.com>",
        '"Ann" <ann@example.com>',
        "<ann@example.com>",
        " ann@example.com",
        "ann@example.com ",
        "\tann@example.com",
    ],
)
def test_an_email_is_a_bare_address_without_display_name_or_surrounding_spaces(email):
    """pydantic's EmailStr took "Ann <ann@example.com>" and trimmed spaces; the account's
    email is the bare address, so these are refused rather than rewritten."""
    with pytest.raises(AccountInvalid) as invalid:
        check_new_account("alice", email, GOOD)
    assert [(p["field"], p["type"]) for p in invalid.value.details] == [("email", "email_invalid")]


def test_every_field_is_judged_whatever_the_others_break():
    with pytest.raises(AccountInvalid) as invalid:
        check_new_account("Bad Name", "a@example.com", "password1234")
    assert [(p["field"], p["type"]) for p in invalid.value.details] == [
        ("username", "username_format"),
        ("password", "password_common"),
    ]


def test_the_password_is_compared_with_the_username_as_typed_even_when_invalid():
    assert account_problems("Bad.Name.Here", None, "bad.name.HERE") == [
        {
            "field": "username",
            "message": "username must be 3 to 32 characters of a-z, 0-9, '_', '.' and '-'",
            "type": "username_format",
        },
        {
            "field": "password",
            "message": "password must not be the username or the email address",
            "type": "password_matches_identity",
        },
    ]
    assert account_problems(None, None, "violet tractor mirage 42") == []


def test_no_network_is_needed_for_emails_of_unknown_domains():
    assert check_new_account("alice", "a@no-such-domain.invalid-tld-xyz", GOOD)


def test_password_length_is_counted_in_characters():
    assert kinds("x" * 11 + "y") == []  # not common, exactly 12
    assert kinds("abc12") == ["password_too_short"]
    assert kinds("ü" * 11) == ["password_too_short"]
    assert kinds("ü" * 12) == []
    assert kinds("p" * 128 + "q") == ["password_too_long"]


def test_password_must_not_be_the_username_or_email():
    assert kinds("LongUsername12", username="longusername12") == ["password_matches_identity"]
    assert kinds("alice@example.com") == ["password_matches_identity"]
    assert kinds("aliceinchains", email="aliceinchains@example.com") == [
        "password_matches_identity"
    ]


def test_common_passwords_are_refused_ignoring_case_and_spaces():
    assert len(common_passwords()) > 19_000
    assert is_common_password("Q1W2E3R4T5Y6")
    assert is_common_password("correct horse battery staple")
    assert not is_common_password(GOOD)
    assert kinds("qwertyuiop123") == ["password_common"]


def test_control_characters_are_refused():
    assert kinds("good password\x00 here") == ["password_characters"]


def fullwidth(ascii_text: str) -> str:
    """The same text in fullwidth forms (U+FF01-U+FF5E), as an East Asian keyboard types it."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in ascii_text)


def test_a_fullwidth_common_password_is_refused_after_nfkc_normalisation():
    typed = fullwidth("password1234")  # NFKC gives back "password1234", on the common list
    assert typed != "password1234"
    assert kinds(typed) == ["password_common"]
    assert is_common_password(typed)


def test_the_maximum_counts_code_points_as_sent_and_the_minimum_holds_in_both_forms():
    # The schema's maxLength counts the string as sent; NFKC may shrink or grow it. The
    # minimum must also hold for the NFKC form, the secret that is hashed.
    assert kinds("e\u0301" * 6) == ["password_too_short"]  # 12 sent, 6 "é" after NFKC
    assert kinds("e\u0301" * 12) == []  # 24 sent, 12 after NFKC
    assert kinds("\u1100\u1161\u11a8" * 4) == ["password_too_short"]  # 12 jamo, 4 syllables
    ligatures = "\ufb00" * 65  # 65 code points, 130 characters once normalised
    assert kinds(ligatures) == []
    expanding = "\ufdfa" * 8  # 8 code points sent, 144 after NFKC ("ﷺ" expands to 18)
    assert kinds(expanding + "abcd") == []
    assert kinds("\ufdfa" * 11) == ["password_too_short"]  # 11 sent, 198 after NFKC
    composing = "e\u0301" * 65  # 130 code points sent, 65 after NFKC
    assert kinds(composing) == ["password_too_long"]


def test_identity_is_compared_after_nfkc_normalisation():
    typed = fullwidth("LongUsername12")
    assert kinds(typed, username="longusername12") == ["password_matches_identity"]

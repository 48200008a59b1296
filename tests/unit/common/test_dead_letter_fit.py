"""A dead letter too large for one record is cut to fit (``fit_dead_letter``)."""

from __future__ import annotations

from finops.common.dead_letters import DLQ_KEPT_BYTES, DLQ_MAX_RECORD_BYTES, fit_dead_letter


def test_a_record_that_fits_is_parked_as_it_is():
    assert fit_dead_letter(b"k", b"v" * 1000, [("h", b"x"), ("n", None)]) == (
        b"k",
        b"v" * 1000,
        [("h", b"x"), ("n", b"")],
    )
    assert fit_dead_letter(None, None, []) == (None, None, [])


def test_a_large_key_value_and_headers_are_cut_and_their_sizes_said():
    key, value = b"k" * 300_000, b"v" * 500_000
    headers = [("big", b"h" * 200_000)]
    cut_key, cut_value, cut_headers = fit_dead_letter(key, value, headers)
    assert cut_key == key[:DLQ_KEPT_BYTES] and cut_value == value[:DLQ_KEPT_BYTES]
    assert cut_headers == [
        ("x-truncated-key-bytes", b"300000"),
        ("x-truncated-value-bytes", b"500000"),
        ("x-dropped-headers", b"1"),
    ]


def test_only_what_is_large_is_cut():
    value = b"v" * (DLQ_MAX_RECORD_BYTES + 1)
    key, cut_value, headers = fit_dead_letter(b"agent", value, [("h", b"x")])
    assert key == b"agent" and cut_value == value[:DLQ_KEPT_BYTES]
    assert headers == [("h", b"x"), ("x-truncated-value-bytes", str(len(value)).encode())]


def test_many_tiny_headers_count_their_framing_and_are_dropped():
    """100,000 one-byte headers hold 100 kB of text but take over 1 MB in the record (each
    header's two lengths): parked whole, the producer refused it."""
    headers = [("h", b"")] * 100_000
    key, value, cut_headers = fit_dead_letter(b"agent", b"v" * 100, headers)
    assert (key, value) == (b"agent", b"v" * 100)
    assert cut_headers == [("x-dropped-headers", b"100000")]

"""Canonical DNS names (protocol.names)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import BadRequest
from protocol.names import FQDN_PATTERN, MAX_NAME, check_fqdn, normalise_fqdn

BAD = {
    "../../etc": "not a DNS name",
    "": "empty",
    "a" * 300: "300 characters",
    "a\x00b": "not a DNS name",
    "UPPER.example": "upper-case",
    "trailing.dot.": "ends in a dot",
    "a..b": "not a DNS name",
    "-a.example": "not a DNS name",
    "a_b": "not a DNS name",
    "x" * 64: "not a DNS name",
    "a/b": "not a DNS name",
}


@pytest.mark.parametrize(("name", "reason"), BAD.items(), ids=repr)
def test_bad_names_are_refused_with_the_reason(name: str, reason: str) -> None:
    with pytest.raises(BadRequest, match=reason):
        check_fqdn(name)


@pytest.mark.parametrize(
    "name", ["proxy.example.com", "a", "x" * 63, ".".join(["a" * 63] * 3 + ["b" * 61])]
)
def test_good_names_are_returned(name: str) -> None:
    assert len(name) <= MAX_NAME
    assert check_fqdn(name) == name


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("Proxy.Example.COM.", "proxy.example.com"),
        ("  proxy.example.com\n", "proxy.example.com"),
        ("proxy.example.com", "proxy.example.com"),
    ],
)
def test_normalise(typed: str, canonical: str) -> None:
    assert normalise_fqdn(typed) == canonical


@pytest.mark.parametrize("typed", ["a..", "..", ".", "a b", "../etc", ""])
def test_normalise_still_refuses(typed: str) -> None:
    with pytest.raises(BadRequest):
        normalise_fqdn(typed)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_accepted_names_are_safe_file_name_parts(name: str) -> None:
    try:
        checked = check_fqdn(name)
    except BadRequest:
        return
    assert checked == name
    assert "/" not in name and "\x00" not in name and ".." not in name
    assert name == name.lower() and not name.startswith(".") and not name.endswith(".")
    assert 0 < len(name) <= MAX_NAME
    assert all(0 < len(label) <= 63 for label in name.split("."))


@settings(max_examples=100, deadline=None)
@given(st.from_regex(FQDN_PATTERN, fullmatch=True))
def test_pattern_matches_are_accepted_up_to_the_length_limit(name: str) -> None:
    if len(name) <= MAX_NAME:
        assert check_fqdn(name) == name
    else:
        with pytest.raises(BadRequest, match="DNS allows"):
            check_fqdn(name)

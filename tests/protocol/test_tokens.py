"""Join tokens and the proof of holding one (protocol.tokens)."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import catalogue, identity, tokens
from protocol.catalogue import Role
from protocol.errors import BadRequest

if TYPE_CHECKING:
    from tests.protocol.conftest import World

KEY = bytes(range(32))
CSR = b"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"
MSG_ID = bytes(range(100, 116))


def test_generated_tokens_have_the_documented_form() -> None:
    seen = set()
    for _ in range(200):
        token = tokens.generate()
        text = str(token)
        assert tokens.TOKEN_PATTERN.fullmatch(text)
        assert len(token.id) == tokens.ID_LENGTH == 6
        assert len(token.secret) == tokens.SECRET_LENGTH == 26
        assert text == f"{token.id}.{token.secret}"
        seen.add(text)
    assert len(seen) == 200
    # ... and the id is what the enroll_request's token_id field accepts.
    catalogue.TOKEN_ID.check("token_id", token.id)


def test_parse_round_trip() -> None:
    for _ in range(50):
        token = tokens.generate()
        assert tokens.parse(str(token)) == token
        assert str(tokens.parse(str(token))) == str(token)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc123",
        "abc123.",
        ".abcdefghijklmnopqrstuvwxyz",
        "abc123abcdefghijklmnopqrstuvwxyz",
        "ABC123.abcdefghijklmnopqrstuvwxyz",
        "abc123.abcdefghijklmnopqrstuvwxy",
        "abc123.abcdefghijklmnopqrstuvwxyz0",
        "abc12.abcdefghijklmnopqrstuvwxyz",
        "abc123.abcdefghijklmnopqrstuvwxyz\n",
        " abc123.abcdefghijklmnopqrstuvwxyz",
        "abc123:abcdefghijklmnopqrstuvwxyz",
        "abc-23.abcdefghijklmnopqrstuvwxyz",
        "abc123.abcdefghijklmnopqrstuvwx\u0661z",
    ],
    ids=repr,
)
def test_parse_refuses_malformed_tokens(text: str) -> None:
    with pytest.raises(BadRequest, match=re.escape("<id>.<secret>")):
        tokens.parse(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_parse_accepts_exactly_the_pattern(text: str) -> None:
    if tokens.TOKEN_PATTERN.fullmatch(text):
        assert str(tokens.parse(text)) == text
    else:
        with pytest.raises(BadRequest):
            tokens.parse(text)


def test_proof_key_is_derived_one_way_and_deterministically() -> None:
    token = tokens.parse("abc123.abcdefghijklmnopqrstuvwxyz")
    key = tokens.derive_proof_key(token.secret)
    assert key == tokens.derive_proof_key("abcdefghijklmnopqrstuvwxyz")
    assert key == token.proof_key
    assert len(key) == 32
    assert token.secret.encode() not in key and key != token.secret.encode()
    assert key != hashlib.sha256(token.secret.encode()).digest()  # it has a context
    # The wire-visible construction, pinned (docs/protocol.md describes it).
    assert key == hashlib.sha256(b"wsproxy-agent/v1 token key\x00" + token.secret.encode()).digest()
    assert tokens.derive_proof_key("abcdefghijklmnopqrstuvwxy0") != key


def test_proof_construction_is_the_documented_one() -> None:
    key = tokens.derive_proof_key("abcdefghijklmnopqrstuvwxyz")
    framed = b"".join(len(p).to_bytes(4, "big") + p for p in (KEY, CSR, MSG_ID))
    expected = hmac.new(key, framed, hashlib.sha256).digest()
    assert tokens.proof(key, KEY, CSR, MSG_ID) == expected
    assert len(expected) == 32


def test_length_prefixes_keep_fields_apart() -> None:
    key = tokens.derive_proof_key("abcdefghijklmnopqrstuvwxyz")
    assert tokens.proof(key, b"ab", b"c", MSG_ID) != tokens.proof(key, b"a", b"bc", MSG_ID)


def test_proof_matches_only_the_exact_inputs() -> None:
    token = tokens.generate()
    proof = tokens.proof(token.proof_key, KEY, CSR, MSG_ID)
    assert tokens.proof_matches(token.proof_key, KEY, CSR, MSG_ID, proof)
    other_key = tokens.derive_proof_key(tokens.generate().secret)
    flipped = bytes([KEY[0] ^ 1]) + KEY[1:]
    assert not tokens.proof_matches(other_key, KEY, CSR, MSG_ID, proof)
    assert not tokens.proof_matches(token.proof_key, flipped, CSR, MSG_ID, proof)
    assert not tokens.proof_matches(token.proof_key, KEY, CSR + b"\n", MSG_ID, proof)
    assert not tokens.proof_matches(token.proof_key, KEY, CSR, MSG_ID[::-1], proof)
    assert not tokens.proof_matches(token.proof_key, KEY, CSR, MSG_ID, proof[:-1])
    assert not tokens.proof_matches(token.proof_key, KEY, CSR, MSG_ID, bytes(32))


@settings(max_examples=200, deadline=None)
@given(
    field=st.sampled_from(["key", "identity_key", "csr", "msg_id"]),
    replacement=st.binary(max_size=64),
)
def test_proof_fails_when_any_input_differs(field: str, replacement: bytes) -> None:
    inputs = {"key": b"k" * 32, "identity_key": KEY, "csr": CSR, "msg_id": MSG_ID}
    proof = tokens.proof(inputs["key"], inputs["identity_key"], inputs["csr"], inputs["msg_id"])
    changed = {**inputs, field: replacement}
    matches = tokens.proof_matches(
        changed["key"], changed["identity_key"], changed["csr"], changed["msg_id"], proof
    )
    assert matches == (replacement == inputs[field])


def test_enroll_request_carries_a_checkable_proof(world: World) -> None:
    """End to end: the engine can check the proof a sealed enroll_request carries."""
    token = world.token
    identity_key = identity.public_raw(world.proxy)
    csr = world.bodies["enroll_request"]["csr"]
    msg_id = bytes(range(16))
    proof = tokens.proof(token.proof_key, identity_key, csr.encode(), msg_id)
    body = {**world.bodies["enroll_request"], "token_proof": proof}
    sealed = world.seal(Role.ENGINE, "enroll_request", body, msg_id=msg_id)
    receiver, _ = world.receiver(Role.ENGINE, knows=[])
    msg = receiver.receive(sealed.frames, world.now_ms)
    stored = tokens.derive_proof_key(token.secret)  # what the engine keeps
    args = (msg.blob("identity_key"), msg.text("csr").encode(), msg.id)
    assert tokens.proof_matches(stored, *args, msg.blob("token_proof"))
    # The same proof replayed on a new message id does not match.
    assert not tokens.proof_matches(stored, *args[:2], bytes(16), msg.blob("token_proof"))

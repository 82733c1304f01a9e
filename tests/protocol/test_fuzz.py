"""Anything fed to Receiver.receive yields a Message or a ProtocolError, never another error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgpack
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from protocol import catalogue, codec, identity
from protocol.catalogue import CATALOGUE, Role
from protocol.envelope import HEADER_FIELDS, Message
from protocol.errors import ProtocolError
from protocol.receive import Receiver

if TYPE_CHECKING:
    from tests.protocol.conftest import World

SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ints = st.integers(-(2**63), 2**64 - 1)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=24),
    st.binary(max_size=40),
)
keys = st.one_of(st.text(max_size=12), st.integers(-5, 5), st.binary(max_size=4))
exts = st.one_of(
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=16)),
    st.builds(msgpack.Timestamp, st.integers(0, 2**34 - 1), st.integers(0, 999_999_999)),
)
values = st.recursive(
    st.one_of(scalars, exts),
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.text(max_size=12), children, max_size=6),
        st.dictionaries(keys, children, max_size=4),
    ),
    max_leaves=20,
)
# Values the protocol itself can carry (what codec.encode accepts).
protocol_values = st.recursive(
    st.one_of(st.none(), st.booleans(), ints, st.text(max_size=24), st.binary(max_size=40)),
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.text(max_size=12), children, max_size=6),
    ),
    max_leaves=12,
)
signatures = st.one_of(st.binary(min_size=64, max_size=64), st.binary(max_size=100))
ROLES = st.sampled_from(list(Role))


def note(what: str) -> None:
    if currently_in_test_context():
        event(what)  # shown by pytest --hypothesis-show-statistics


def outcome(receiver: Receiver, frames: Sequence[bytes], now_ms: int) -> Message | ProtocolError:
    """Receive, and hand back the Message or the ProtocolError; anything else propagates."""
    try:
        msg = receiver.receive(frames, now_ms)
    except ProtocolError as exc:
        assert exc.sentence
        note(f"{type(exc).__name__}: {exc.sentence[:30]}")
        return exc
    note("accepted")
    assert isinstance(msg, Message)
    # A message that got through is one the catalogue accepts for this role, fully checked.
    mt = CATALOGUE[(receiver.role, msg.type)]
    mt.schema.check(msg.body)
    assert abs(msg.ts - now_ms) <= receiver.window_ms
    return msg


@SETTINGS
@given(role=ROLES, payload=st.binary(max_size=600), signature=signatures)
def test_arbitrary_bytes(world: World, role: Role, payload: bytes, signature: bytes) -> None:
    receiver, _ = world.receiver(role)
    assert isinstance(outcome(receiver, (payload, signature), world.now_ms), ProtocolError)


@SETTINGS
@given(role=ROLES, value=values, signature=signatures)
def test_arbitrary_msgpack_values(
    world: World, role: Role, value: object, signature: bytes
) -> None:
    receiver, _ = world.receiver(role)
    payload = msgpack.packb(value, use_bin_type=True)
    assert isinstance(outcome(receiver, (payload, signature), world.now_ms), ProtocolError)


@SETTINGS
@given(data=st.data(), role=ROLES, signed=st.booleans())
def test_envelope_shaped_maps(world: World, data: st.DataObject, role: Role, signed: bool) -> None:
    """Each field is either plausible or random, so every pipeline stage gets reached."""
    accepted = sorted(catalogue.accepted_by(role))
    plausible = {
        "v": st.sampled_from([catalogue.PROTOCOL_VERSION] * 4 + [0, 2]),
        "type": st.sampled_from([*accepted, "error", "enroll_approved", "heartbeat", ""]),
        "id": st.binary(min_size=16, max_size=16),
        "re": st.one_of(st.none(), st.binary(min_size=16, max_size=16)),
        "ts": st.integers(world.now_ms - 400_000, world.now_ms + 400_000),
        "from": st.sampled_from([world.fp(world.peer(role)), world.fp(world.stranger), "SHA256:x"]),
        "to": st.sampled_from([world.fp(world.own(role)), world.fp(world.peer(role))]),
        "body": st.one_of(
            st.sampled_from(list(world.bodies.values())),
            st.dictionaries(st.text(max_size=12), protocol_values, max_size=6),
        ),
    }
    # Mostly plausible fields, so that later stages of the pipeline are reached too.
    envelope = {}
    for name in HEADER_FIELDS:
        how = data.draw(st.sampled_from(["plausible"] * 30 + ["random", "missing"]), label=name)
        if how != "missing":
            strategy = protocol_values if how == "random" else plausible[name]
            envelope[name] = data.draw(strategy, label=name)
    if data.draw(st.sampled_from([False] * 30 + [True]), label="extra field?"):
        envelope[data.draw(st.text(max_size=6), label="extra")] = None
    payload = codec.encode(envelope)
    signature = (
        world.peer(role).sign(b"wsproxy-agent/v1 message\x00" + payload)
        if signed
        else data.draw(st.binary(min_size=64, max_size=64), label="signature")
    )
    receiver, _ = world.receiver(role, knows=[world.peer(role), world.stranger])
    outcome(receiver, (payload, signature), world.now_ms)


def mutated_body(data: st.DataObject, body: dict[str, Any]) -> dict[str, Any]:
    """A valid body with one field replaced by any value, dropped, or one added: what the
    schema must refuse or pass through unchanged."""
    body = dict(body)
    action = data.draw(st.sampled_from(["replace", "drop", "add", "none"]), label="action")
    names = sorted(body) or ["x"]
    name = data.draw(st.sampled_from(names), label="field")
    if action == "replace":
        body[name] = data.draw(protocol_values, label="value")
    elif action == "drop":
        body.pop(name, None)
    elif action == "add":
        body[data.draw(st.text(max_size=12), label="new field")] = data.draw(protocol_values)
    return body


@SETTINGS
@given(data=st.data())
def test_validly_signed_messages_with_random_bodies(world: World, data: st.DataObject) -> None:
    """Past the signature, only the schema stands between a body and a handler."""
    role, name = data.draw(st.sampled_from(sorted(CATALOGUE, key=str)), label="type")
    mt = CATALOGUE[(role, name)]
    body = mutated_body(data, world.bodies[name])
    envelope = world.envelope(role, name, body=body)
    signer = world.peer(role)
    if mt.self_certified and isinstance(body.get("identity_key"), bytes):
        envelope["from"] = identity.fingerprint(body["identity_key"])
    receiver, _ = world.receiver(role)
    result = outcome(receiver, world.sign(signer, envelope), world.now_ms)
    if isinstance(result, Message):
        assert result.body == body


@SETTINGS
@given(raw=st.binary(min_size=32, max_size=32), signature=st.binary(min_size=64, max_size=64))
def test_self_certified_request_with_random_key(world: World, raw: bytes, signature: bytes) -> None:
    """Any 32 bytes as the identity key (most are not curve points) end in a ProtocolError."""
    body = {**world.bodies["enroll_request"], "identity_key": raw}
    envelope = world.envelope(
        Role.ENGINE, "enroll_request", body=body, **{"from": identity.fingerprint(raw)}
    )
    receiver, _ = world.receiver(Role.ENGINE, knows=[])
    payload = codec.encode(envelope)
    assert isinstance(outcome(receiver, (payload, signature), world.now_ms), ProtocolError)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xc1",
        b"\xdd\xff\xff\xff\xff",
        b"\xdb\xff\xff\xff\xff",
        b"\xc6\xff\xff\xff\xff",
        b"\xdf\xff\xff\xff\xff",
        b"\x91" * 100_000 + b"\xc0",
        b"\x81" + b"\xa1a\x81" * 50_000 + b"\xc0",
        b"\xd6\xff\x00\x00\x00\x00",
        b"\x80\x80",
    ],
    ids=lambda p: p[:6].hex(),
)
def test_hostile_payloads(world: World, payload: bytes) -> None:
    receiver, _ = world.receiver(Role.ENGINE)
    assert isinstance(outcome(receiver, (payload, bytes(64)), world.now_ms), ProtocolError)

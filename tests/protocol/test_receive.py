"""The receive pipeline: every type round trips, and every refusal of DESIGN §4 holds."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import catalogue, identity
from protocol.catalogue import CATALOGUE, PROTOCOL_VERSION, TYPE_NAMES, Role
from protocol.envelope import Message, signed_bytes
from protocol.errors import (
    BadRequest,
    ClockSkew,
    ErrorCode,
    Expired,
    ProtocolError,
    Replayed,
    Unauthorized,
    VersionRefused,
)
from protocol.receive import DEFAULT_WINDOW_MS

if TYPE_CHECKING:
    from tests.protocol.conftest import World

ALL_TYPES = sorted(CATALOGUE, key=lambda k: (k[0].value, k[1]))
REPLY_TYPES = [k for k in ALL_TYPES if CATALOGUE[k].reply]
ONE_ROLE_TYPES = [k for k in ALL_TYPES if k[1] != catalogue.ERROR]  # error goes both ways
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def type_id(key: tuple[Role, str]) -> str:
    return f"{key[0].value}-{key[1]}"


def test_examples_cover_the_whole_catalogue(world: World) -> None:
    assert set(world.bodies) == set(TYPE_NAMES)
    for (_, name), mt in CATALOGUE.items():
        mt.schema.check(world.bodies[name])


@pytest.mark.parametrize("key", ALL_TYPES, ids=type_id)
def test_every_type_round_trips(world: World, key: tuple[Role, str]) -> None:
    role, name = key
    receiver, _ = world.receiver(role, knows=[] if CATALOGUE[key].self_certified else None)
    sealed = world.seal(role, name)
    msg = receiver.receive(sealed.frames, world.now_ms)
    assert isinstance(msg, Message)
    assert msg.type == name
    assert msg.id == sealed.id
    assert msg.version == PROTOCOL_VERSION
    assert msg.ts == world.now_ms
    assert msg.sender == world.fp(world.peer(role))
    assert msg.recipient == world.fp(world.own(role))
    assert msg.body == world.bodies[name]
    assert (msg.re is not None) == CATALOGUE[key].reply


def test_sealed_message_is_accepted_once_unmodified(world: World) -> None:
    # The flip property below is only meaningful if the original frames are accepted.
    sealed = world.seal(Role.ENGINE, catalogue.HEARTBEAT)
    receiver, _ = world.receiver(Role.ENGINE)
    assert receiver.receive(sealed.frames, world.now_ms).type == catalogue.HEARTBEAT


@SETTINGS
@given(data=st.data())
def test_any_flipped_byte_is_refused(world: World, data: st.DataObject) -> None:
    role, name = data.draw(st.sampled_from(ALL_TYPES), label="type")
    sealed = world.seal(role, name)
    payload, signature = sealed.frames
    joined = bytearray(payload + signature)
    position = data.draw(st.integers(0, len(joined) - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="mask")
    joined[position] ^= mask
    frames = (bytes(joined[: len(payload)]), bytes(joined[len(payload) :]))
    receiver, _ = world.receiver(role, knows=[world.peer(role)])
    with pytest.raises(ProtocolError):
        receiver.receive(frames, world.now_ms)


def test_sender_claiming_another_known_key_is_refused(world: World) -> None:
    receiver, _ = world.receiver(Role.ENGINE, knows=[world.proxy, world.stranger])
    envelope = world.envelope(Role.ENGINE, catalogue.HEARTBEAT, **{"from": world.fp(world.proxy)})
    with pytest.raises(Unauthorized, match="signature"):
        receiver.receive(world.sign(world.stranger, envelope), world.now_ms)
    # The same envelope signed by the key it names is accepted, so the refusal is the key.
    assert receiver.receive(world.sign(world.proxy, envelope), world.now_ms).type == "heartbeat"


def test_message_for_another_recipient_is_refused(world: World) -> None:
    receiver, _ = world.receiver(Role.ENGINE)
    sealed = world.seal(Role.ENGINE, catalogue.HEARTBEAT)
    other = world.seal(Role.ENGINE, catalogue.HEARTBEAT)
    forged = world.envelope(Role.ENGINE, catalogue.HEARTBEAT, to=world.fp(world.stranger))
    with pytest.raises(Unauthorized, match="addressed to"):
        receiver.receive(world.sign(world.proxy, forged), world.now_ms)
    assert receiver.receive(sealed.frames, world.now_ms).id == sealed.id
    assert receiver.receive(other.frames, world.now_ms).id == other.id


def test_replay_within_the_window_is_refused(world: World) -> None:
    receiver, _ = world.receiver(Role.ENGINE)
    sealed = world.seal(Role.ENGINE, catalogue.HEARTBEAT)
    receiver.receive(sealed.frames, world.now_ms)
    with pytest.raises(Replayed):
        receiver.receive(sealed.frames, world.now_ms + 1)
    # A differently signed message reusing the id is a replay too.
    again = world.seal(Role.ENGINE, catalogue.HEARTBEAT, msg_id=sealed.id, now_ms=world.now_ms + 5)
    with pytest.raises(Replayed):
        receiver.receive(again.frames, world.now_ms + 10)


def test_forged_copy_does_not_burn_the_id(world: World) -> None:
    receiver, _ = world.receiver(Role.ENGINE)
    sealed = world.seal(Role.ENGINE, catalogue.HEARTBEAT)
    forged = (sealed.frames[0], bytes(64))
    with pytest.raises(Unauthorized):
        receiver.receive(forged, world.now_ms)
    assert receiver.receive(sealed.frames, world.now_ms).id == sealed.id


@pytest.mark.parametrize("offset", [DEFAULT_WINDOW_MS + 1, -(DEFAULT_WINDOW_MS + 1), 10**12])
def test_message_outside_the_window_is_expired(world: World, offset: int) -> None:
    # offset > 0: the message is older than the window; < 0: the sender's clock is ahead.
    receiver, _ = world.receiver(Role.ENGINE)
    sealed = world.seal(Role.ENGINE, catalogue.HEARTBEAT, now_ms=world.now_ms - offset)
    with pytest.raises(Expired):
        receiver.receive(sealed.frames, world.now_ms)


@pytest.mark.parametrize(("offset", "direction"), [(-600_000, "ahead of"), (600_000, "behind")])
def test_a_stamp_outside_the_window_names_the_clock_skew(
    world: World, offset: int, direction: str
) -> None:
    receiver, _ = world.receiver(Role.ENGINE)
    sealed = world.seal(Role.ENGINE, catalogue.HEARTBEAT, now_ms=world.now_ms - offset)
    with pytest.raises(ClockSkew, match=f"stamped 600 s {direction} our clock") as refused:
        receiver.receive(sealed.frames, world.now_ms)
    assert "clock skew" in refused.value.sentence
    assert refused.value.skew_ms == -offset  # the sender's clock minus ours
    assert refused.value.code is ErrorCode.EXPIRED  # on the wire it stays 'expired'


@pytest.mark.parametrize("offset", [DEFAULT_WINDOW_MS, -DEFAULT_WINDOW_MS, 0])
def test_message_at_the_window_edge_is_accepted(world: World, offset: int) -> None:
    receiver, _ = world.receiver(Role.ENGINE)
    sealed = world.seal(Role.ENGINE, catalogue.HEARTBEAT, now_ms=world.now_ms - offset)
    assert receiver.receive(sealed.frames, world.now_ms).ts == world.now_ms - offset


def test_custom_window_is_honoured(world: World) -> None:
    receiver, _ = world.receiver(Role.ENGINE, window_ms=1000)
    edge = world.seal(Role.ENGINE, catalogue.HEARTBEAT, now_ms=world.now_ms - 1000)
    late = world.seal(Role.ENGINE, catalogue.HEARTBEAT, now_ms=world.now_ms - 1001)
    receiver.receive(edge.frames, world.now_ms)
    with pytest.raises(Expired):
        receiver.receive(late.frames, world.now_ms)


def test_version_below_the_receivers_floor_is_refused(world: World) -> None:
    receiver, _ = world.receiver(Role.ENGINE, min_version=2)
    sealed = world.seal(Role.ENGINE, catalogue.HEARTBEAT, version=1)
    with pytest.raises(VersionRefused, match="below"):
        receiver.receive(sealed.frames, world.now_ms)


def test_version_zero_is_refused(world: World) -> None:
    receiver, _ = world.receiver(Role.ENGINE)
    sealed = world.seal(Role.ENGINE, catalogue.HEARTBEAT, version=0)
    with pytest.raises(VersionRefused, match="below"):
        receiver.receive(sealed.frames, world.now_ms)


def test_version_above_ours_is_refused(world: World) -> None:
    receiver, _ = world.receiver(Role.ENGINE)
    sealed = world.seal(Role.ENGINE, catalogue.HEARTBEAT, version=PROTOCOL_VERSION + 1)
    with pytest.raises(VersionRefused, match="newer"):
        receiver.receive(sealed.frames, world.now_ms)


def test_unknown_type_is_refused_before_the_signature(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[bytes] = []
    real_verify = identity.verify

    def spy(key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
        verified.append(data)
        return real_verify(key, signature, data)

    monkeypatch.setattr(identity, "verify", spy)
    receiver, keys = world.receiver(Role.ENGINE)
    envelope = world.envelope(Role.ENGINE, "give_me_root", body={})
    payload, _ = world.sign(world.proxy, envelope)
    with pytest.raises(BadRequest, match="give_me_root") as refused:
        receiver.receive((payload, bytes(64)), world.now_ms)
    assert type(refused.value) is BadRequest
    assert keys.calls == []
    assert verified == []
    # The spy is live: a known type does reach the lookup and the verification.
    receiver.receive(world.seal(Role.ENGINE, catalogue.HEARTBEAT).frames, world.now_ms)
    assert keys.calls == [world.fp(world.proxy)]
    assert len(verified) == 1


@pytest.mark.parametrize("key", ONE_ROLE_TYPES, ids=type_id)
def test_type_for_the_other_role_is_refused(world: World, key: tuple[Role, str]) -> None:
    role, name = key
    other = Role.PROXY if role is Role.ENGINE else Role.ENGINE
    receiver, keys = world.receiver(other, knows=[world.engine, world.proxy])
    envelope = world.envelope(
        role,
        name,
        to=world.fp(world.own(other)),
        **{"from": world.fp(world.peer(other))},
    )
    with pytest.raises(BadRequest, match=f"does not accept messages of type '{name}'"):
        receiver.receive(world.sign(world.peer(other), envelope), world.now_ms)
    assert keys.calls == []


def test_enrolled_only_type_from_unknown_sender_is_refused(world: World) -> None:
    receiver, keys = world.receiver(Role.ENGINE, knows=[])
    sealed = world.seal(Role.ENGINE, catalogue.HEARTBEAT, key=world.stranger)
    with pytest.raises(Unauthorized, match="No key is held"):
        receiver.receive(sealed.frames, world.now_ms)
    assert keys.calls == [world.fp(world.stranger)]


def test_enroll_request_from_unknown_sender_signed_by_body_key_is_accepted(world: World) -> None:
    receiver, keys = world.receiver(Role.ENGINE, knows=[])
    body = {**world.bodies["enroll_request"], "identity_key": identity.public_raw(world.stranger)}
    sealed = world.seal(Role.ENGINE, catalogue.ENROLL_REQUEST, body, key=world.stranger)
    msg = receiver.receive(sealed.frames, world.now_ms)
    assert msg.sender == world.fp(world.stranger)
    assert msg.body["identity_key"] == identity.public_raw(world.stranger)
    assert keys.calls == []


def test_enroll_request_whose_body_key_is_not_the_sender_is_refused(world: World) -> None:
    receiver, _ = world.receiver(Role.ENGINE, knows=[])
    # Signed by the stranger, 'from' the stranger, but the body carries the proxy's key.
    sealed = world.seal(Role.ENGINE, catalogue.ENROLL_REQUEST, key=world.stranger)
    with pytest.raises(Unauthorized, match="does not match"):
        receiver.receive(sealed.frames, world.now_ms)


def test_enroll_request_not_signed_by_its_body_key_is_refused(world: World) -> None:
    receiver, _ = world.receiver(Role.ENGINE, knows=[])
    envelope = world.envelope(Role.ENGINE, catalogue.ENROLL_REQUEST)  # from/body: the proxy
    with pytest.raises(Unauthorized, match="signature"):
        receiver.receive(world.sign(world.stranger, envelope), world.now_ms)


P = 2**255 - 19
Y8 = int.from_bytes(
    bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"), "little"
)
SMALL_ORDER_Y = [0, 1, P - 1, Y8, P - Y8]
SMALL_ORDER_KEYS = [
    (y | sign << 255).to_bytes(32, "little")
    for base in SMALL_ORDER_Y
    for y in (base, base + P)
    if y < 2**255
    for sign in (0, 1)
]


def test_small_order_y_values_are_really_small_order() -> None:
    # Independent of identity.py: the order-8 y solves d*y^4 + 2*y^2 - 1 = 0 (doubling it
    # gives y = 0, the order-4 points), and the other values are the order 1, 2, 4 points.
    d = -121665 * pow(121666, -1, P) % P
    assert (d * Y8**4 + 2 * Y8**2 - 1) % P == 0
    assert len(SMALL_ORDER_KEYS) == 14


@pytest.mark.parametrize("raw", SMALL_ORDER_KEYS, ids=lambda r: r.hex()[:8] + r.hex()[-2:])
def test_enroll_request_with_small_order_key_is_refused(world: World, raw: bytes) -> None:
    """Such a key proves nothing: OpenSSL accepts signatures made for it without a secret."""
    public = Ed25519PublicKey.from_public_bytes(raw)
    body = {**world.bodies["enroll_request"], "identity_key": raw}
    candidates = [
        (y | sign << 255).to_bytes(32, "little") + bytes(32)
        for y in SMALL_ORDER_Y
        for sign in (0, 1)
    ]
    # Grind message ids until a signature made without any private key verifies.
    for _ in range(200):
        envelope = world.envelope(
            Role.ENGINE, catalogue.ENROLL_REQUEST, body=body, **{"from": identity.fingerprint(raw)}
        )
        payload, _ = world.sign(world.stranger, envelope)
        forged = None
        for signature in candidates:
            try:
                public.verify(signature, signed_bytes(payload))
            except InvalidSignature:
                continue
            forged = signature
            break
        if forged is not None:
            break
    assert forged is not None, "the forgery this test guards against no longer works"
    receiver, _ = world.receiver(Role.ENGINE, knows=[])
    with pytest.raises(BadRequest, match="small order"):
        receiver.receive((payload, forged), world.now_ms)


@pytest.mark.parametrize("key", REPLY_TYPES, ids=type_id)
def test_reply_without_re_is_refused(world: World, key: tuple[Role, str]) -> None:
    role, name = key
    receiver, keys = world.receiver(role)
    envelope = world.envelope(role, name, re=None)
    with pytest.raises(BadRequest, match="'re'"):
        receiver.receive(world.sign(world.peer(role), envelope), world.now_ms)
    assert keys.calls == []


def test_message_answers_its_request(world: World) -> None:
    request_id = secrets.token_bytes(16)
    receiver, _ = world.receiver(Role.PROXY)
    sealed = world.seal(Role.PROXY, catalogue.ENROLL_PENDING, re=request_id)
    msg = receiver.receive(sealed.frames, world.now_ms)
    assert msg.re == request_id
    assert msg.answers(request_id)
    assert not msg.answers(secrets.token_bytes(16))
    assert not msg.answers(sealed.id)
    unsolicited = receiver.receive(
        world.seal(Role.PROXY, catalogue.REVOKE_NOTICE).frames, world.now_ms
    )
    assert unsolicited.re is None
    assert not unsolicited.answers(request_id)


@pytest.mark.parametrize("count", [0, 1, 3])
def test_wrong_frame_count_is_refused(world: World, count: int) -> None:
    receiver, _ = world.receiver(Role.ENGINE)
    payload, signature = world.seal(Role.ENGINE, catalogue.HEARTBEAT).frames
    frames = [payload, signature, signature][:count]
    with pytest.raises(BadRequest, match="2 frames"):
        receiver.receive(frames, world.now_ms)


@pytest.mark.parametrize("size", [0, 63, 65, 128])
def test_wrong_signature_size_is_refused(world: World, size: int) -> None:
    receiver, _ = world.receiver(Role.ENGINE)
    payload, signature = world.seal(Role.ENGINE, catalogue.HEARTBEAT).frames
    with pytest.raises(BadRequest, match="64 bytes"):
        receiver.receive((payload, (signature * 3)[:size]), world.now_ms)


@pytest.mark.parametrize(
    "change",
    [
        {"v": True},
        {"v": "1"},
        {"ts": True},
        {"ts": 1.5e12},
        {"id": secrets.token_bytes(15)},
        {"id": secrets.token_bytes(17)},
        {"id": "0123456789abcdef"},
        {"re": secrets.token_bytes(8)},
        {"type": b"heartbeat"},
        {"from": None},
        {"to": b"x"},
        {"body": []},
        {"body": None},
        {"extra": 1},
    ],
    ids=repr,
)
def test_malformed_envelope_is_refused(world: World, change: dict[str, object]) -> None:
    receiver, keys = world.receiver(Role.ENGINE)
    envelope = world.envelope(Role.ENGINE, catalogue.HEARTBEAT, **change)
    with pytest.raises(BadRequest):
        receiver.receive(world.sign(world.proxy, envelope), world.now_ms)
    assert keys.calls == []


@pytest.mark.parametrize("missing", ["v", "type", "id", "re", "ts", "from", "to", "body"])
def test_envelope_missing_a_field_is_refused(world: World, missing: str) -> None:
    receiver, _ = world.receiver(Role.ENGINE)
    envelope = world.envelope(Role.ENGINE, catalogue.HEARTBEAT)
    del envelope[missing]
    with pytest.raises(BadRequest, match="exactly"):
        receiver.receive(world.sign(world.proxy, envelope), world.now_ms)


def test_body_is_checked_after_the_signature(world: World) -> None:
    receiver, _ = world.receiver(Role.ENGINE)
    body = {**world.bodies["heartbeat"], "cert_days_left": "many"}
    envelope = world.envelope(Role.ENGINE, catalogue.HEARTBEAT, body=body)
    payload, signature = world.sign(world.proxy, envelope)
    with pytest.raises(Unauthorized):
        receiver.receive((payload, bytes(64)), world.now_ms)
    with pytest.raises(BadRequest, match="cert_days_left"):
        receiver.receive((payload, signature), world.now_ms)


def test_error_codes_travel_in_error_messages(world: World) -> None:
    receiver, _ = world.receiver(Role.PROXY)
    body = {"code": "no_such_code", "message": "x"}
    envelope = world.envelope(Role.PROXY, catalogue.ERROR, body=body)
    with pytest.raises(BadRequest, match="code"):
        receiver.receive(world.sign(world.engine, envelope), world.now_ms)


@pytest.mark.parametrize("field", ["from", "to"])
@pytest.mark.parametrize(
    "value", ["x" * 60_000, "SHA256:abc\nforged log line", "", "sha256:" + "A" * 43]
)
def test_from_and_to_must_be_fingerprints_before_anything_echoes_them(
    world: World, field: str, value: str
) -> None:
    receiver, keys = world.receiver(Role.ENGINE)
    forged = world.envelope(Role.ENGINE, catalogue.HEARTBEAT, **{field: value})
    with pytest.raises(BadRequest, match="fingerprint") as refused:
        receiver.receive(world.sign(world.proxy, forged), world.now_ms)
    assert not value or value not in refused.value.sentence
    assert keys.calls == []  # refused before any key was looked up

"""Harness: the whole receive pipeline, ``Receiver.receive``, in both roles.

The first byte picks how the rest becomes frames, so that every stage is reached:

* ``RAW``: arbitrary payload and signature bytes (the decoder and the envelope checks);
* ``ENVELOPE``: a msgpack map shaped like the envelope, each field plausible, fuzzed or
  missing, signed by the real peer or not (version, type, recipient, clock, signature);
* ``BODY``: a validly signed message of a real type whose body is fuzzed (the schemas).

The only allowed outcomes are a Message the catalogue accepts or a ProtocolError; an
accepted message delivered a second time must be refused as a replay.
"""

from __future__ import annotations

import sys
from typing import Any

import atheris

with atheris.instrument_imports(include=["protocol", "fuzz"]):
    import msgpack

    from fuzz.reader import Reader
    from fuzz.world import MSG_ID, REQUEST_ID, WORLD
    from protocol import identity
    from protocol.catalogue import CATALOGUE, PROTOCOL_VERSION, Role, accepted_by
    from protocol.envelope import HEADER_FIELDS, Message, signed_bytes
    from protocol.errors import ProtocolError, Replayed
    from protocol.receive import Receiver

RAW, ENVELOPE, BODY = range(3)
ROLES = (Role.ENGINE, Role.PROXY)
TYPES = sorted(CATALOGUE, key=lambda key: (key[0].value, key[1]))
# Past this many selector values a field is fuzzed, past the second it is left out.
PLAUSIBLE_BELOW, FUZZED_BELOW = 224, 248
# The plausible body that is the example body of whichever type the envelope names.
FOR_TYPE = object()


def frames_for(payload: bytes, signature: bytes, shape: int) -> list[bytes]:
    """Usually the two frames; sometimes one or three, as a broken peer might send."""
    return [[payload, signature], [payload, signature], [payload], [payload, signature, b""]][
        shape % 4
    ]


def raw(r: Reader, role: Role) -> list[bytes]:
    shape = r.byte()
    signature = r.take(64)
    return frames_for(r.rest(), signature, shape)


def plausible_fields(role: Role) -> dict[str, list[Any]]:
    own, peer = WORLD.own(role), WORLD.peer(role)
    now = WORLD.now_ms
    return {
        "v": [PROTOCOL_VERSION, 0, PROTOCOL_VERSION + 1],
        "type": [*sorted(accepted_by(role)), "heartbeat", "enroll_approved", ""],
        "id": [MSG_ID, REQUEST_ID, b"", MSG_ID * 2],
        "re": [REQUEST_ID, None, MSG_ID[:15]],
        "ts": [now, now - 300_000, now + 300_000, now - 300_001, now + 300_001, -(2**63)],
        "from": [WORLD.fp(peer), WORLD.fp(WORLD.stranger), WORLD.fp(own), "SHA256:x"],
        "to": [WORLD.fp(own), WORLD.fp(peer), "SHA256:" + "A" * 43],
        "body": [FOR_TYPE, *WORLD.bodies.values()],
    }


PLAUSIBLE = {role: plausible_fields(role) for role in ROLES}


def envelope(r: Reader, role: Role) -> list[bytes]:
    fields: dict[Any, Any] = {}
    for name in HEADER_FIELDS:
        selector = r.byte()
        if selector < PLAUSIBLE_BELOW:
            options = PLAUSIBLE[role][name]
            fields[name] = options[selector % len(options)]
        elif selector < FUZZED_BELOW:
            fields[name] = r.value()
    if r.byte() >= FUZZED_BELOW:
        extra = r.key()  # read before the value: an assignment evaluates its right side first
        fields[extra] = r.value()
    if fields.get("body") is FOR_TYPE:
        kind = fields.get("type")
        fields["body"] = WORLD.bodies.get(kind, {}) if isinstance(kind, str) else {}
    payload = msgpack.packb(fields, use_bin_type=True)
    signed = r.byte() < 128
    signature = WORLD.peer(role).sign(signed_bytes(payload)) if signed else r.take(64)
    return frames_for(payload, signature, r.byte())


def fuzzed_body(r: Reader, example: dict[str, Any]) -> Any:
    body: dict[Any, Any] = dict(example)
    names = sorted(body) or ["reason"]
    action = r.byte() % 4
    if action == 0:
        return r.value()
    if action == 1:
        body[r.pick(names)] = r.value()
    elif action == 2:
        body.pop(r.pick(names), None)
    else:
        extra = r.key()
        body[extra] = r.value()
    return body


def body(r: Reader) -> tuple[Role, list[bytes], Any]:
    role, name = r.pick(TYPES)
    mt = CATALOGUE[(role, name)]
    content = fuzzed_body(r, WORLD.bodies[name])
    sender = WORLD.fp(WORLD.peer(role))
    key = content.get("identity_key") if isinstance(content, dict) else None
    if mt.self_certified and isinstance(key, bytes):
        sender = identity.fingerprint(key)
    fields = {
        **WORLD.envelope(role, name, id=MSG_ID, body=content),
        "re": REQUEST_ID if mt.reply else None,
        "from": sender,
    }
    payload = msgpack.packb(fields, use_bin_type=True)
    return role, [payload, WORLD.peer(role).sign(signed_bytes(payload))], content


def check_accepted(msg: Message, receiver: Receiver) -> None:
    assert isinstance(msg, Message), msg
    mt = CATALOGUE[(receiver.role, msg.type)]
    assert mt.schema.check(msg.body) is msg.body
    assert abs(msg.ts - WORLD.now_ms) <= receiver.window_ms


def TestOneInput(data: bytes) -> None:
    r = Reader(data)
    mode = r.byte() % 3
    sent_body: Any = None
    if mode == BODY:
        role, frames, sent_body = body(r)
    else:
        role = ROLES[r.byte() % 2]
        frames = raw(r, role) if mode == RAW else envelope(r, role)
    receiver, _ = WORLD.receiver(role)
    try:
        msg = receiver.receive(frames, WORLD.now_ms)
    except ProtocolError as exc:
        assert isinstance(exc.sentence, str) and exc.sentence, repr(exc)
        return
    check_accepted(msg, receiver)
    if mode == BODY:
        assert msg.body == sent_body, (msg.body, sent_body)
    try:
        receiver.receive(frames, WORLD.now_ms)
    except Replayed:
        return
    raise AssertionError("an accepted message was accepted a second time")


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()

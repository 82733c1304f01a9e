"""Sealing: what seal() refuses and the exact bytes it produces (protocol.envelope)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import msgpack
import pytest

from protocol import catalogue, identity
from protocol.catalogue import CATALOGUE
from protocol.envelope import HEADER_FIELDS, ID_SIZE, SIGNING_CONTEXT, seal
from protocol.errors import BadRequest

if TYPE_CHECKING:
    from tests.protocol.conftest import World

NAMES = sorted({name for _, name in CATALOGUE})
REPLIES = sorted({name for (_, name), mt in CATALOGUE.items() if mt.reply})


def test_signature_covers_the_context_and_the_exact_payload(world: World) -> None:
    sealed = seal(world.proxy, "heartbeat", world.bodies["heartbeat"], recipient="r", now_ms=5)
    payload, signature = sealed.frames
    public = world.proxy.public_key()
    assert SIGNING_CONTEXT == b"wsproxy-agent/v1 message\x00"
    public.verify(signature, b"wsproxy-agent/v1 message\x00" + payload)  # raises if not
    assert not identity.verify(public, signature, payload)  # the context is required


def test_payload_is_the_canonical_envelope(world: World) -> None:
    re = secrets.token_bytes(ID_SIZE)
    body = world.bodies["enroll_pending"]
    sealed = seal(world.engine, "enroll_pending", body, recipient="SHA256:to", now_ms=42, re=re)
    payload = sealed.frames[0]
    decoded = msgpack.unpackb(payload, raw=False)
    assert decoded == {
        "v": catalogue.PROTOCOL_VERSION,
        "type": "enroll_pending",
        "id": sealed.id,
        "re": re,
        "ts": 42,
        "from": identity.fingerprint(world.engine),
        "to": "SHA256:to",
        "body": body,
    }
    assert list(decoded) == sorted(HEADER_FIELDS)  # keys in sorted order on the wire
    assert payload[0] == 0x88  # a fixmap of 8 entries
    assert payload[1:6] == b"\xa4body"  # ... whose first key is "body"
    # bytes travel as msgpack bin, strings as str
    assert b"\xa2id\xc4\x10" + sealed.id in payload
    assert b"\xa2re\xc4\x10" + re in payload


def test_ids_are_random_and_sized(world: World) -> None:
    ids = {
        seal(world.proxy, "heartbeat", world.bodies["heartbeat"], recipient="r", now_ms=0).id
        for _ in range(50)
    }
    assert len(ids) == 50
    assert {len(i) for i in ids} == {ID_SIZE}
    fixed = seal(
        world.proxy,
        "heartbeat",
        world.bodies["heartbeat"],
        recipient="r",
        now_ms=0,
        msg_id=b"x" * 16,
    )
    assert fixed.id == b"x" * 16


@pytest.mark.parametrize("name", NAMES)
def test_seal_refuses_an_invalid_body(world: World, name: str) -> None:
    with pytest.raises(BadRequest, match="not part of this message type"):
        seal(
            world.proxy,
            name,
            {**world.bodies[name], "zz": 1},
            recipient="r",
            now_ms=0,
            re=b"r" * 16,
        )


@pytest.mark.parametrize("name", NAMES)
def test_seal_refuses_a_body_missing_a_field(world: World, name: str) -> None:
    mt = next(mt for (_, n), mt in CATALOGUE.items() if n == name)
    if not mt.schema.required:
        assert world.bodies[name] == {}
        return
    field = sorted(mt.schema.required)[0]
    body = {k: v for k, v in world.bodies[name].items() if k != field}
    with pytest.raises(BadRequest, match="required"):
        seal(world.proxy, name, body, recipient="r", now_ms=0, re=b"r" * 16)


def test_there_are_replies_and_requests() -> None:
    assert REPLIES
    assert set(NAMES) - set(REPLIES)


@pytest.mark.parametrize("name", REPLIES)
def test_seal_refuses_a_reply_without_re(world: World, name: str) -> None:
    with pytest.raises(BadRequest, match="needs the request's id"):
        seal(world.engine, name, world.bodies[name], recipient="r", now_ms=0)
    seal(world.engine, name, world.bodies[name], recipient="r", now_ms=0, re=b"r" * 16)


def test_seal_refuses_an_unknown_type(world: World) -> None:
    with pytest.raises(BadRequest, match="not a message type"):
        seal(world.proxy, "shell", {}, recipient="r", now_ms=0)

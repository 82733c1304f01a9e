"""The signed envelope of DESIGN §4 and how to seal one.

On the wire a message is two frames: the canonical msgpack encoding of the envelope map,
and the Ed25519 signature over a fixed context string followed by those exact bytes. The
context keeps a signature made for this protocol from being valid anywhere else.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import catalogue, codec, identity
from protocol.codec import Value
from protocol.errors import BadRequest

SIGNING_CONTEXT = b"wsproxy-agent/v1 message\x00"
ID_SIZE = 16
HEADER_FIELDS = ("v", "type", "id", "re", "ts", "from", "to", "body")


@dataclass(frozen=True)
class Message:
    version: int
    type: str
    id: bytes
    re: bytes | None
    ts: int
    sender: str
    recipient: str
    body: dict[str, Value]

    # Typed reads of body fields: the schema has already checked each one's type.
    def text(self, name: str) -> str:
        value = self.body[name]
        assert isinstance(value, str)
        return value

    def number(self, name: str) -> int:
        value = self.body[name]
        assert isinstance(value, int)
        return value

    def flag(self, name: str) -> bool:
        value = self.body[name]
        assert isinstance(value, bool)
        return value

    def blob(self, name: str) -> bytes:
        value = self.body[name]
        assert isinstance(value, bytes)
        return value

    def optional_text(self, name: str) -> str | None:
        value = self.body.get(name)
        return value if isinstance(value, str) else None

    def answers(self, request_id: bytes) -> bool:
        return self.re is not None and secrets.compare_digest(self.re, request_id)


@dataclass(frozen=True)
class Sealed:
    """A message ready to send: its id (to match the reply) and its two frames."""

    id: bytes
    frames: tuple[bytes, bytes]


def signed_bytes(payload: bytes) -> bytes:
    return SIGNING_CONTEXT + payload


def _first_of_each_name() -> dict[str, catalogue.MessageType]:
    """Each type by name, the first the catalogue lists ('error' goes both ways)."""
    found: dict[str, catalogue.MessageType] = {}
    for (_, name), msg_type in catalogue.CATALOGUE.items():
        found.setdefault(name, msg_type)
    return found


_BY_NAME = _first_of_each_name()


@functools.lru_cache(maxsize=1)
def _sender(key: Ed25519PrivateKey) -> str:
    """The sealing key's fingerprint, 10 µs a message to compute; a daemon seals with one
    key, and keeps no other one here once it seals with a new one."""
    return identity.fingerprint(key)


def seal(
    key: Ed25519PrivateKey,
    msg_type: str,
    body: dict[str, Value],
    *,
    recipient: str,
    now_ms: int,
    re: bytes | None = None,
    msg_id: bytes | None = None,
    version: int = catalogue.PROTOCOL_VERSION,
) -> Sealed:
    """Encode and sign a message; refuse to send one the receiver would refuse."""
    known = _BY_NAME.get(msg_type)
    if known is None:
        raise BadRequest(f"{msg_type!r} is not a message type of protocol v{version}.")
    known.schema.check(body)
    if known.reply and re is None:
        raise BadRequest(f"A {msg_type} answers a request and needs the request's id.")
    msg_id = secrets.token_bytes(ID_SIZE) if msg_id is None else msg_id
    envelope: dict[str, Value] = {
        "v": version,
        "type": msg_type,
        "id": msg_id,
        "re": re,
        "ts": now_ms,
        "from": _sender(key),
        "to": recipient,
        "body": body,
    }
    payload = codec.encode(envelope)
    return Sealed(msg_id, (payload, identity.sign(key, signed_bytes(payload))))

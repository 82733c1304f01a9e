"""The receive pipeline: from two frames and the current time to a trusted Message.

The checks run in the order of DESIGN §4, cheapest first, so that bad input costs
bounded work and nothing unauthenticated reaches a handler:

 1. frame count and sizes          (before decoding anything)
 2. bounded msgpack decoding       (codec.decode) and the envelope's shape
 3. version floor                  VersionRefused
 4. type allow-list for this role  BadRequest, before the signature is looked at
 5. admission                      RateLimited, the caller's budget for this type and peer
 6. recipient is us                Unauthorized
 7. timestamp within the window    ClockSkew (an Expired)
 8. id not seen in the window      Replayed
 9. signature by the key held for ``from`` (or, for a self-certified type, the key in
    the body whose fingerprint is ``from``)            Unauthorized
 10. body schema                   BadRequest

The id is recorded as seen only once the signature verifies: recording it earlier would
let anyone who sees a message go by burn its id with a forged copy and have the real one
refused as a replay.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol import catalogue, codec, identity
from protocol.codec import DEFAULT_LIMITS, DecodeLimits, Value
from protocol.envelope import HEADER_FIELDS, ID_SIZE, Message, signed_bytes
from protocol.errors import (
    BadRequest,
    ClockSkew,
    ProtocolError,
    Unauthorized,
    VersionRefused,
    WrongRecipient,
)
from protocol.replay import SeenIds

_FINGERPRINT = re.compile(catalogue.FINGERPRINT_PATTERN)
_HEADER_NAMES = frozenset(HEADER_FIELDS)
_HEADER_TYPES: dict[str, tuple[type, ...]] = {
    "v": (int,),
    "type": (str,),
    "id": (bytes,),
    "re": (bytes, type(None)),
    "ts": (int,),
    "from": (str,),
    "to": (str,),
    "body": (dict,),
}

KeyLookup = Callable[[str], Ed25519PublicKey | None]
# The caller's say on whether this peer may have this type of message looked at further: it
# raises RateLimited to refuse before any signature is checked.
Admit = Callable[[catalogue.MessageType], None]

DEFAULT_WINDOW_MS = 300_000
FRAME_COUNT = 2


@dataclass
class Receiver:
    """One receiving end. ``keys`` answers which public key we trust for a fingerprint."""

    role: catalogue.Role
    own_fingerprint: str
    keys: KeyLookup
    window_ms: int = DEFAULT_WINDOW_MS
    limits: DecodeLimits = DEFAULT_LIMITS
    min_version: int = catalogue.MIN_PROTOCOL_VERSION
    seen: SeenIds = field(init=False)

    def __post_init__(self) -> None:
        self.seen = SeenIds(self.window_ms)
        self._accepted = catalogue.accepted_by(self.role)

    def receive(self, frames: Sequence[bytes], now_ms: int, admit: Admit | None = None) -> Message:
        payload, signature = self._split(frames)
        header = self._decode_header(payload)
        try:
            return self._receive(header, payload, signature, now_ms, admit)
        except ProtocolError as exc:
            exc.sender = str(header["from"])
            exc.msg_id = header["id"]  # type: ignore[assignment]
            raise

    def _receive(
        self,
        header: dict[str, Value],
        payload: bytes,
        signature: bytes,
        now_ms: int,
        admit: Admit | None,
    ) -> Message:
        msg_type = self._check_version_and_type(header)
        if admit is not None:
            admit(msg_type)
        recipient = str(header["to"])
        if recipient != self.own_fingerprint:
            raise WrongRecipient(
                f"This message is addressed to {recipient[:80]}, not to this agent "
                f"({self.own_fingerprint}); check the pinned key."
            )
        ts = header["ts"]
        assert isinstance(ts, int)
        skew_ms = ts - now_ms
        if abs(skew_ms) > self.window_ms:
            raise ClockSkew(
                f"The message is stamped {abs(skew_ms) // 1000} s "
                f"{'ahead of' if skew_ms > 0 else 'behind'} our clock, outside the "
                f"±{self.window_ms // 1000} s window (clock skew). Check both hosts' clocks (NTP).",
                skew_ms,
            )
        msg_id = header["id"]
        assert isinstance(msg_id, bytes)
        self.seen.check(msg_id, ts, now_ms)
        sender = header["from"]
        assert isinstance(sender, str)
        key = self._signer_key(msg_type, sender, header["body"])
        if not identity.verify(key, signature, signed_bytes(payload)):
            raise Unauthorized("The signature does not verify with the sender's key.")
        self.seen.record(msg_id, ts, now_ms)
        try:
            body = msg_type.schema.check(header["body"])
        except ProtocolError as exc:
            exc.authenticated = True
            raise
        answers = header["re"]
        return Message(
            version=int(header["v"]),  # type: ignore[arg-type]
            type=msg_type.name,
            id=msg_id,
            re=answers if isinstance(answers, bytes) else None,
            ts=ts,
            sender=sender,
            recipient=self.own_fingerprint,
            body=body,
        )

    def _split(self, frames: Sequence[bytes]) -> tuple[bytes, bytes]:
        if len(frames) != FRAME_COUNT:
            raise BadRequest(f"A message is {FRAME_COUNT} frames (payload, signature).")
        payload, signature = frames
        if len(payload) > self.limits.max_message:
            raise BadRequest(
                f"The message is {len(payload)} bytes; the limit is {self.limits.max_message}."
            )
        if len(signature) != identity.SIGNATURE_SIZE:
            raise BadRequest(f"The signature frame must be {identity.SIGNATURE_SIZE} bytes.")
        return bytes(payload), bytes(signature)

    def _decode_header(self, payload: bytes) -> dict[str, Value]:
        envelope = codec.decode(payload, self.limits)
        if not isinstance(envelope, dict) or envelope.keys() != _HEADER_NAMES:
            raise BadRequest(f"The envelope must be a map of exactly {', '.join(HEADER_FIELDS)}.")
        for name, kinds in _HEADER_TYPES.items():
            value = envelope[name]
            if isinstance(value, bool) or not isinstance(value, kinds):
                raise BadRequest(f"Envelope field {name!r} has the wrong type.")
        for name in ("from", "to"):
            if _FINGERPRINT.fullmatch(str(envelope[name])) is None:
                raise BadRequest(f"Envelope field {name!r} is not a key fingerprint (SHA256:...).")
        for name in ("id", "re"):
            value = envelope[name]
            if value is not None and len(value) != ID_SIZE:  # type: ignore[arg-type]
                raise BadRequest(f"Envelope field {name!r} must be {ID_SIZE} bytes.")
        return envelope

    def _check_version_and_type(self, header: dict[str, Value]) -> catalogue.MessageType:
        version = header["v"]
        assert isinstance(version, int)
        if version < self.min_version:
            raise VersionRefused(
                f"Protocol v{version} is below this receiver's minimum v{self.min_version}; "
                "upgrade the sending agent."
            )
        if version > catalogue.PROTOCOL_VERSION:
            raise VersionRefused(
                f"Protocol v{version} is newer than this receiver's v{catalogue.PROTOCOL_VERSION}; "
                "upgrade this agent."
            )
        name = header["type"]
        assert isinstance(name, str)
        msg_type = self._accepted.get(name)
        if msg_type is None:
            raise BadRequest(
                f"{'An' if self.role.value[0] in 'aeiou' else 'A'} {self.role.value} agent "
                f"does not accept messages of type {name!r}."
            )
        if msg_type.reply and header["re"] is None:
            raise BadRequest(f"A {name} must name the request it answers in 're'.")
        return msg_type

    def _signer_key(
        self, msg_type: catalogue.MessageType, sender: str, body: Value
    ) -> Ed25519PublicKey:
        if not msg_type.self_certified:
            held = self.keys(sender)
            if held is None:
                raise Unauthorized(
                    f"No key is held for {sender}; a {msg_type.name} needs an enrolled sender."
                )
            return held
        raw = body.get("identity_key") if isinstance(body, dict) else None
        if not isinstance(raw, bytes) or len(raw) != identity.PUBLIC_KEY_SIZE:
            raise BadRequest("An enrollment request must carry a 32-byte identity key.")
        if identity.fingerprint(raw) != sender:
            raise Unauthorized("The identity key in the body does not match the sender's 'from'.")
        return identity.public_from_raw(raw)

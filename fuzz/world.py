"""The protocol world of the harnesses: fixed keys, token and clock.

Fixed rather than random so that a saved input (a seed, a corpus entry, a crash) means the
same thing every time it is replayed: a validly signed seed stays validly signed.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import tokens
from tests.protocol.conftest import World, example_bodies


def _key(byte: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([byte]) * 32)


def _world() -> World:
    proxy = _key(2)
    token = tokens.Token("fuzz01", "fuzzfuzzfuzzfuzzfuzzfuzz01")
    return World(_key(1), proxy, _key(3), token, example_bodies(proxy, token))


WORLD = _world()
MSG_ID = bytes(range(16))
REQUEST_ID = bytes(range(16, 32))

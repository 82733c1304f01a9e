"""Ed25519 identity keys: generation, PEM round trip and OpenSSH-style fingerprints.

Keys are generated only by the library (CVE-2013-2228 is what home-made key generation
costs). Serialisation returns bytes; where they are stored is the caller's business.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from protocol.errors import BadRequest

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64

# The eight points of small order (the curve's 8-torsion) have these y coordinates. A public
# key that is one of them proves nothing: OpenSSL's verification accepts signatures made for
# it without any private key, for every message or for one in eight. Such keys are refused
# whatever their encoding (sign bit, or y written as y + p). Values as in libsodium.
_P = 2**255 - 19
_Y_ORDER_8 = int.from_bytes(
    bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"), "little"
)
_SMALL_ORDER_Y = frozenset({0, 1, _P - 1, _Y_ORDER_8, _P - _Y_ORDER_8})


def generate() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_to_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def private_from_pem(data: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise BadRequest(
            f"The identity key is not a readable unencrypted PEM key ({exc})."
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise BadRequest("The identity key is not an Ed25519 key; generate a new one.")
    return key


def public_raw(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_from_raw(raw: bytes) -> Ed25519PublicKey:
    if len(raw) != PUBLIC_KEY_SIZE:
        raise BadRequest(f"An Ed25519 public key has {PUBLIC_KEY_SIZE} bytes, not {len(raw)}.")
    if has_small_order(raw):
        raise BadRequest("The public key is a point of small order; it proves no key possession.")
    return Ed25519PublicKey.from_public_bytes(raw)


def has_small_order(raw: bytes) -> bool:
    """True for any encoding of a small-order point, a key anyone can forge signatures for."""
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    return y % _P in _SMALL_ORDER_Y


def public_to_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_from_pem(data: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"The public key is not readable PEM ({exc}).") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise BadRequest("The public key is not an Ed25519 key.")
    return key


def fingerprint(key: Ed25519PublicKey | Ed25519PrivateKey | bytes) -> str:
    """``SHA256:<base64 without padding>`` of the 32 raw key bytes, in OpenSSH's form.

    Only the form is OpenSSH's: ``ssh-keygen -l`` hashes the SSH wire blob of the key, so
    it prints a different value for the same key.
    """
    raw = key if isinstance(key, bytes) else public_raw(key)
    digest = hashlib.sha256(raw).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    return key.sign(data)


def verify(key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` is ``key``'s over ``data``.

    Checked by libsodium, which does it in 40 % of OpenSSL's time (the engine verifies every
    message of every proxy: ``make bench``'s fleet), and is the stricter of the two: it
    refuses non-canonical signatures and small-order keys and points, which OpenSSL accepts.
    """
    if len(signature) != SIGNATURE_SIZE:
        return False
    try:
        crypto_sign_open(signature + data, key.public_bytes_raw())
    except BadSignatureError:
        return False
    return True

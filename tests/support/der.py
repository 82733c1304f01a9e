"""DER framing for tests that sign a hand-altered certificate or certificate request.

cryptography only builds well-formed objects. To see how a reader copes with a malformed part
that is nonetheless properly signed (as any CA key or proxy key holder can make one), a test
alters the to-be-signed bytes of a real object and signs them again here.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

# AlgorithmIdentifier ecdsa-with-SHA256 (RFC 5758): the signature algorithm of ``signed``.
ECDSA_WITH_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")


def der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + content


def signed(tbs: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """The DER of a certificate or request: ``tbs``, whatever it holds, signed by ``key``."""
    signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return der(0x30, tbs + ECDSA_WITH_SHA256 + der(0x03, b"\x00" + signature))


def pem(der_bytes: bytes, label: str) -> bytes:
    body = base64.encodebytes(der_bytes).decode("ascii")
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n".encode()


def replaced_once(tbs: bytes, old: bytes, new: bytes) -> bytes:
    assert tbs.count(old) == 1, f"{old.hex()} occurs {tbs.count(old)} times"
    return tbs.replace(old, new)

"""Ed25519 identity keys: PEM, fingerprints, refusals (protocol.identity)."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa

from protocol import identity
from protocol.errors import BadRequest

P = 2**255 - 19


def openssh_line(raw: bytes) -> str:
    def string(b: bytes) -> bytes:
        return len(b).to_bytes(4, "big") + b

    wire = string(b"ssh-ed25519") + string(raw)
    return "ssh-ed25519 " + base64.b64encode(wire).decode() + " test@example"


def test_private_pem_round_trip() -> None:
    key = identity.generate()
    pem = identity.private_to_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    loaded = identity.private_from_pem(pem)
    assert identity.public_raw(loaded) == identity.public_raw(key)
    signature = identity.sign(loaded, b"data")
    assert identity.verify(key.public_key(), signature, b"data")
    assert not identity.verify(key.public_key(), signature, b"date")


def test_public_pem_and_raw_round_trip() -> None:
    key = identity.generate()
    pem = identity.public_to_pem(key.public_key())
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    raw = identity.public_raw(identity.public_from_pem(pem))
    assert raw == identity.public_raw(key) == identity.public_raw(key.public_key())
    assert len(raw) == identity.PUBLIC_KEY_SIZE
    assert identity.public_raw(identity.public_from_raw(raw)) == raw


def test_fingerprint_is_openssh_form() -> None:
    key = identity.generate()
    raw = identity.public_raw(key)
    fingerprint = identity.fingerprint(key)
    assert re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}", fingerprint)
    expected = "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")
    assert fingerprint == expected
    assert identity.fingerprint(raw) == identity.fingerprint(key.public_key()) == fingerprint
    assert identity.fingerprint(identity.generate()) != fingerprint


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen is not installed")
def test_fingerprint_has_ssh_keygens_form(tmp_path: Path) -> None:
    """Same form as ``ssh-keygen -l``; the value differs, since OpenSSH hashes its key blob.

    ssh-keygen hashes the SSH wire encoding (string "ssh-ed25519", string key), while
    identity.fingerprint hashes the 32 raw key bytes (what docs/protocol.md specifies).
    """
    key = identity.generate()
    raw = identity.public_raw(key)
    path = tmp_path / "key.pub"
    path.write_text(openssh_line(raw) + "\n")
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert out[0] == "256"
    assert out[-1] == "(ED25519)"
    form = r"SHA256:[A-Za-z0-9+/]{43}"
    assert re.fullmatch(form, out[1])
    assert re.fullmatch(form, identity.fingerprint(key))
    blob = base64.b64decode(openssh_line(raw).split()[1])
    assert out[1] == "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip(
        "="
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),
        lambda: ec.generate_private_key(ec.SECP256R1()),
        ed448.Ed448PrivateKey.generate,
    ],
    ids=["rsa", "ec", "ed448"],
)
def test_other_key_types_are_refused(
    make: Callable[[], rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey],
) -> None:
    other = make()
    private = other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(BadRequest, match="not an Ed25519 key"):
        identity.private_from_pem(private)
    with pytest.raises(BadRequest, match="not an Ed25519 key"):
        identity.public_from_pem(public)


@pytest.mark.parametrize(
    "data", [b"", b"not a key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"]
)
def test_unreadable_pem_is_refused(data: bytes) -> None:
    with pytest.raises(BadRequest, match="not a readable"):
        identity.private_from_pem(data)
    with pytest.raises(BadRequest, match="not readable"):
        identity.public_from_pem(data)


def test_encrypted_private_key_is_refused() -> None:
    key = identity.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(BadRequest, match="unencrypted"):
        identity.private_from_pem(pem)


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_raw_key_of_wrong_size_is_refused(size: int) -> None:
    with pytest.raises(BadRequest, match="32 bytes"):
        identity.public_from_raw(b"\x01" * size)


SMALL_ORDER = [
    bytes(32),  # y = 0, order 4
    b"\x01" + bytes(31),  # y = 1, the neutral element
    (P - 1).to_bytes(32, "little"),  # y = -1, order 2
    P.to_bytes(32, "little"),  # y = 0 written as p
    (P + 1).to_bytes(32, "little"),  # y = 1 written as p + 1
    (1 | 1 << 255).to_bytes(32, "little"),  # y = 1 with the sign bit set
]


@pytest.mark.parametrize("raw", SMALL_ORDER, ids=lambda r: r.hex()[:4] + r.hex()[-2:])
def test_small_order_keys_are_refused(raw: bytes) -> None:
    assert identity.has_small_order(raw)
    with pytest.raises(BadRequest, match="small order"):
        identity.public_from_raw(raw)


def test_generated_keys_are_not_small_order() -> None:
    for _ in range(100):
        assert not identity.has_small_order(identity.public_raw(identity.generate()))

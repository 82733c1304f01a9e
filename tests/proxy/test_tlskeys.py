from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from protocol.errors import BadRequest
from proxy_agent.tlskeys import (
    build_csr,
    csr_is_for,
    generate_tls_key,
    key_to_pem,
    load_key_pem,
)


def test_rsa_key_is_2048_with_f4() -> None:
    key = generate_tls_key()
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    assert key.public_key().public_numbers().e == 65537


def test_ec_key_is_p256() -> None:
    key = generate_tls_key("ec")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)


@pytest.mark.parametrize("kind", ["dsa", "RSA", "ed25519", ""])
def test_unknown_kind_is_refused(kind: str) -> None:
    with pytest.raises(ValueError, match="rsa, ec"):
        generate_tls_key(kind)


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_pem_is_unencrypted_pkcs8_and_round_trips(kind: str, tmp_path: Path) -> None:
    key = generate_tls_key(kind)
    data = key_to_pem(key)
    assert data.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert key_to_pem(load_key_pem(data)) == data
    (tmp_path / "k").write_bytes(data)
    # openssl reads it without asking for a pass phrase, as the proxy service must.
    subprocess.run(
        ["openssl", "pkey", "-noout", "-passin", "pass:", "-in", str(tmp_path / "k")],
        check=True,
        timeout=30,
    )


def test_load_refuses_garbage_and_other_key_types() -> None:
    with pytest.raises(ValueError, match="not an unencrypted PEM"):
        load_key_pem(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    other = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="RSA or ECDSA"):
        load_key_pem(other)


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_csr_names_the_host_and_is_self_signed(kind: str) -> None:
    key = generate_tls_key(kind)
    csr = x509.load_pem_x509_csr(build_csr(key, "proxy.example.com"))
    assert csr.is_signature_valid
    assert csr.public_key() == key.public_key()
    assert csr.subject.rfc4514_string() == "CN=proxy.example.com"
    assert [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [
        "proxy.example.com"
    ]
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.DNSName("proxy.example.com")]
    assert csr.signature_hash_algorithm is not None
    assert csr.signature_hash_algorithm.name == "sha256"


@pytest.mark.parametrize(
    "name", ["", "Proxy.example.com", "proxy.example.com.", "../etc/passwd", "a b", "x_y.com"]
)
def test_csr_refuses_a_bad_name(name: str) -> None:
    with pytest.raises(BadRequest):
        build_csr(generate_tls_key("ec"), name)


def test_csr_refuses_a_name_too_long_for_a_common_name() -> None:
    name = ".".join(["a" * 30] * 3)  # a valid DNS name of 92 characters
    with pytest.raises(ValueError, match="at most 64"):
        build_csr(generate_tls_key("ec"), name)


def test_csr_is_for_tells_a_reusable_request() -> None:
    key = generate_tls_key("ec")
    csr = build_csr(key, "proxy.example.com")
    assert csr_is_for(csr, "proxy.example.com", "ec")
    assert not csr_is_for(csr, "proxy.example.com", "rsa")
    assert not csr_is_for(csr, "other.example.com", "ec")
    assert not csr_is_for(csr, "proxy.example.com", "dsa")
    assert not csr_is_for(b"garbage", "proxy.example.com", "ec")
    tampered = bytearray(x509.load_pem_x509_csr(csr).public_bytes(serialization.Encoding.DER))
    tampered[-5] ^= 1  # inside the signature
    from_der = x509.load_der_x509_csr(bytes(tampered)).public_bytes(serialization.Encoding.PEM)
    assert not csr_is_for(from_der, "proxy.example.com", "ec")

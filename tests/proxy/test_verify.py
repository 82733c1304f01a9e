from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from proxy_agent.tlskeys import TLSKey, generate_tls_key
from proxy_agent.verify import Delivery, DeliveryRefused, check_delivery
from tests.support import der

NOW = datetime.now(UTC)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def test_accepts_the_good_delivery(bundle: Any, proxy_key: TLSKey, fqdn: str) -> None:
    got = check_delivery(
        bundle.cert_pem, bundle.ca_pem, bundle.engine_cert_pem, proxy_key, fqdn, NOW
    )
    assert isinstance(got, Delivery)
    assert got.san == [f"DNS:{fqdn}"]
    assert got.serial == format(got.cert.serial_number, "x")
    assert got.serial == got.serial.lower()
    assert got.subject.startswith(f"CN={fqdn},")
    assert got.not_after == got.cert.not_valid_after_utc
    assert got.ca.subject == got.cert.issuer
    # str PEM works as well as bytes
    check_delivery(
        bundle.cert_pem.decode(), bundle.ca_pem.decode(), bundle.engine_cert_pem.decode(),
        proxy_key, fqdn, NOW,
    )  # fmt: skip


def refused(bundle: Any, key: TLSKey, fqdn: str, now: datetime = NOW, **over: bytes) -> str:
    parts = {
        "cert_pem": bundle.cert_pem,
        "ca_pem": bundle.ca_pem,
        "engine_cert_pem": bundle.engine_cert_pem,
    }
    parts.update(over)
    with pytest.raises(DeliveryRefused) as info:
        check_delivery(tls_key=key, fqdn=fqdn, now=now, **parts)
    assert info.value.sentence.endswith(".")
    return info.value.sentence


def test_refuses_a_cert_from_another_ca(
    bundle: Any, proxy_key: TLSKey, fqdn: str, make_ca: Callable[..., Any]
) -> None:
    other = make_ca("other")
    cert = other.issue(proxy_key.public_key(), fqdn)
    assert "not signed by the engine's CA" in refused(bundle, proxy_key, fqdn, cert_pem=pem(cert))


def test_refuses_a_cert_from_a_ca_with_the_same_name_but_another_key(
    bundle: Any, proxy_key: TLSKey, fqdn: str, make_ca: Callable[..., Any]
) -> None:
    impostor = make_ca("engine")  # same subject as the real test CA, different key
    cert = impostor.issue(proxy_key.public_key(), fqdn)
    assert "not signed" in refused(bundle, proxy_key, fqdn, cert_pem=pem(cert))


def test_refuses_a_cert_for_another_key(bundle: Any, ca: Any, fqdn: str) -> None:
    stranger = generate_tls_key("ec")
    cert = ca.issue(stranger.public_key(), fqdn)
    our_key = generate_tls_key("ec")
    assert "different key" in refused(bundle, our_key, fqdn, cert_pem=pem(cert))


def test_refuses_a_cert_for_another_name(bundle: Any, ca: Any, proxy_key: TLSKey) -> None:
    cert = ca.issue(proxy_key.public_key(), "other.example.com")
    sentence = refused(bundle, proxy_key, "proxy.example.com", cert_pem=pem(cert))
    assert "DNS:other.example.com" in sentence
    assert "exactly DNS:proxy.example.com" in sentence


def test_refuses_an_extra_san(bundle: Any, ca: Any, proxy_key: TLSKey, fqdn: str) -> None:
    cert = ca.issue(proxy_key.public_key(), fqdn, san=[fqdn, "evil.example.com"])
    assert "evil.example.com" in refused(bundle, proxy_key, fqdn, cert_pem=pem(cert))


def test_refuses_a_cert_without_san(bundle: Any, ca: Any, proxy_key: TLSKey, fqdn: str) -> None:
    cert = ca.issue(proxy_key.public_key(), fqdn, san=[])
    assert "no host" in refused(bundle, proxy_key, fqdn, cert_pem=pem(cert))


def test_refuses_a_leaf_that_is_a_ca(bundle: Any, ca: Any, proxy_key: TLSKey, fqdn: str) -> None:
    cert = ca.issue(proxy_key.public_key(), fqdn, ca=True)
    assert "CA:TRUE" in refused(bundle, proxy_key, fqdn, cert_pem=pem(cert))


def test_refuses_a_cert_not_for_servers(bundle: Any, ca: Any, proxy_key: TLSKey, fqdn: str) -> None:
    cert = ca.issue(proxy_key.public_key(), fqdn, usages=[ExtendedKeyUsageOID.CLIENT_AUTH])
    assert "serverAuth" in refused(bundle, proxy_key, fqdn, cert_pem=pem(cert))


def test_refuses_an_expired_cert(bundle: Any, proxy_key: TLSKey, fqdn: str) -> None:
    later = NOW + timedelta(days=400)
    assert "The proxy certificate expired on" in refused(bundle, proxy_key, fqdn, now=later)


def test_refuses_a_cert_not_yet_valid(bundle: Any, proxy_key: TLSKey, fqdn: str) -> None:
    earlier = NOW - timedelta(days=2)
    sentence = refused(bundle, proxy_key, fqdn, now=earlier)
    assert "The proxy certificate is not valid until" in sentence


def test_refuses_a_ca_that_is_not_a_ca(
    bundle: Any, proxy_key: TLSKey, fqdn: str, make_ca: Callable[..., Any]
) -> None:
    fake = make_ca("engine", ca_flag=False)
    cert = fake.issue(proxy_key.public_key(), fqdn)
    sentence = refused(bundle, proxy_key, fqdn, cert_pem=pem(cert), ca_pem=fake.pem)
    assert "is not a CA" in sentence


def test_refuses_an_engine_cert_from_another_ca(
    bundle: Any, proxy_key: TLSKey, fqdn: str, make_ca: Callable[..., Any]
) -> None:
    other = make_ca("other")
    engine = other.issue(ec.generate_private_key(ec.SECP256R1()).public_key(), "engine.example.com")
    sentence = refused(bundle, proxy_key, fqdn, engine_cert_pem=pem(engine))
    assert "engine certificate" in sentence
    assert "not signed" in sentence


def test_refuses_an_expired_engine_cert(bundle: Any, ca: Any, proxy_key: TLSKey, fqdn: str) -> None:
    old = ca.issue(
        ec.generate_private_key(ec.SECP256R1()).public_key(),
        "engine.example.com",
        not_before=NOW - timedelta(days=30),
        days=10,
    )
    sentence = refused(bundle, proxy_key, fqdn, engine_cert_pem=pem(old))
    assert "engine certificate expired" in sentence


@pytest.mark.parametrize("which", ["cert_pem", "ca_pem", "engine_cert_pem"])
@pytest.mark.parametrize(
    "garbage",
    [b"", b"not a certificate", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
)
def test_refuses_garbage_pem(
    bundle: Any, proxy_key: TLSKey, fqdn: str, which: str, garbage: bytes
) -> None:
    over: dict[str, Any] = {which: garbage}
    assert "not a PEM certificate" in refused(bundle, proxy_key, fqdn, **over)


# Found by `make fuzz`: certificates that load, but whose key, extensions or version break
# when first read, escaped check_delivery as ValueError, DuplicateExtension or
# InvalidVersion. Each here is signed by the engine's CA, so only reading it can refuse it.
def _unreadable_san(key: ec.EllipticCurvePrivateKey, fqdn: str) -> tuple[bytes, bytes]:
    dns_name = bytes([len(fqdn)]) + fqdn.encode()
    return b"\x82" + dns_name, b"\x30" + dns_name  # a dNSName turned into a SEQUENCE


def _key_off_the_curve(key: ec.EllipticCurvePrivateKey, fqdn: str) -> tuple[bytes, bytes]:
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return point, point[:-1] + bytes([point[-1] ^ 1])


def _duplicate_extension(key: ec.EllipticCurvePrivateKey, fqdn: str) -> tuple[bytes, bytes]:
    oid = b"\x06\x03\x55\x1d"
    return oid + b"\x0e", oid + b"\x23"  # subjectKeyIdentifier renamed authorityKeyIdentifier


def _version_six(key: ec.EllipticCurvePrivateKey, fqdn: str) -> tuple[bytes, bytes]:
    version = b"\xa0\x03\x02\x01"
    return version + b"\x02", version + b"\x05"


@pytest.mark.parametrize(
    ("alter", "words"),
    [
        (_unreadable_san, "is malformed"),
        (_key_off_the_curve, "is malformed"),
        (_duplicate_extension, "is malformed"),
        (_version_six, "is not a PEM certificate"),
    ],
    ids=["unreadable-san", "key-off-the-curve", "duplicate-extension", "version-6"],
)
def test_refuses_a_signed_cert_that_cannot_be_read(
    bundle: Any, ca: Any, fqdn: str, alter: Callable[..., tuple[bytes, bytes]], words: str
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    tbs = ca.issue(key.public_key(), fqdn).tbs_certificate_bytes
    altered = der.signed(der.replaced_once(tbs, *alter(key, fqdn)), ca.key)
    sentence = refused(bundle, key, fqdn, cert_pem=der.pem(altered, "CERTIFICATE"))
    assert f"The proxy certificate from the engine {words}" in sentence

"""A tiny CA for the proxy tests, standing in for the engine's signer (DESIGN §6 profile)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from proxy_agent.tlskeys import TLSKey, build_csr, generate_tls_key

FQDN = "proxy.example.com"
SERVER_CLIENT = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class MiniCA:
    name: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    ca_flag: bool = True

    def __post_init__(self) -> None:
        now = datetime.now(UTC)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "example.com"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{self.name}.example.com.12345"),
            ]
        )
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=self.ca_flag, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), False)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return pem(self.cert)

    def issue(
        self,
        public_key: CertificatePublicKeyTypes,
        cn: str,
        *,
        san: Sequence[str] | None = None,
        ca: bool = False,
        not_before: datetime | None = None,
        days: int = 398,
        usages: Sequence[x509.ObjectIdentifier] = SERVER_CLIENT,
    ) -> x509.Certificate:
        """A certificate in oVirt's profile; the keywords bend it for refusal tests."""
        start = not_before or datetime.now(UTC) - timedelta(days=1)
        subject = x509.Name(
            [
                *self.cert.subject.rdns[:-1],
                x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, cn)]),
            ]
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        names = [x509.DNSName(n) for n in (san if san is not None else [cn])]
        if names:  # san=[]: no SAN at all (cryptography 51 refuses an empty one)
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return (
            builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_encipherment=True,
                    content_commitment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=ca,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )

    def sign_csr(self, csr_pem: bytes, **kwargs: object) -> x509.Certificate:
        """Sign a CSR as the engine would: CN and SAN from the request's CN."""
        csr = x509.load_pem_x509_csr(csr_pem)
        assert csr.is_signature_valid
        cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert isinstance(cn, str)
        return self.issue(csr.public_key(), cn, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def ca() -> MiniCA:
    return MiniCA("engine")


@pytest.fixture(scope="session")
def make_ca() -> Callable[..., MiniCA]:
    return MiniCA


@pytest.fixture(scope="session")
def fqdn() -> str:
    return FQDN


@pytest.fixture(scope="session")
def proxy_key() -> TLSKey:
    return generate_tls_key("rsa")


@pytest.fixture(scope="session")
def engine_cert(ca: MiniCA) -> x509.Certificate:
    return ca.issue(ec.generate_private_key(ec.SECP256R1()).public_key(), "engine.example.com")


@dataclass(frozen=True)
class Bundle:
    """What the engine sends back to an approved proxy, as PEM."""

    cert_pem: bytes
    ca_pem: bytes
    engine_cert_pem: bytes


@pytest.fixture(scope="session")
def bundle(ca: MiniCA, proxy_key: TLSKey, engine_cert: x509.Certificate) -> Bundle:
    cert = ca.sign_csr(build_csr(proxy_key, FQDN))
    return Bundle(pem(cert), ca.pem, pem(engine_cert))

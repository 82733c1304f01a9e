"""Fixed keys and a CA for the certificate harnesses.

The harnesses sign fuzzed to-be-signed bodies with these keys (tests.support.der), so that
mutated requests and certificates get past the signature checks and reach the checks behind
them. The keys are derived from constants so that a saved input is signed by the same key on
every run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engine_agent import pki

FQDN = "proxy.example.com"
NOW = datetime(2030, 1, 1, tzinfo=UTC)
ISSUED_AT = NOW - timedelta(days=30)

CA_KEY = ec.derive_private_key(0xCA, ec.SECP256R1())
ENGINE_KEY = ec.derive_private_key(0xE6, ec.SECP256R1())
PROXY_KEY = ec.derive_private_key(0x9A, ec.SECP256R1())  # the proxy's TLS key


def _ca_cert() -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "example.com"),
            x509.NameAttribute(NameOID.COMMON_NAME, "engine.example.com.12345"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(CA_KEY.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(CA_KEY.public_key())
        .serial_number(0xCA)
        .not_valid_before(ISSUED_AT)
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ski, critical=False)
        .sign(CA_KEY, hashes.SHA256())
    )


CA = pki.CertificateAuthority(_ca_cert(), CA_KEY)


def issue(key: ec.EllipticCurvePrivateKey, fqdn: str) -> x509.Certificate:
    """A certificate in the engine's profile, made by the engine's own code."""
    return pki.issue_certificate(CA, key.public_key(), fqdn, now=ISSUED_AT, lifetime_days=398)


PROXY_CERT = issue(PROXY_KEY, FQDN)
ENGINE_CERT = issue(ENGINE_KEY, "engine.example.com")

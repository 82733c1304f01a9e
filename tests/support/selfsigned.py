"""A self-signed certificate for a key: an engine certificate that no CA vouches for.

Console tickets are checked against a certificate's key alone (CERT_FOR_DATA_VERIFICATION),
so the tests of tickets, of ``proxy serve`` and of the browser path make stand-in engine
certificates, genuine or impostor, with this one function.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def self_signed_pem(
    key: rsa.RSAPrivateKey, name: str, *, days: int, now: datetime | None = None
) -> str:
    """PEM of a certificate for ``key`` with CN ``name``, valid from a day before ``now``
    for ``days`` days after it."""
    now = now or datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

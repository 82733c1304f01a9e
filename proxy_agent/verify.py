"""Checks on what the engine delivered, before anything is installed (DESIGN §5 step 3).

The engine's reply is signed, but a bug or a misconfigured CA on the engine must not leave
the proxy serving a certificate that browsers or the engine will refuse. Each refusal says
which check failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from proxy_agent.tlskeys import TLSKey
from wsproxy_agent.errors import AgentError


class DeliveryRefused(AgentError):
    """The engine's certificate delivery failed a check; ``sentence`` says which."""


@dataclass(frozen=True)
class Delivery:
    cert: x509.Certificate
    ca: x509.Certificate
    engine_cert: x509.Certificate
    serial: str
    not_after: datetime
    subject: str
    san: list[str]


def _load(pem: str | bytes, what: str) -> x509.Certificate:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        cert = x509.load_pem_x509_certificate(data)
    except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is no ValueError
        raise DeliveryRefused(
            f"The {what} from the engine is not a PEM certificate; check the engine's PKI files."
        ) from exc
    try:
        # cryptography parses these parts only when first read: reading them here refuses a
        # malformed one now, instead of letting its error escape from the middle of a check.
        cert.public_key()
        cert.extensions  # noqa: B018
        cert.subject.rfc4514_string()
        cert.issuer.rfc4514_string()
    except (
        ValueError,
        TypeError,
        UnsupportedAlgorithm,
        x509.DuplicateExtension,
        x509.UnsupportedGeneralNameType,
    ) as exc:
        raise DeliveryRefused(
            f"The {what} from the engine is malformed: its key, names or extensions cannot be "
            "read; check the engine's PKI files."
        ) from exc
    return cert


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _check_valid(cert: x509.Certificate, what: str, now: datetime) -> None:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < start:
        raise DeliveryRefused(
            f"The {what} is not valid until {start:%Y-%m-%d %H:%M} UTC; check the clocks "
            "on the engine and this host."
        )
    if now > end:
        raise DeliveryRefused(f"The {what} expired on {end:%Y-%m-%d %H:%M} UTC.")


def _spki(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _san(cert: x509.Certificate) -> list[str]:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    out = []
    for name in names:
        if isinstance(name, x509.DNSName):
            out.append(f"DNS:{name.value}")
        elif isinstance(name, x509.IPAddress):
            out.append(f"IP:{name.value}")
        else:
            out.append(f"{type(name).__name__}:{name.value}")
    return out


def check_delivery(
    cert_pem: str | bytes,
    ca_pem: str | bytes,
    engine_cert_pem: str | bytes,
    tls_key: TLSKey,
    fqdn: str,
    now: datetime,
) -> Delivery:
    """Return the parsed delivery when it is safe to install, else raise DeliveryRefused."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    cert = _load(cert_pem, "proxy certificate")
    ca = _load(ca_pem, "CA certificate")
    engine_cert = _load(engine_cert_pem, "engine certificate")

    if not _is_ca(ca):
        raise DeliveryRefused(
            f"The CA certificate from the engine ({ca.subject.rfc4514_string()}) is not a CA "
            "(no basicConstraints CA:TRUE); check the engine's CA settings."
        )
    if not _issued_by(cert, ca):
        raise DeliveryRefused(
            f"The proxy certificate (issuer {cert.issuer.rfc4514_string()}) is not signed by "
            f"the engine's CA ({ca.subject.rfc4514_string()})."
        )
    _check_valid(cert, "proxy certificate", now)
    if _spki(cert.public_key()) != _spki(tls_key.public_key()):
        raise DeliveryRefused(
            "The proxy certificate is for a different key than this host's TLS key; the "
            "engine answered another request. Run the join again."
        )
    san = _san(cert)
    if [s.lower() for s in san] != [f"DNS:{fqdn}".lower()]:
        raise DeliveryRefused(
            f"The proxy certificate names {', '.join(san) or 'no host'}; it must name exactly "
            f"DNS:{fqdn}."
        )
    if _is_ca(cert):
        raise DeliveryRefused("The proxy certificate is a CA certificate (CA:TRUE); refusing it.")
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None
    if usages is not None and ExtendedKeyUsageOID.SERVER_AUTH not in usages:
        raise DeliveryRefused(
            "The proxy certificate is not allowed for TLS servers (no serverAuth in "
            "extendedKeyUsage); browsers would refuse it."
        )
    if not _issued_by(engine_cert, ca):
        raise DeliveryRefused(
            f"The engine certificate (issuer {engine_cert.issuer.rfc4514_string()}) is not "
            f"signed by the engine's CA ({ca.subject.rfc4514_string()})."
        )
    _check_valid(engine_cert, "engine certificate", now)

    return Delivery(
        cert=cert,
        ca=ca,
        engine_cert=engine_cert,
        serial=format(cert.serial_number, "x"),
        not_after=cert.not_valid_after_utc,
        subject=cert.subject.rfc4514_string(),
        san=san,
    )

"""The engine's CA side: adopt oVirt's PKI or create one like it, check CSRs, issue certificates.

``issue_certificate`` is the one owner of the certificate profile (DESIGN §6); everything
else here reads or writes files in oVirt's layout under ``HostPaths.pki_dir``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PublicKeyTypes,
)
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from protocol.errors import BadRequest
from protocol.names import check_fqdn
from wsproxy_agent.errors import AgentError
from wsproxy_agent.files import write_atomic
from wsproxy_agent.paths import HostPaths

# oVirt's engine.p12 password and key alias (ovirt-engine-setup: PKI_PASSWORD "mypass",
# ENGINE_PKI_ENGINE_STORE_ALIAS="1").
ENGINE_P12_PASSWORD = b"mypass"
ENGINE_P12_ALIAS = b"1"

# CA keys live for ca_days (ten years by default), beyond 2030 when NIST stops counting
# RSA-2048 as enough; certificates live about a year, so 2048 bits is plenty for them and
# is what oVirt itself issues.
CA_KEY_BITS = 3072
LEAF_KEY_BITS = 2048

MAX_CSR_BYTES = 16 * 1024
# KeyUsage's flags, as cryptography names them (encipher_only and decipher_only aside: they
# are readable only with key_agreement set).
KEY_USAGE_FLAGS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)
MAX_NAMES_SHOWN = 300
MIN_RSA_BITS = 2048
ACCEPTED_CURVES = (ec.SECP256R1, ec.SECP384R1)
ACCEPTED_KEYS = "RSA of 2048 bits or more, or ECDSA on P-256 or P-384"

_ATTRIBUTES = {
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
    "emailAddress": NameOID.EMAIL_ADDRESS,
    "DC": NameOID.DOMAIN_COMPONENT,
}
_SHORT_NAMES = {oid: short for short, oid in _ATTRIBUTES.items()}

# oVirt's cert.template: keyUsage = critical,digitalSignature,keyEncipherment and
# extendedKeyUsage = critical,serverAuth,clientAuth.
PROFILE_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=True,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
PROFILE_EXTENDED_KEY_USAGE = x509.ExtendedKeyUsage(
    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
)

CAPrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class PkiError(AgentError):
    """The PKI on disk cannot be used; ``sentence`` says what is wrong and what to do."""


@dataclass
class CertificateAuthority:
    cert: x509.Certificate
    key: CAPrivateKey


# Subjects in OpenSSL's one-line form ("/C=US/O=Example/CN=x"), as oVirt's scripts take them.


def parse_subject(text: str) -> x509.Name:
    if not text.startswith("/"):
        raise PkiError(f"The subject {text!r} must start with '/', like '/C=US/O=Example'.")
    attributes = []
    for part in text[1:].split("/"):
        key, sep, value = part.partition("=")
        if not sep or not value:
            raise PkiError(f"The subject part {part!r} is not KEY=value; write '/O=Example'.")
        if key not in _ATTRIBUTES:
            raise PkiError(
                f"The subject attribute {key!r} is unknown; use {', '.join(_ATTRIBUTES)}."
            )
        try:
            attributes.append(x509.NameAttribute(_ATTRIBUTES[key], value))
        except ValueError as e:  # e.g. a country that is not two letters
            raise PkiError(f"The subject attribute {key}={value!r} is invalid: {e}") from None
    return x509.Name(attributes)


def format_subject(name: x509.Name) -> str:
    parts = []
    for rdn in name.rdns:
        avas = []
        for attr in rdn:
            value = str(attr.value)
            # The one-line form has no escaping here; a '/' would silently split the value.
            if "/" in value:
                raise PkiError(
                    f"The subject value {value!r} contains '/', which the one-line form "
                    "cannot carry; rename the CA subject or use the native signer."
                )
            avas.append(f"{_SHORT_NAMES.get(attr.oid, attr.oid.dotted_string)}={value}")
        parts.append("+".join(avas))
    return "/" + "/".join(parts)


def subject_for(ca_subject: x509.Name, fqdn: str) -> x509.Name:
    """oVirt's "<CA subject minus CN>/CN=<fqdn>": the CA's name with its CN replaced."""
    kept = [a for a in ca_subject if a.oid != NameOID.COMMON_NAME]
    return x509.Name([*kept, x509.NameAttribute(NameOID.COMMON_NAME, check_fqdn(fqdn))])


# The certificate profile.


def issue_certificate(
    ca: CertificateAuthority,
    public_key: CertificatePublicKeyTypes,
    fqdn: str,
    *,
    now: datetime,
    lifetime_days: int,
) -> x509.Certificate:
    """Sign ``public_key`` for ``fqdn`` with oVirt's profile; nothing from the CSR is copied."""
    check_fqdn(fqdn)
    try:
        ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        # Chain builders match our AKI against the CA's SKI byte for byte, so copy it.
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject_for(ca.cert.subject, fqdn))
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        # RFC 5280 allows 20 octets; 128 random bits, never zero, are well above the 64 bits
        # of entropy the CA/Browser Forum asks for and keep the serial within 17 DER octets.
        .serial_number(1 + secrets.randbelow(2**128 - 1))
        .not_valid_before(now - timedelta(days=1))  # clock skew, as oVirt's -startdate
        .not_valid_after(now + timedelta(days=lifetime_days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(fqdn)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(PROFILE_KEY_USAGE, critical=True)
        .add_extension(PROFILE_EXTENDED_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(aki, critical=False)
    )
    return builder.sign(ca.key, hashes.SHA256())


# Certificate signing requests from the network.


def check_csr(csr_pem: bytes, fqdn: str) -> x509.CertificateSigningRequest:
    """Refuse a CSR we will not sign; cheapest checks first, the signature last."""
    check_fqdn(fqdn)
    if len(csr_pem) > MAX_CSR_BYTES:
        raise BadRequest(
            f"The certificate request is {len(csr_pem)} bytes; at most {MAX_CSR_BYTES} are accepted."
        )
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise BadRequest(
            "The certificate request is not a PEM CSR ('-----BEGIN CERTIFICATE REQUEST-----')."
        ) from None
    except x509.InvalidVersion as exc:  # not a ValueError
        raise BadRequest(
            f"The certificate request has version {exc.parsed_version}; PKCS#10 knows only "
            "version 0 (v1), so make it again with a standard tool."
        ) from None
    try:
        key = csr.public_key()
    except UnsupportedAlgorithm:
        raise BadRequest(
            f"The certificate request's key type is not supported; use {ACCEPTED_KEYS}."
        ) from None
    except ValueError:  # the request parses, the key inside it does not
        raise BadRequest(
            f"The certificate request's public key cannot be read; make a new key: {ACCEPTED_KEYS}."
        ) from None
    found = _describe_key(key)
    if isinstance(key, rsa.RSAPublicKey):
        ok = key.key_size >= MIN_RSA_BITS
    elif isinstance(key, ec.EllipticCurvePublicKey):
        ok = isinstance(key.curve, ACCEPTED_CURVES)
    else:
        ok = False
    if not ok:
        raise BadRequest(
            f"The certificate request carries a {found} key; make a new key: {ACCEPTED_KEYS}."
        )
    _check_names(csr, fqdn)
    if not csr.is_signature_valid:
        raise BadRequest(
            "The certificate request's signature does not verify against its own key; "
            "it was altered or built wrongly, so make a new one."
        )
    return csr


def _check_names(csr: x509.CertificateSigningRequest, fqdn: str) -> None:
    """Refuse a request made for another name: the certificate would name ``fqdn`` anyway,
    but a proxy asking in its own name for someone else's is a mistake or an attack, and
    the operator should hear of it as a refusal rather than find a quietly renamed cert."""
    try:
        cns = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns: list[str] | None = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns = None
    # TypeError: a subject attribute of an ASN.1 type its OID does not allow (found by make fuzz).
    except (ValueError, TypeError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        raise BadRequest(
            "The certificate request's subject or extensions cannot be read; make a new one."
        ) from None
    others = [cn for cn in cns if cn != fqdn]
    if others or (dns is not None and fqdn not in dns) or (not cns and not dns):
        asked = ", ".join([*(f"CN={cn}" for cn in cns), *(f"DNS:{n}" for n in dns or [])])
        if len(asked) > MAX_NAMES_SHOWN:  # the sentence goes back on the wire and to the log
            asked = asked[:MAX_NAMES_SHOWN] + "..."
        # The fqdn once only: the sentence must stay within the error message's 1000
        # characters with a 253-character fqdn and the names shown.
        raise BadRequest(
            f"The certificate request names {asked or 'no host'}, not {fqdn}; make it for "
            "that name (as its CN and its subjectAltName DNS name)."
        )


def ignored_requests(csr: x509.CertificateSigningRequest, fqdn: str) -> list[str]:
    """What the CSR asked for that the issued certificate will not carry, in words for the log.

    Nothing here is refused: the profile decides every extension whatever the CSR asks, so
    this is only for an operator to see that a proxy asked for more than it got.
    """
    ignored = []
    # check_csr made sure every CN is the fqdn; the issued subject is the CA's, so anything
    # else the request put in its subject is dropped.
    if any(attr.oid != NameOID.COMMON_NAME for attr in csr.subject):
        ignored.append(f"subject {csr.subject.rfc4514_string()}")
    for ext in csr.extensions:
        value = ext.value
        if isinstance(value, x509.BasicConstraints):
            if value.ca:
                ignored.append("basicConstraints CA:TRUE")
        elif isinstance(value, x509.SubjectAlternativeName):
            others = [_describe_general_name(n) for n in value if n != x509.DNSName(fqdn)]
            if others:
                ignored.append(f"subjectAltName {', '.join(others)}")
        elif isinstance(value, x509.KeyUsage):
            if value != PROFILE_KEY_USAGE:
                ignored.append(f"keyUsage {_describe_key_usage(value)}")
        elif isinstance(value, x509.ExtendedKeyUsage):
            if set(value) != set(PROFILE_EXTENDED_KEY_USAGE):
                names = ", ".join(_oid_name(o) for o in value)
                ignored.append(f"extendedKeyUsage {names}")
        else:
            ignored.append(f"extension {_oid_name(ext.oid)}")
    return ignored


def _describe_key(key: object) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA-{key.key_size}"
    return type(key).__name__


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    name = getattr(oid, "_name", None)  # cryptography's short name, when it knows one
    return oid.dotted_string if name in (None, "Unknown OID") else str(name)


def _describe_general_name(name: x509.GeneralName) -> str:
    kind = {x509.DNSName: "DNS", x509.IPAddress: "IP", x509.RFC822Name: "email"}
    return f"{kind.get(type(name), type(name).__name__)}:{name.value}"


def _describe_key_usage(ku: x509.KeyUsage) -> str:
    return ", ".join(n for n in KEY_USAGE_FLAGS if getattr(ku, n)) or "(none)"


# Reading oVirt's PKI.


def load_ca(paths: HostPaths) -> CertificateAuthority:
    cert = load_ca_cert(paths)
    key = _read(paths.ca_key, "the CA key")
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as e:  # TypeError: the key is encrypted
        raise PkiError(f"{paths.ca_key} is not an unencrypted PEM private key ({e}).") from None
    if not isinstance(private, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        found = _describe_key(private.public_key())
        raise PkiError(f"{paths.ca_key} holds a {found} key; a CA key must be RSA or ECDSA.")
    if spki(private.public_key()) != spki(cert.public_key()):
        raise PkiError(
            f"{paths.ca_key} does not belong to {paths.ca_cert}; restore the matching pair "
            "from the engine backup."
        )
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = bc.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise PkiError(
            f"{paths.ca_cert} is not a CA certificate (basicConstraints CA:TRUE is missing); "
            "point --root at the engine's PKI or create a CA with --create-ca."
        )
    return CertificateAuthority(cert, private)


def load_ca_cert(paths: HostPaths) -> x509.Certificate:
    return _load_cert(paths.ca_cert, "the CA certificate")


def load_engine_cert(paths: HostPaths) -> x509.Certificate:
    return _load_cert(paths.engine_cert, "the engine certificate")


def _load_cert(path: Path, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_read(path, what))
    except ValueError:
        raise PkiError(f"{path} is not a PEM certificate; restore {what} from backup.") from None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PkiError(
            f"{what.capitalize()} {path} is missing; run 'wsproxy-agent engine init' on the "
            "engine host (with --create-ca when there is no oVirt CA)."
        ) from None
    except OSError as e:
        raise PkiError(f"Cannot read {what} {path}: {e.strerror}; run the agent as root.") from None


def spki(key: PublicKeyTypes) -> bytes:
    """The DER SubjectPublicKeyInfo: two keys are the same key when these bytes are equal."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# Creating a PKI in oVirt's layout (for hosts without oVirt, and the demo).


def create_ca(
    paths: HostPaths,
    *,
    ca_subject: str,
    engine_fqdn: str,
    now: datetime,
    ca_days: int = 3650,
    engine_days: int = 398,
) -> None:
    """Create ca.pem, private/ca.pem, certs/engine.cer, keys/engine_id_rsa, keys/engine.p12.

    A subject without CN gets oVirt's style of CA name, "<engine fqdn>.<5 random digits>":
    the random part keeps two CAs made for the same engine apart, which browsers need (they
    refuse two different certificates with the same issuer name and serial).
    """
    check_fqdn(engine_fqdn)
    for existing in (paths.ca_cert, paths.ca_key):
        if existing.exists():
            raise PkiError(
                f"{existing} already exists and a CA is never overwritten; adopt it with "
                "'wsproxy-agent engine init' without --create-ca, or remove it yourself."
            )
    name = parse_subject(ca_subject)
    if not name.get_attributes_for_oid(NameOID.COMMON_NAME):
        cn = f"{engine_fqdn[:58]}.{secrets.randbelow(90000) + 10000}"  # CN is at most 64
        name = x509.Name([*name, x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=CA_KEY_BITS)
    ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ca_key.public_key())
        .serial_number(1 + secrets.randbelow(2**128 - 1))
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=ca_days))
        # oVirt's cacert.template: critical CA:true, critical keyCertSign and cRLSign.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca = CertificateAuthority(ca_cert, ca_key)
    engine_key = rsa.generate_private_key(public_exponent=65537, key_size=LEAF_KEY_BITS)
    engine_cert = issue_certificate(
        ca, engine_key.public_key(), engine_fqdn, now=now, lifetime_days=engine_days
    )

    pki = paths.pki_dir
    layout = [
        (pki, 0o755),
        (paths.ca_key.parent, 0o700),
        (paths.engine_cert.parent, 0o755),
        (paths.engine_key.parent, 0o755),
        (paths.requests_dir, 0o755),
    ]
    for directory, mode in layout:
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(mode)
    pem = serialization.Encoding.PEM
    write_atomic(paths.ca_key, _private_pem(ca_key), mode=0o600, keep_backup=False, exclusive=True)
    write_atomic(paths.engine_key, _private_pem(engine_key), mode=0o600, keep_backup=False)
    write_atomic(paths.engine_cert, engine_cert.public_bytes(pem), mode=0o644, keep_backup=False)
    p12 = pkcs12.serialize_key_and_certificates(
        ENGINE_P12_ALIAS,
        engine_key,
        engine_cert,
        None,
        serialization.BestAvailableEncryption(ENGINE_P12_PASSWORD),
    )
    write_atomic(paths.engine_p12, p12, mode=0o600, keep_backup=False)
    # ca.pem last: its presence is what marks the PKI as complete.
    write_atomic(
        paths.ca_cert, ca_cert.public_bytes(pem), mode=0o644, keep_backup=False, exclusive=True
    )


def _private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

"""The proxy's TLS key and its certificate request (DESIGN §5 step 1).

The TLS private key is made here and never leaves the proxy host; only the CSR travels.
Keys come from the library's own generators with its defaults (CVE-2013-2228 in Salt).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from protocol.names import check_fqdn

TLSKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

KEY_KINDS = ("rsa", "ec")
RSA_BITS = 2048
MAX_CN = 64  # X.520 ub-common-name; oVirt puts the FQDN in the CN


def generate_tls_key(kind: str = "rsa") -> TLSKey:
    """RSA-2048 (oVirt's default) or, on request, ECDSA P-256."""
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"Unknown TLS key kind {kind!r}; use one of: {', '.join(KEY_KINDS)}.")


def key_to_pem(key: TLSKey) -> bytes:
    # Unencrypted PKCS#8 ("BEGIN PRIVATE KEY"), as oVirt's own remote enrollment writes
    # websocket-proxy.key.nopass (ovirt_engine_setup/remote_engine.py, EnrollCert._genCsr).
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_key_pem(data: bytes) -> TLSKey:
    """Read an unencrypted PEM key (PKCS#8 or traditional) that is RSA or EC."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"The TLS key is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(
            f"The TLS key is a {type(key).__name__}; the proxy uses RSA or ECDSA keys only."
        )
    return key


def build_csr(key: TLSKey, fqdn: str) -> bytes:
    """A PEM CSR for ``fqdn``: CN and the one SAN the engine will sign (DESIGN §6 profile)."""
    fqdn = check_fqdn(fqdn)
    if len(fqdn) > MAX_CN:
        raise ValueError(
            f"The host name {fqdn!r} is {len(fqdn)} characters; a certificate's common name "
            f"holds at most {MAX_CN}. Use a shorter name for the proxy."
        )
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, fqdn)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(fqdn)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def csr_is_for(csr_pem: bytes, fqdn: str, kind: str) -> bool:
    """Whether a saved CSR can be sent again: self-signed, for ``fqdn`` alone, of ``kind``."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    key_class = {"rsa": rsa.RSAPublicKey, "ec": ec.EllipticCurvePublicKey}.get(kind)
    cn = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return (
        key_class is not None
        and isinstance(csr.public_key(), key_class)
        and csr.is_signature_valid
        and cn == [fqdn]
        and list(san) == [x509.DNSName(fqdn)]
    )

"""The issued certificate profile of DESIGN §6, checked by cryptography and by real openssl.

One checker for every test that looks at an issued certificate: the signer's unit tests,
the CSR fuzz test and the attack suite's greedy CSRs.
"""

from __future__ import annotations

import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from engine_agent.pki import KEY_USAGE_FLAGS

PROFILE_EXTENSIONS = {
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionOID.KEY_USAGE,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
}


def issued_subject(ca_cert: x509.Certificate, fqdn: str) -> x509.Name:
    """The CA's subject with ``CN=<fqdn>`` in place of its CN."""
    kept = [a for a in ca_cert.subject if a.oid != NameOID.COMMON_NAME]
    return x509.Name([*kept, x509.NameAttribute(NameOID.COMMON_NAME, fqdn)])


def assert_profile(
    cert: x509.Certificate, ca_cert: x509.Certificate, fqdn: str, *, ovirt: bool = False
) -> None:
    """Extension by extension, and nothing else. ``ovirt=True`` for certificates from oVirt's
    own script (our stand-in runs its openssl config): it leaves basicConstraints
    non-critical; everything else must be the same."""
    assert cert.subject == issued_subject(ca_cert, fqdn)
    assert cert.issuer == ca_cert.subject
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha256"
    assert cert.serial_number > 0 and cert.serial_number.bit_length() <= 128
    exts = cert.extensions
    assert {e.oid for e in exts} == PROFILE_EXTENSIONS
    san = exts.get_extension_for_class(x509.SubjectAlternativeName)
    assert list(san.value) == [x509.DNSName(fqdn)] and not san.critical
    bc = exts.get_extension_for_class(x509.BasicConstraints)
    assert bc.value.ca is False and bc.value.path_length is None
    assert bc.critical is (not ovirt)
    ku = exts.get_extension_for_class(x509.KeyUsage)
    granted = {name for name in KEY_USAGE_FLAGS if getattr(ku.value, name)}
    assert ku.critical and granted == {"digital_signature", "key_encipherment"}
    eku = exts.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    ski = exts.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    assert not ski.critical
    aki = exts.get_extension_for_class(x509.AuthorityKeyIdentifier)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.value.key_identifier == ca_ski.digest and not aki.critical

    text = subprocess.run(
        ["openssl", "x509", "-text", "-noout"],
        input=cert.public_bytes(serialization.Encoding.PEM),
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.decode()
    sections = text.split("X509v3 extensions:")[1]
    assert "CA:FALSE" in sections and "CA:TRUE" not in sections
    assert "Digital Signature, Key Encipherment\n" in sections
    assert "TLS Web Server Authentication, TLS Web Client Authentication\n" in sections
    assert f"DNS:{fqdn}\n" in sections and sections.count("DNS:") == 1
    assert "IP Address" not in sections and "Code Signing" not in sections

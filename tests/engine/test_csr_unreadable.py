"""A signed CSR whose subject cryptography loads but cannot read is refused as a bad request.

Found by ``make fuzz``: a subject attribute of an ASN.1 type its OID does not allow made
``csr.subject`` raise TypeError from inside check_csr, which the engine answers as internal.
"""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engine_agent.pki import check_csr
from protocol.errors import BadRequest
from tests.support import der

PROXY = "proxy.example.test"
ORGANISATION = b"\x06\x03\x55\x04\x0a"  # the OID 2.5.4.10 (O)


def test_a_subject_attribute_of_the_wrong_type_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = [
        x509.NameAttribute(NameOID.COMMON_NAME, PROXY),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ax"),
    ]
    made = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(subject))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(PROXY)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    # O="ax" as a UTF8String becomes a BIT STRING of the same length; signed again by the
    # proxy's own key, as any proxy could send it.
    info = der.replaced_once(
        made.tbs_certrequest_bytes,
        ORGANISATION + b"\x0c\x02ax",
        ORGANISATION + b"\x03\x02\x00x",
    )
    request = der.pem(der.signed(info, key), "CERTIFICATE REQUEST")
    with pytest.raises(BadRequest, match="subject or extensions cannot be read"):
        check_csr(request, PROXY)

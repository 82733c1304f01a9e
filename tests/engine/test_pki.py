"""engine_agent.pki: creating and adopting oVirt's PKI, checking CSRs, the certificate profile.

Certificates are checked field by field with cryptography and, independently, with the real
``openssl`` binary. The helpers shared with test_signer.py and test_fuzz_csr.py are in
tests/support/pki.py.
"""

from __future__ import annotations

import base64
import re
import shutil
import stat
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given
from hypothesis import strategies as st

from engine_agent.pki import (
    CertificateAuthority,
    PkiError,
    check_csr,
    create_ca,
    format_subject,
    ignored_requests,
    issue_certificate,
    load_ca,
    load_engine_cert,
    parse_subject,
)
from protocol.errors import BadRequest
from tests.support.pki import (
    CA_SUBJECT,
    ENGINE,
    NOW,
    PEM,
    PROXY,
    copy_root,
    make_csr,
    openssl,
    openssl_verify,
    rsa_key,
)
from tests.support.profile import assert_profile
from wsproxy_agent.paths import HostPaths

# Fixtures


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pristine")
    create_ca(HostPaths.under(root), ca_subject=CA_SUBJECT, engine_fqdn=ENGINE, now=NOW)
    return root


@pytest.fixture
def paths(pristine: Path, tmp_path: Path) -> HostPaths:
    return copy_root(pristine, tmp_path)


@pytest.fixture
def ca(paths: HostPaths) -> CertificateAuthority:
    return load_ca(paths)


# create_ca


def test_create_ca_lays_out_files_as_ovirt_does(tmp_path: Path) -> None:
    paths = HostPaths.under(tmp_path)
    create_ca(paths, ca_subject=CA_SUBJECT, engine_fqdn=ENGINE, now=NOW)

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)

    assert mode(paths.ca_cert) == 0o644
    assert mode(paths.ca_key.parent) == 0o700
    assert mode(paths.ca_key) == 0o600
    assert mode(paths.engine_cert) == 0o644
    assert mode(paths.engine_key) == 0o600
    assert mode(paths.engine_p12) == 0o600
    assert paths.requests_dir.is_dir() and not any(paths.requests_dir.iterdir())
    # Nothing else: no temp files left behind.
    files = sorted(str(p.relative_to(paths.pki_dir)) for p in paths.pki_dir.rglob("*"))
    assert files == [
        "ca.pem",
        "certs",
        "certs/engine.cer",
        "keys",
        "keys/engine.p12",
        "keys/engine_id_rsa",
        "private",
        "private/ca.pem",
        "requests",
    ]
    assert paths.ca_key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, clear

    ca = load_ca(paths)
    assert ca.key.key_size == 3072
    bc = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.value.ca and bc.critical
    ku = ca.cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    # No CN given: oVirt's style, "<engine fqdn>.<5 digits>".
    assert re.fullmatch(
        r"CN=engine\.example\.test\.\d{5},O=Example Test,C=US", ca.cert.subject.rfc4514_string()
    )
    assert ca.cert.not_valid_before_utc == NOW - timedelta(days=1)
    assert ca.cert.not_valid_after_utc == NOW + timedelta(days=3650)


def test_create_ca_keeps_a_given_cn(tmp_path: Path) -> None:
    paths = HostPaths.under(tmp_path)
    create_ca(paths, ca_subject="/C=US/O=Example Test/CN=Test CA", engine_fqdn=ENGINE, now=NOW)
    assert load_ca(paths).cert.subject.rfc4514_string() == "CN=Test CA,O=Example Test,C=US"


def test_create_ca_never_overwrites_a_ca(paths: HostPaths) -> None:
    before = paths.ca_cert.read_bytes(), paths.ca_key.read_bytes()
    with pytest.raises(PkiError, match="never overwritten") as exc:
        create_ca(paths, ca_subject=CA_SUBJECT, engine_fqdn=ENGINE, now=NOW)
    assert str(paths.ca_cert) in exc.value.sentence
    assert (paths.ca_cert.read_bytes(), paths.ca_key.read_bytes()) == before


def test_create_ca_refuses_a_lone_ca_key(paths: HostPaths) -> None:
    paths.ca_cert.unlink()
    key = paths.ca_key.read_bytes()
    with pytest.raises(PkiError, match=re.escape(str(paths.ca_key))):
        create_ca(paths, ca_subject=CA_SUBJECT, engine_fqdn=ENGINE, now=NOW)
    assert paths.ca_key.read_bytes() == key


def test_engine_cert_verifies_with_openssl_and_has_the_profile(
    paths: HostPaths, ca: CertificateAuthority
) -> None:
    engine = load_engine_cert(paths)
    openssl_verify(paths, engine)
    assert_profile(engine, ca.cert, ENGINE)
    assert engine.not_valid_after_utc == NOW + timedelta(days=398)
    key = serialization.load_pem_private_key(paths.engine_key.read_bytes(), None)
    assert key.public_key() == engine.public_key()


def test_engine_p12_opens_with_ovirts_password(paths: HostPaths) -> None:
    p12 = pkcs12.load_pkcs12(paths.engine_p12.read_bytes(), b"mypass")
    assert p12.cert is not None and p12.cert.certificate == load_engine_cert(paths)
    assert p12.cert.friendly_name == b"1"  # oVirt's ENGINE_PKI_ENGINE_STORE_ALIAS
    assert p12.key is not None
    assert p12.key.public_key() == p12.cert.certificate.public_key()
    done = openssl(
        "pkcs12", "-in", str(paths.engine_p12), "-passin", "pass:mypass", "-nokeys", "-clcerts"
    )
    assert done.returncode == 0, done.stderr
    assert "BEGIN CERTIFICATE" in done.stdout
    assert openssl("pkcs12", "-in", str(paths.engine_p12), "-passin", "pass:wrong").returncode


# Subjects


def test_parse_and_format_subject() -> None:
    text = "/C=US/ST=Region/L=Town/O=Example/OU=Virt/CN=x/emailAddress=a@b.test/DC=example"
    name = parse_subject(text)
    assert name.rfc4514_string() == (
        "DC=example,1.2.840.113549.1.9.1=a@b.test,CN=x,OU=Virt,O=Example,L=Town,ST=Region,C=US"
    )
    assert format_subject(name) == text


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("/C=US/XX=1", "'XX' is unknown"),
        ("C=US/O=x", "must start with '/'"),
        ("/C=US/O", "not KEY=value"),
        ("/C=US/O=", "not KEY=value"),
        ("/C=USA", "invalid"),
    ],
)
def test_parse_subject_refuses(text: str, words: str) -> None:
    with pytest.raises(PkiError, match=re.escape(words)):
        parse_subject(text)


def test_format_subject_refuses_a_slash_in_a_value() -> None:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "A/B")])
    with pytest.raises(PkiError, match="contains '/'"):
        format_subject(name)


_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="/"))


@given(st.lists(st.tuples(st.sampled_from(["ST", "L", "O", "OU", "CN", "DC"]), _values)))
def test_subject_round_trip(parts: list[tuple[str, str]]) -> None:
    parts = [(k, v) for k, v in parts if v]
    text = "/" + "/".join(f"{k}={v}" for k, v in parts)
    if not parts:
        return
    assert format_subject(parse_subject(text)) == text


# load_ca


def test_load_ca_adopts_a_matching_pair(paths: HostPaths) -> None:
    ca = load_ca(paths)
    assert ca.cert.public_bytes(PEM) == paths.ca_cert.read_bytes()
    assert ca.key.public_key() == ca.cert.public_key()


def test_load_ca_refuses_a_missing_ca(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="is missing; run 'wsproxy-agent engine init'"):
        load_ca(HostPaths.under(tmp_path))


def test_load_ca_refuses_a_key_of_another_ca(paths: HostPaths) -> None:
    paths.ca_key.write_bytes(
        rsa_key().private_bytes(
            PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(PkiError, match="does not belong to"):
        load_ca(paths)


def test_load_ca_refuses_a_certificate_that_is_no_ca(paths: HostPaths) -> None:
    # A matching pair, but the engine's: CA:FALSE.
    shutil.copy(paths.engine_cert, paths.ca_cert)
    shutil.copy(paths.engine_key, paths.ca_key)
    with pytest.raises(PkiError, match="not a CA certificate"):
        load_ca(paths)


def test_load_ca_refuses_garbage(paths: HostPaths) -> None:
    paths.ca_cert.write_text("not a certificate\n")
    with pytest.raises(PkiError, match="is not a PEM certificate"):
        load_ca(paths)


# issue_certificate: the profile


@pytest.mark.parametrize(
    "key",
    [rsa_key(), ec.generate_private_key(ec.SECP256R1())],
    ids=["rsa-2048", "ec-p256"],
)
def test_issue_certificate_has_exactly_the_profile(
    paths: HostPaths, ca: CertificateAuthority, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
) -> None:
    cert = issue_certificate(ca, key.public_key(), PROXY, now=NOW, lifetime_days=398)
    assert_profile(cert, ca.cert, PROXY)
    assert cert.public_key() == key.public_key()
    assert cert.not_valid_before_utc == NOW - timedelta(days=1)
    assert cert.not_valid_after_utc == NOW + timedelta(days=398)
    openssl_verify(paths, cert)


def test_issue_certificate_serials_are_random_and_at_most_128_bits(
    ca: CertificateAuthority,
) -> None:
    serials = {
        issue_certificate(ca, rsa_key().public_key(), PROXY, now=NOW, lifetime_days=1).serial_number
        for _ in range(20)
    }
    assert len(serials) == 20
    assert all(0 < s < 2**128 for s in serials)
    assert max(s.bit_length() for s in serials) > 120  # random, not counted


def test_issue_certificate_refuses_a_bad_name(ca: CertificateAuthority) -> None:
    with pytest.raises(BadRequest):
        issue_certificate(ca, rsa_key().public_key(), "../../etc", now=NOW, lifetime_days=1)


# check_csr and ignored_requests


def _flip_signature_byte(csr_pem: bytes) -> bytes:
    der = bytearray(x509.load_pem_x509_csr(csr_pem).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the last byte is inside the signature BIT STRING
    b64 = base64.encodebytes(bytes(der)).decode().replace("\n", "")
    lines = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{lines}\n-----END CERTIFICATE REQUEST-----\n".encode()


def _certificate_pem(paths: HostPaths) -> bytes:
    return paths.engine_cert.read_bytes()


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: b"hello", "is not a PEM CSR"),
        (lambda: b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END", "is not a PEM CSR"),
        (lambda: _flip_signature_byte(make_csr(rsa_key())), "signature does not verify"),
        (lambda: make_csr(rsa_key(1024)), "carries a RSA-1024 key"),
        (lambda: make_csr(ed25519.Ed25519PrivateKey.generate()), "carries a Ed25519 key"),
        (lambda: make_csr(dsa.generate_private_key(1024)), "carries a DSA-1024 key"),
        (lambda: make_csr(ec.generate_private_key(ec.SECP521R1())), "ECDSA secp521r1"),
        (lambda: make_csr(ec.generate_private_key(ec.SECP256K1())), "ECDSA secp256k1"),
        (lambda: make_csr(rsa_key()) + b"\n" * 16384, "at most 16384 are accepted"),
    ],
    ids=[
        "garbage",
        "bad-base64",
        "bad-signature",
        "rsa-1024",
        "ed25519",
        "dsa",
        "p521",
        "k256",
        "oversize",
    ],
)
def test_check_csr_refuses(make: Callable[[], bytes], words: str) -> None:
    with pytest.raises(BadRequest, match=re.escape(words)) as exc:
        check_csr(make(), PROXY)
    if "key" in words or "ECDSA" in words:
        # The sentence says what to do instead.
        assert "RSA of 2048 bits or more, or ECDSA on P-256 or P-384" in exc.value.sentence


def test_check_csr_refuses_a_certificate(paths: HostPaths) -> None:
    with pytest.raises(BadRequest, match="is not a PEM CSR"):
        check_csr(_certificate_pem(paths), PROXY)


def _altered_der(
    key: rsa.RSAPrivateKey, alter: Callable[[bytearray, rsa.RSAPrivateKey], None]
) -> bytes:
    """A real CSR for PROXY with its DER changed by ``alter``, wrapped as PEM again."""
    der = bytearray(x509.load_pem_x509_csr(make_csr(key)).public_bytes(serialization.Encoding.DER))
    alter(der, key)
    b64 = base64.encodebytes(bytes(der)).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{b64}-----END CERTIFICATE REQUEST-----\n".encode()


def _rsa_key_made_a_set(der: bytearray, key: rsa.RSAPrivateKey) -> None:
    # The RSAPublicKey inside the key's BIT STRING, which is parsed only when the key is read.
    inner = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.PKCS1
    )
    der[der.index(inner)] = 0x31  # its SEQUENCE tag, now a SET


def _version_one(der: bytearray, key: rsa.RSAPrivateKey) -> None:
    der[der.index(b"\x02\x01\x00") + 2] = 0x01  # the first INTEGER is the version


@pytest.mark.parametrize(
    ("alter", "words"),
    [(_rsa_key_made_a_set, "public key cannot be read"), (_version_one, "has version 1")],
    ids=["unreadable-key", "version-1"],
)
def test_check_csr_refuses_what_parses_only_halfway(
    alter: Callable[[bytearray, rsa.RSAPrivateKey], None], words: str
) -> None:
    """Found by tests/engine/test_fuzz_csr.py: cryptography raised ValueError (key) and
    InvalidVersion, not BadRequest, so the daemon answered 'internal'."""
    with pytest.raises(BadRequest, match=words):
        check_csr(_altered_der(rsa_key(), alter), PROXY)


@pytest.mark.parametrize(
    "key",
    [rsa_key(), ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP384R1())],
    ids=["rsa-2048", "ec-p256", "ec-p384"],
)
def test_check_csr_accepts(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
    csr = check_csr(make_csr(key), PROXY)
    assert csr.public_key() == key.public_key()
    assert ignored_requests(csr, PROXY) == []


def test_ignored_requests_names_what_the_profile_overrides() -> None:
    greedy = make_csr(
        rsa_key(),
        extensions=[
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                True,
            ),
            (
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName(PROXY),
                        x509.DNSName("*.example.test"),
                        x509.DNSName("engine.example.test"),
                    ]
                ),
                False,
            ),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False),
        ],
    )
    assert ignored_requests(check_csr(greedy, PROXY), PROXY) == [
        "basicConstraints CA:TRUE",
        "keyUsage digital_signature, key_cert_sign, crl_sign",
        "subjectAltName DNS:*.example.test, DNS:engine.example.test",
        "extendedKeyUsage codeSigning",
    ]


def test_ignored_requests_names_a_subject_beyond_the_cn() -> None:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Evil"),
            x509.NameAttribute(NameOID.COMMON_NAME, PROXY),
        ]
    )
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .sign(rsa_key(), hashes.SHA256())
    )
    parsed = check_csr(request.public_bytes(PEM), PROXY)
    assert ignored_requests(parsed, PROXY) == [f"subject CN={PROXY},O=Evil"]


def _names_csr(cns: list[str], sans: list[str] | None) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in cns])
    )
    if sans is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False
        )
    return builder.sign(rsa_key(), hashes.SHA256()).public_bytes(PEM)


@pytest.mark.parametrize(
    ("cns", "sans", "named"),
    [
        (["other.example.test"], ["other.example.test"], "CN=other.example.test"),
        (["other.example.test"], None, "CN=other.example.test"),
        ([PROXY], ["other.example.test"], "DNS:other.example.test"),
        ([PROXY, "other.example.test"], [PROXY], "CN=other.example.test"),
        (["*.example.test"], [PROXY], "CN=*.example.test"),
        ([], ["other.example.test"], "DNS:other.example.test"),
        ([], None, "no host"),
    ],
    ids=["other", "other-cn-only", "other-san", "second-cn", "wildcard-cn", "san-only", "none"],
)
def test_check_csr_refuses_a_request_for_another_name(
    cns: list[str], sans: list[str] | None, named: str
) -> None:
    with pytest.raises(BadRequest, match=re.escape(named)) as exc:
        check_csr(_names_csr(cns, sans), PROXY)
    assert f"not {PROXY}" in exc.value.sentence


def test_a_refusal_for_other_names_fits_in_an_error_reply() -> None:
    """The longest fqdn and a CSR naming many long names: the sentence, which goes back in
    an error reply, still fits that reply's 1000-character message."""
    longest = ".".join(["a" * 63] * 3 + ["a" * 61])
    others = [f"{c * 60}.{c * 60}.{c * 60}.{c * 60}.example" for c in "bcdefg"]
    with pytest.raises(BadRequest, match=re.escape("names CN=b.example, DNS:bbb")) as exc:
        check_csr(_names_csr(["b.example"], others), longest)
    assert f"not {longest}" in exc.value.sentence
    assert len(exc.value.sentence) <= 1000


@pytest.mark.parametrize(
    ("cns", "sans"),
    [([PROXY], [PROXY]), ([PROXY], None), ([], [PROXY]), ([PROXY], [PROXY, "*.example.test"])],
    ids=["cn-and-san", "cn-only", "san-only", "extra-san"],
)
def test_check_csr_accepts_a_request_naming_the_fqdn(
    cns: list[str], sans: list[str] | None
) -> None:
    check_csr(_names_csr(cns, sans), PROXY)


def test_ignored_requests_is_quiet_about_what_the_profile_grants_anyway() -> None:
    modest = make_csr(
        rsa_key(),
        extensions=[
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.SubjectAlternativeName([x509.DNSName(PROXY)]), False),
            (
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
                ),
                False,
            ),
        ],
    )
    assert ignored_requests(check_csr(modest, PROXY), PROXY) == []

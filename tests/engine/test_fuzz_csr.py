"""Fuzzing the engine's CSR checks: ``pki.check_csr`` returns a parsed CSR or raises
BadRequest, whatever the bytes; it accepts a request exactly when the request names the
fqdn, with a key we allow and a good signature; and whatever it accepts,
``pki.issue_certificate`` turns into a certificate with exactly the profile.

The oracle for "names the fqdn" is computed from what the test put in the request, not from
the code under test: every CN is the fqdn, a subjectAltName (if any) lists DNS:<fqdn>, and
at least one of the two names it.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import os
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine_agent import pki
from engine_agent.pki import CertificateAuthority
from protocol.errors import BadRequest
from tests.support.pki import (
    CA_SUBJECT,
    ENGINE,
    NOW,
    PROXY,
    rsa_key,
)
from tests.support.profile import assert_profile
from wsproxy_agent.paths import HostPaths

FUZZ = settings(
    # About 10 s here; CSR_FUZZ_EXAMPLES=5000 for a longer hunt.
    max_examples=int(os.environ.get("CSR_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NAMES = [PROXY, "other.example.test", "*.example.test", PROXY.upper(), PROXY + ".", ENGINE]
ALLOWED_KEYS = ("rsa-2048", "ec-p256", "ec-p384")


KEY_KINDS: dict[str, Callable[[], CertificateIssuerPrivateKeyTypes]] = {
    "rsa-2048": lambda: rsa_key(2048),
    "rsa-1024": lambda: rsa_key(1024),
    "ec-p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ec-p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "ec-k256": lambda: ec.generate_private_key(ec.SECP256K1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "dsa-1024": lambda: dsa.generate_private_key(1024),
}


@functools.cache
def key(kind: str) -> CertificateIssuerPrivateKeyTypes:
    """One key per kind, made once: generating keys per example would dwarf the checks."""
    return KEY_KINDS[kind]()


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    paths = HostPaths.under(tmp_path_factory.mktemp("fuzz-ca"))
    pki.create_ca(paths, ca_subject=CA_SUBJECT, engine_fqdn=ENGINE, now=NOW)
    return pki.load_ca(paths)


def outcome(pem: bytes, fqdn: str = PROXY) -> x509.CertificateSigningRequest | None:
    """check_csr's verdict: the CSR, or None for a BadRequest with a sentence; anything
    else propagates and fails the test."""
    try:
        return pki.check_csr(pem, fqdn)
    except BadRequest as exc:
        assert exc.sentence and "Traceback" not in exc.sentence
        return None


def assert_issues_the_profile(
    ca: CertificateAuthority, csr: x509.CertificateSigningRequest
) -> None:
    cert = pki.issue_certificate(ca, csr.public_key(), PROXY, now=NOW, lifetime_days=398)
    assert_profile(cert, ca.cert, PROXY)
    assert pki.spki(cert.public_key()) == pki.spki(csr.public_key())


def wrap(der: bytes, label: str = "CERTIFICATE REQUEST") -> bytes:
    b64 = base64.b64encode(der).decode()
    lines = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n".encode()


# Arbitrary input.


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=2048),
        st.binary(max_size=1024).map(wrap),
        st.text(max_size=512).map(lambda t: wrap(t.encode(), "CERTIFICATE REQUEST")),
    ),
    fqdn=st.one_of(st.just(PROXY), st.text(max_size=80)),
)
def test_arbitrary_bytes_are_refused_with_a_sentence(data: bytes, fqdn: str) -> None:
    assert outcome(data, fqdn) is None


# Real CSRs with bits flipped, bytes replaced or cut short.

SEEDS = {
    "plain": lambda: _build("ec-p256", [PROXY], [PROXY], {}),
    "greedy": lambda: _build(
        "rsa-2048",
        [PROXY],
        [PROXY, "*.example.test"],
        {"ca": True, "eku": [ExtendedKeyUsageOID.CODE_SIGNING]},
    ),
    "other-name": lambda: _build("ec-p384", ["other.example.test"], None, {}),
}


@FUZZ
@given(
    seed=st.sampled_from(sorted(SEEDS)),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), min_size=1, max_size=4),
    cut=st.one_of(st.none(), st.integers(0, 10_000)),
)
def test_mutated_csrs_are_refused_or_still_name_the_fqdn(
    ca: CertificateAuthority, seed: str, flips: list[tuple[int, int]], cut: int | None
) -> None:
    der = bytearray(_der(seed))
    for position, bit in flips:
        der[position % len(der)] ^= 1 << bit
    if cut is not None:
        der = der[: cut % len(der)]
    csr = outcome(wrap(bytes(der)))
    if csr is None:
        return
    # Accepted: it must still be a request for PROXY, signed by its own key.
    assert csr.is_signature_valid
    assert _names_the_fqdn(
        [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)],
        _sans(csr),
    )
    assert_issues_the_profile(ca, csr)


@functools.cache
def _der(seed: str) -> bytes:
    pem = SEEDS[seed]()
    return x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER)


def _sans(csr: x509.CertificateSigningRequest) -> list[str] | None:
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    return san.get_values_for_type(x509.DNSName)


# CSRs built from random choices: the verdict is exactly what the oracle says.

key_usages = st.fixed_dictionaries({name: st.booleans() for name in pki.KEY_USAGE_FLAGS})
eku_oids = st.lists(
    st.sampled_from(
        [
            ExtendedKeyUsageOID.SERVER_AUTH,
            ExtendedKeyUsageOID.CLIENT_AUTH,
            ExtendedKeyUsageOID.CODE_SIGNING,
            ExtendedKeyUsageOID.OCSP_SIGNING,
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
        ]
    ),
    min_size=1,
    max_size=3,
    unique=True,
)
extensions = st.fixed_dictionaries(
    {},
    optional={
        "ca": st.booleans(),
        "ku": key_usages,
        "eku": eku_oids,
        "ip": st.booleans(),
        "email": st.booleans(),
        "unknown": st.binary(max_size=32),
        "subject_extra": st.booleans(),
    },
)


@FUZZ
@given(
    # Weighted towards what may be accepted, so the profile gets checked often.
    kind=st.one_of(st.sampled_from(ALLOWED_KEYS), st.sampled_from(sorted(KEY_KINDS))),
    cns=st.one_of(st.just([PROXY]), st.lists(st.sampled_from(NAMES), max_size=2)),
    sans=st.one_of(
        st.none(), st.just([PROXY]), st.lists(st.sampled_from(NAMES), min_size=1, max_size=3)
    ),
    chosen=extensions,
)
def test_built_csrs_are_accepted_exactly_when_they_should_be(
    ca: CertificateAuthority,
    kind: str,
    cns: list[str],
    sans: list[str] | None,
    chosen: dict[str, Any],
) -> None:
    pem = _build(kind, cns, sans, chosen)
    csr = outcome(pem)
    # An IP or email name alone still makes a subjectAltName, one without the fqdn.
    has_san = sans is not None or chosen.get("ip") or chosen.get("email")
    should = kind in ALLOWED_KEYS and _names_the_fqdn(cns, (sans or []) if has_san else None)
    assert (csr is not None) == should, (kind, cns, sans, chosen)
    event("accepted" if csr is not None else "refused")
    if csr is not None:
        assert_issues_the_profile(ca, csr)


def _names_the_fqdn(cns: list[str], sans: list[str] | None) -> bool:
    return all(cn == PROXY for cn in cns) and (sans is None or PROXY in sans) and bool(cns or sans)


def _build(kind: str, cns: list[str], sans: list[str] | None, chosen: dict[str, Any]) -> bytes:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in cns]
    if chosen.get("subject_extra"):
        attributes += [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Evil Corp"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "XX"),
        ]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
    if sans is not None or chosen.get("ip") or chosen.get("email"):
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in sans or []]
        if chosen.get("ip"):
            names.append(x509.IPAddress(ipaddress.ip_address("192.0.2.1")))
        if chosen.get("email"):
            names.append(x509.RFC822Name("root@example.test"))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if "ca" in chosen:
        path = 0 if chosen["ca"] else None
        builder = builder.add_extension(
            x509.BasicConstraints(ca=chosen["ca"], path_length=path), critical=True
        )
    if "ku" in chosen:
        builder = builder.add_extension(
            x509.KeyUsage(**chosen["ku"], encipher_only=False, decipher_only=False),
            critical=True,
        )
    if "eku" in chosen:
        builder = builder.add_extension(x509.ExtendedKeyUsage(chosen["eku"]), critical=False)
    if "unknown" in chosen:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), chosen["unknown"]
            ),
            critical=False,
        )
    private = key(kind)
    algorithm = None if isinstance(private, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(private, algorithm).public_bytes(serialization.Encoding.PEM)

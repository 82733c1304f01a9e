"""CSRs built to get more than the profile, or to be signed when they should not be.

The CSRs are made by the real ``openssl req`` (keys by ``openssl genpkey``), the way an
attacker with stock tools would, except where openssl cannot express the abuse (a broken
signature: the DER is altered afterwards). Each comes with a valid token, so the only thing
standing between it and a signature is the engine's CSR check and its profile.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from engine_agent import pki
from protocol import catalogue as cat
from tests.attacks.conftest import Target
from tests.attacks.enrol import (
    answer,
    assert_refused,
    fresh_token,
    send_enroll,
    shared_target,
    source,
    token_states,
)
from tests.support.profile import assert_profile

# engine_init's CA subject, "/C=US/O=E2E": the issued subject is it with CN=<fqdn>.
CSR_BEGIN = "-----BEGIN CERTIFICATE REQUEST-----"
CSR_END = "-----END CERTIFICATE REQUEST-----"


@pytest.fixture(scope="module")
def world() -> Iterator[Target]:
    with shared_target() as t:
        yield t


def openssl(*args: str) -> str:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def genpkey(kind: str, directory: Path) -> Path:
    """A private key file from ``openssl genpkey``: rsa-<bits>, ec-<curve>, ed25519, ed448, dsa."""
    out = directory / f"{kind}.pem"
    algorithm, _, size = kind.partition("-")
    options = {
        "rsa": ["-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{size}"],
        "ec": ["-algorithm", "EC", "-pkeyopt", f"ec_paramgen_curve:{size}"],
        "dsa": ["-paramfile", str(directory / "dsa-params.pem")],
    }.get(algorithm, ["-algorithm", algorithm.upper()])
    if algorithm == "dsa":
        openssl("genpkey", "-genparam", "-algorithm", "DSA", "-out", options[1])
    openssl("genpkey", *options, "-out", str(out))
    return out


def openssl_req(key: Path, subject: str, *extensions: str, x509_cert: bool = False) -> str:
    """``openssl req -new``: a CSR (or, with ``x509_cert``, a self-signed certificate)."""
    args = ["req", "-new", "-key", str(key), "-subj", subject, "-multivalue-rdn"]
    for ext in extensions:
        args += ["-addext", ext]
    if x509_cert:
        args += ["-x509", "-days", "1"]
    return openssl(*args)


def altered(csr_pem: str, change: Callable[[bytearray], None]) -> str:
    """The CSR's DER changed in place by ``change``, wrapped as PEM again."""
    der = bytearray(base64.b64decode("".join(csr_pem.strip().splitlines()[1:-1])))
    change(der)
    body = base64.encodebytes(bytes(der)).decode()
    return f"{CSR_BEGIN}\n{body}{CSR_END}\n"


def broken_signature(der: bytearray) -> None:
    der[-3] ^= 0xFF  # inside the signature, the last element of the request


def version_one(der: bytearray) -> None:
    der[der.index(b"\x02\x01\x00") + 2] = 0x01  # the first INTEGER is the version


def unreadable_key(csr_pem: str) -> str:
    """The RSAPublicKey inside the key's BIT STRING (parsed only when the key is read) made
    a SET instead of a SEQUENCE: the request parses, its key does not."""
    key = x509.load_pem_x509_csr(csr_pem.encode()).public_key()
    inner = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)

    def change(der: bytearray) -> None:
        der[der.index(inner)] = 0x31

    return altered(csr_pem, change)


# Greedy CSRs: signed, but with the profile and nothing the CSR asked beyond it.


def assert_profile_of(cert_pem: str, ca_pem: str, fqdn: str) -> x509.Certificate:
    """DESIGN §6, read by cryptography and by the real openssl: nothing from the CSR."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    assert_profile(cert, x509.load_pem_x509_certificate(ca_pem.encode()), fqdn)
    return cert


GREEDY = {
    "ca": ("basicConstraints=critical,CA:TRUE,pathlen:5",),
    "cert-sign": ("keyUsage=critical,keyCertSign,cRLSign,digitalSignature,nonRepudiation",),
    "extra-sans": ("subjectAltName=DNS:{fqdn},DNS:proxy.e2e.test,DNS:engine.e2e.test",),
    "wildcard-san": ("subjectAltName=DNS:{fqdn},DNS:*.e2e.test,DNS:*.*",),
    "ip-san": ("subjectAltName=DNS:{fqdn},IP:127.0.0.1,IP:::1,email:root@e2e.test",),
    "eku": ("extendedKeyUsage=critical,clientAuth,codeSigning,OCSPSigning,timeStamping",),
    "subject": (),
}
# What the engine tells its operator it ignored, per flavour.
NOTED = {
    "ca": "basicConstraints CA:TRUE",
    "cert-sign": "keyUsage digital_signature, content_commitment, key_cert_sign, crl_sign",
    "extra-sans": "subjectAltName DNS:proxy.e2e.test, DNS:engine.e2e.test",
    "wildcard-san": "subjectAltName DNS:*.e2e.test, DNS:*.*",
    "ip-san": "subjectAltName IP:127.0.0.1, IP:::1, email:root@e2e.test",
    "eku": "extendedKeyUsage clientAuth, codeSigning, OCSPSigning, timeStamping",
    "subject": "subject ",
}
WEIRD_SUBJECT = "/C=XX/O=Evil Corp/OU=Admins/CN={fqdn}+UID=root/emailAddress=root@e2e.test/DC=evil"


def ignored_logged(world: Target, fqdn: str) -> list[str]:
    for line in world.hosts.engine_log().splitlines():
        if '"csr_requests_ignored"' in line and fqdn in line:
            return list(json.loads(line)["ignored"])
    return []


@pytest.mark.parametrize("flavour", [*GREEDY, "everything"])
def test_greedy_csr_gets_exactly_the_profile(world: Target, flavour: str, tmp_path: Path) -> None:
    fqdn = f"greedy-{flavour}.e2e.test"
    chosen = list(GREEDY) if flavour == "everything" else [flavour]
    extensions = [e.format(fqdn=fqdn) for f in chosen if f != "subject" for e in GREEDY[f]]
    if flavour == "everything":  # one subjectAltName only: openssl refuses two
        extensions = [e for e in extensions if not e.startswith("subjectAltName")]
        extensions.append(
            f"subjectAltName=DNS:{fqdn},DNS:*.e2e.test,DNS:engine.e2e.test,IP:127.0.0.1"
        )
    subject = WEIRD_SUBJECT if "subject" in chosen else "/CN={fqdn}"
    key = genpkey("ec-P-256", tmp_path)
    request = openssl_req(key, subject.format(fqdn=fqdn), *extensions)
    token = fresh_token(world, fqdn)
    before = world.snapshot()

    client = world.attacker(source=source(10))
    reply = answer(client, send_enroll(client, request, fqdn, token))

    assert reply.type == cat.ENROLL_APPROVED, reply.body
    cert = assert_profile_of(str(reply.body["cert"]), str(reply.body["ca_cert"]), fqdn)
    assert pki.spki(cert.public_key()) == pki.spki(
        x509.load_pem_x509_csr(request.encode()).public_key()
    )
    noted = ignored_logged(world, fqdn)
    for f in chosen:
        if flavour != "everything" or f not in ("extra-sans", "wildcard-san", "ip-san"):
            assert any(n.startswith(NOTED[f]) for n in noted), (NOTED[f], noted)
    world.assert_serves_legit()
    after = world.snapshot()
    assert [r for r in after.rows["proxies"] if r["fqdn"] != fqdn] == before.rows["proxies"]
    assert after.calls == before.calls


# Refused CSRs: bad_request, nothing signed, and the token still good for a proper retry.


def _for(fqdn: str, kind: str, directory: Path) -> str:
    return openssl_req(genpkey(kind, directory), f"/CN={fqdn}", f"subjectAltName=DNS:{fqdn}")


REFUSED: dict[str, tuple[Callable[[str, Path], str], str]] = {
    # name: (build(fqdn, scratch directory) -> PEM text, words the refusal must carry)
    "rsa-1024": (lambda f, d: _for(f, "rsa-1024", d), "carries a RSA-1024 key"),
    "dsa": (lambda f, d: _for(f, "dsa", d), "carries a DSA-2048 key"),
    "ed25519": (lambda f, d: _for(f, "ed25519", d), "carries a Ed25519 key"),
    "ed448": (lambda f, d: _for(f, "ed448", d), "carries a Ed448 key"),
    "p521": (lambda f, d: _for(f, "ec-P-521", d), "carries a ECDSA secp521r1 key"),
    "k256": (lambda f, d: _for(f, "ec-secp256k1", d), "carries a ECDSA secp256k1 key"),
    "broken-signature": (
        lambda f, d: altered(_for(f, "ec-P-256", d), broken_signature),
        "signature does not verify",
    ),
    "version-1": (lambda f, d: altered(_for(f, "ec-P-256", d), version_one), "has version 1"),
    "unreadable-key": (
        lambda f, d: unreadable_key(_for(f, "rsa-2048", d)),
        "public key cannot be read",
    ),
    "certificate": (
        lambda f, d: openssl_req(genpkey("ec-P-256", d), f"/CN={f}", x509_cert=True),
        "is not a PEM CSR",
    ),
    "pem-garbage": (lambda f, d: f"{CSR_BEGIN}\nZ2FyYmFnZQ==\n{CSR_END}\n", "is not a PEM CSR"),
    "other-name": (
        lambda f, d: _for("victim.e2e.test", "ec-P-256", d),
        "names CN=victim.e2e.test, DNS:victim.e2e.test, not ",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_csr_costs_no_token(world: Target, case: str, tmp_path: Path) -> None:
    build, words = REFUSED[case]
    fqdn = f"refused-{case}.e2e.test"
    pem = build(fqdn, tmp_path)
    token = fresh_token(world, fqdn)
    before = world.snapshot()

    client = world.attacker(source=source(20 + list(REFUSED).index(case)))
    reply = answer(client, send_enroll(client, pem, fqdn, token))

    assert_refused(reply, "bad_request", words)
    if "key" in words:
        assert pki.ACCEPTED_KEYS in str(reply.body["message"])  # says what to use instead
    assert token_states(world)[token.id] == ("valid", 0)
    world.assert_serves_legit()
    world.assert_unchanged(before)

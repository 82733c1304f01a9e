"""engine_agent.signer: the native signer and the one that runs oVirt's pki-enroll-request.sh.

The oVirt signer runs a real stand-in for oVirt's script (tests/standins/pki-enroll-request.sh)
that signs with the real ``openssl ca``, records its arguments and fails or hangs on demand.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from engine_agent import pki
from engine_agent.pki import create_ca, load_ca_cert
from engine_agent.signer import (
    Issued,
    NativeSigner,
    OvirtSigner,
    SignerError,
    default_signer_kind,
    make_signer,
)
from protocol.errors import BadRequest
from tests.support.pki import (
    CA_SUBJECT,
    ENGINE,
    NOW,
    PROXY,
    copy_root,
    make_csr,
    openssl_verify,
    rsa_key,
)
from tests.support.profile import assert_profile
from wsproxy_agent import commands
from wsproxy_agent.paths import HostPaths

REPO = Path(__file__).resolve().parents[2]
STANDIN = REPO / "tests" / "standins" / "pki-enroll-request.sh"

# A CSR that asks for everything the profile does not give.
GREEDY_EXTENSIONS = [
    (x509.BasicConstraints(ca=True, path_length=None), True),
    (
        x509.KeyUsage(
            digital_signature=True,
            content_commitment=True,
            key_encipherment=True,
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
            [x509.DNSName(PROXY), x509.DNSName("*.example.test"), x509.DNSName("other.test")]
        ),
        False,
    ),
    (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False),
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pristine")
    create_ca(HostPaths.under(root), ca_subject=CA_SUBJECT, engine_fqdn=ENGINE, now=NOW)
    return root


@pytest.fixture
def paths(pristine: Path, tmp_path: Path) -> HostPaths:
    return copy_root(pristine, tmp_path)


@pytest.fixture
def ovirt(paths: HostPaths) -> HostPaths:
    """The root with the stand-in installed where oVirt installs its script."""
    paths.pki_enroll_script.parent.mkdir(parents=True)
    shutil.copy(STANDIN, paths.pki_enroll_script)
    return paths


def calls(paths: HostPaths) -> list[list[str]]:
    log = Path(f"{paths.pki_enroll_script}.calls")
    return [line.split("\t") for line in log.read_text().splitlines()] if log.exists() else []


def parse(issued: Issued) -> x509.Certificate:
    cert = x509.load_pem_x509_certificate(issued.cert_pem.encode())
    assert issued.serial == format(cert.serial_number, "x")
    assert issued.not_after == cert.not_valid_after_utc
    return cert


# NativeSigner


def test_native_signer_issues_the_profile(paths: HostPaths) -> None:
    issued = NativeSigner(paths, lifetime_days=30, clock=lambda: NOW).sign(
        make_csr(rsa_key()), PROXY
    )
    cert = parse(issued)
    assert_profile(cert, load_ca_cert(paths), PROXY)
    assert cert.public_key() == rsa_key().public_key()
    assert cert.not_valid_before_utc == NOW - timedelta(days=1)
    assert issued.not_after == NOW + timedelta(days=30)
    assert issued.serial == issued.serial.lower() and not issued.serial.startswith("0")
    openssl_verify(paths, cert)


def test_native_signer_refuses_a_bad_csr_as_a_bad_request(paths: HostPaths) -> None:
    with pytest.raises(BadRequest):
        NativeSigner(paths).sign(b"not a csr", PROXY)


def test_native_signer_without_a_ca_is_a_signer_error(tmp_path: Path) -> None:
    with pytest.raises(SignerError, match="wsproxy-agent engine init"):
        NativeSigner(HostPaths.under(tmp_path)).sign(make_csr(rsa_key()), PROXY)


def test_native_signer_waits_for_the_lock_on_ca_pem(paths: HostPaths) -> None:
    csr = make_csr(rsa_key())
    results: list[Issued] = []
    with open(paths.ca_cert, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        worker = threading.Thread(
            target=lambda: results.append(NativeSigner(paths).sign(csr, PROXY))
        )
        worker.start()
        time.sleep(0.3)
        assert not results, "signed while ca.pem was locked"
    worker.join(timeout=10)
    assert len(results) == 1


def test_native_signer_gives_up_on_a_lock_held_too_long(paths: HostPaths) -> None:
    with open(paths.ca_cert, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        started = time.monotonic()
        with pytest.raises(SignerError, match=re.escape("stayed locked for 0.2 s")):
            NativeSigner(paths, lock_timeout=0.2).sign(make_csr(rsa_key()), PROXY)
        assert time.monotonic() - started < 2


def test_native_signer_reads_an_unchanged_ca_once(
    paths: HostPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[HostPaths] = []
    read = pki.load_ca

    def load_ca(p: HostPaths) -> pki.CertificateAuthority:
        reads.append(p)
        return read(p)

    monkeypatch.setattr(pki, "load_ca", load_ca)
    signer = NativeSigner(paths)
    serials = {signer.sign(make_csr(rsa_key()), PROXY).serial for _ in range(3)}
    assert len(serials) == 3 and reads == [paths]


def test_native_signer_signs_with_a_ca_renewed_since_its_last_signing(
    paths: HostPaths, tmp_path: Path
) -> None:
    signer = NativeSigner(paths)
    first = parse(signer.sign(make_csr(rsa_key()), PROXY))
    # As engine-setup renews a CA: the files written over in place, the daemon left running.
    renewed = HostPaths.under(tmp_path / "renewed")
    create_ca(renewed, ca_subject="/C=US/O=Renewed", engine_fqdn=ENGINE, now=NOW)
    shutil.copyfile(renewed.ca_key, paths.ca_key)
    shutil.copyfile(renewed.ca_cert, paths.ca_cert)
    second = parse(signer.sign(make_csr(rsa_key()), PROXY))
    assert first.issuer != second.issuer == load_ca_cert(paths).subject
    openssl_verify(paths, second)


SIGN_FIVE = """
import sys
from engine_agent.signer import NativeSigner
from wsproxy_agent.paths import HostPaths
signer = NativeSigner(HostPaths.under(sys.argv[1]))
csr = open(sys.argv[2], "rb").read()
for _ in range(5):
    print(signer.sign(csr, "proxy.example.test").serial, flush=True)
"""


def test_two_processes_sign_at_once(paths: HostPaths) -> None:
    csr = paths.root / "proxy.csr"
    csr.write_bytes(make_csr(rsa_key()))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SIGN_FIVE, str(paths.root), str(csr)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(2)
    ]
    serials = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        serials += out.split()
    assert len(serials) == 10 and len(set(serials)) == 10


# OvirtSigner


def test_ovirt_signer_runs_ovirts_script_with_its_options(ovirt: HostPaths) -> None:
    csr = make_csr(rsa_key())
    # oVirt's script reads the real clock (NOW was taken when the suite was collected).
    signed_at = datetime.now(UTC)
    issued = OvirtSigner(ovirt, lifetime_days=30).sign(csr, PROXY)
    # The stand-in flocks ca.pem for up to 20 s, as some oVirt versions do: had the signer
    # held that lock around the script, this would have failed after 20 s.
    assert calls(ovirt) == [
        [
            "--name=websocket-proxy-proxy.example.test",
            "--subject=/C=US/O=Example Test/CN=proxy.example.test",
            "--san=DNS:proxy.example.test",
            "--days=30",
        ]
    ]
    assert ovirt.ovirt_request(PROXY).read_bytes() == csr
    cert = parse(issued)
    assert cert == x509.load_pem_x509_certificate(ovirt.ovirt_issued_cert(PROXY).read_bytes())
    assert_profile(cert, load_ca_cert(ovirt), PROXY, ovirt=True)
    assert cert.public_key() == rsa_key().public_key()
    assert abs(cert.not_valid_after_utc - (signed_at + timedelta(days=30))) < timedelta(minutes=5)
    assert abs(cert.not_valid_before_utc - (signed_at - timedelta(days=1))) < timedelta(minutes=5)
    assert issued.serial == "1000"  # oVirt's CA database counts, in serial.txt
    openssl_verify(ovirt, cert)


def test_ovirt_signer_renews_into_the_same_file(ovirt: HostPaths) -> None:
    signer = OvirtSigner(ovirt)
    first = signer.sign(make_csr(rsa_key()), PROXY)
    second = signer.sign(make_csr(ec.generate_private_key(ec.SECP256R1())), PROXY)  # a renewal
    assert (first.serial, second.serial) == ("1000", "1001")


def test_ovirt_signer_signs_a_key_once(ovirt: HostPaths) -> None:
    # The engine killed while the script signed never recorded the certificate; the proxy
    # asks again with the same key and CSR, and gets what the script signed, not a second.
    signer = OvirtSigner(ovirt)
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()))
    first = signer.sign(csr, PROXY)
    assert signer.sign(csr, PROXY) == first
    assert len(calls(ovirt)) == 1


def test_ovirt_signer_signs_again_what_another_ca_signed(ovirt: HostPaths, tmp_path: Path) -> None:
    # Same key, but the CA was replaced since: that certificate would not chain.
    other = HostPaths.under(tmp_path / "other")
    create_ca(other, ca_subject=CA_SUBJECT, engine_fqdn=ENGINE, now=NOW)
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()))
    ovirt.ovirt_issued_cert(PROXY).write_text(NativeSigner(other).sign(csr, PROXY).cert_pem)
    cert = parse(OvirtSigner(ovirt).sign(csr, PROXY))
    assert len(calls(ovirt)) == 1
    openssl_verify(ovirt, cert)


@pytest.mark.parametrize("kind", ["native", "ovirt"])
def test_a_greedy_csr_gets_only_the_profile(ovirt: HostPaths, kind: str) -> None:
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), extensions=GREEDY_EXTENSIONS)
    cert = parse(make_signer(kind, ovirt).sign(csr, PROXY))
    assert_profile(cert, load_ca_cert(ovirt), PROXY, ovirt=kind == "ovirt")
    openssl_verify(ovirt, cert)


def test_ovirt_signer_reports_the_scripts_failure(ovirt: HostPaths) -> None:
    Path(f"{ovirt.pki_enroll_script}.fail").write_text("Cannot sign certificate: disk full\n")
    with pytest.raises(SignerError, match="exit code 1: Cannot sign certificate: disk full"):
        OvirtSigner(ovirt).sign(make_csr(rsa_key()), PROXY)
    assert not ovirt.ovirt_issued_cert(PROXY).exists()
    assert len(calls(ovirt)) == 1


def test_ovirt_signer_stops_a_hung_script(ovirt: HostPaths) -> None:
    Path(f"{ovirt.pki_enroll_script}.hang").touch()
    started = time.monotonic()
    with pytest.raises(SignerError, match="did not finish within 1 s"):
        OvirtSigner(ovirt, timeout=1).sign(make_csr(rsa_key()), PROXY)
    assert time.monotonic() - started < 5
    assert not ovirt.ovirt_issued_cert(PROXY).exists()


def test_ovirt_signer_refuses_a_certificate_for_another_key(
    ovirt: HostPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_run = commands.run

    def run_then_swap(argv: Sequence[str], **kwargs: Any) -> commands.Completed:
        done = real_run(argv, **kwargs)
        shutil.copy(ovirt.engine_cert, ovirt.ovirt_issued_cert(PROXY))  # valid, wrong key
        return done

    monkeypatch.setattr(commands, "run", run_then_swap)
    with pytest.raises(SignerError, match="certifies a different key than the request"):
        OvirtSigner(ovirt).sign(make_csr(rsa_key()), PROXY)


def test_ovirt_signer_refuses_a_certificate_for_another_name(
    ovirt: HostPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_run = commands.run

    def run_with_another_san(argv: Sequence[str], **kwargs: Any) -> commands.Completed:
        argv = [a.replace("--san=DNS:", "--san=DNS:other.") for a in argv]
        return real_run(argv, **kwargs)

    monkeypatch.setattr(commands, "run", run_with_another_san)
    with pytest.raises(
        SignerError, match=re.escape("does not name exactly DNS:proxy.example.test")
    ):
        OvirtSigner(ovirt).sign(make_csr(rsa_key()), PROXY)


def test_ovirt_signer_refuses_a_certificate_without_names(
    ovirt: HostPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_run = commands.run

    def run_then_drop_the_names(argv: Sequence[str], **kwargs: Any) -> commands.Completed:
        done = real_run(argv, **kwargs)
        issued_at = ovirt.ovirt_issued_cert(PROXY)
        issued = x509.load_pem_x509_certificate(issued_at.read_bytes())
        ca_key = serialization.load_pem_private_key(ovirt.ca_key.read_bytes(), password=None)
        assert isinstance(ca_key, rsa.RSAPrivateKey)
        bare = (
            x509.CertificateBuilder()
            .subject_name(issued.subject)
            .issuer_name(issued.issuer)
            .public_key(issued.public_key())
            .serial_number(issued.serial_number + 1)
            .not_valid_before(issued.not_valid_before_utc)
            .not_valid_after(issued.not_valid_after_utc)
            .sign(ca_key, hashes.SHA256())
        )
        issued_at.write_bytes(bare.public_bytes(serialization.Encoding.PEM))
        return done

    monkeypatch.setattr(commands, "run", run_then_drop_the_names)
    with pytest.raises(
        SignerError, match=re.escape("does not name exactly DNS:proxy.example.test")
    ):
        OvirtSigner(ovirt).sign(make_csr(rsa_key()), PROXY)


def test_ovirt_signer_refuses_a_stale_certificate(
    ovirt: HostPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    signer = OvirtSigner(ovirt)
    signer.sign(make_csr(rsa_key()), PROXY)
    # The script exits 0 but signs nothing: the old certificate must not pass.
    monkeypatch.setattr(commands, "run", lambda argv, **kwargs: None)
    with pytest.raises(SignerError, match="wrote no new certificate"):
        signer.sign(make_csr(ec.generate_private_key(ec.SECP256R1())), PROXY)


def test_ovirt_signer_without_the_script_is_a_signer_error(paths: HostPaths) -> None:
    with pytest.raises(SignerError, match="was not found"):
        OvirtSigner(paths).sign(make_csr(rsa_key()), PROXY)


def test_ovirt_signer_checks_the_name_before_touching_files(ovirt: HostPaths) -> None:
    with pytest.raises(BadRequest):
        OvirtSigner(ovirt).sign(make_csr(rsa_key()), "../../../tmp/x")
    assert not any(ovirt.requests_dir.iterdir())
    assert calls(ovirt) == []


# Choosing a signer


def test_default_signer_kind_wants_an_executable_script(paths: HostPaths) -> None:
    script = paths.pki_enroll_script
    assert default_signer_kind(paths) == "native"
    script.parent.mkdir(parents=True)
    script.mkdir()  # a directory is not a script
    assert default_signer_kind(paths) == "native"
    script.rmdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    assert default_signer_kind(paths) == "native"
    script.chmod(0o755)
    assert default_signer_kind(paths) == "ovirt"


def test_make_signer(paths: HostPaths) -> None:
    assert isinstance(make_signer("native", paths, 30), NativeSigner)
    ovirt = make_signer("ovirt", paths, 30)
    assert isinstance(ovirt, OvirtSigner) and ovirt.lifetime_days == 30
    with pytest.raises(SignerError, match="'ovirt' or 'native'"):
        make_signer("openssl", paths, 30)


def test_the_standin_finds_the_pki_of_its_own_root(ovirt: HostPaths, tmp_path: Path) -> None:
    # Run by a relative path from elsewhere: it must still sign in <root>/etc/pki/ovirt-engine.
    ovirt.ovirt_request(PROXY).write_bytes(make_csr(rsa_key()))
    script = os.path.relpath(ovirt.pki_enroll_script, tmp_path)
    done = subprocess.run(
        [script, "--name=websocket-proxy-" + PROXY, f"--san=DNS:{PROXY}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert ovirt.ovirt_issued_cert(PROXY).exists()

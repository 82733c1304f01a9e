"""Helpers shared by the engine's PKI tests (test_pki.py, test_signer.py, test_fuzz_csr.py):
the names and clock they use, CSRs made to order, a copied CA root, and `openssl verify`."""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

from wsproxy_agent.paths import HostPaths

# Real time, because `openssl verify` checks validity against the real clock.
NOW = datetime.now(UTC).replace(microsecond=0)
CA_SUBJECT = "/C=US/O=Example Test"
ENGINE = "engine.example.test"
PROXY = "proxy.example.test"
PEM = serialization.Encoding.PEM


@functools.cache
def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def make_csr(
    key: CertificateIssuerPrivateKeyTypes,
    cn: str = PROXY,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(PEM)


def copy_root(pristine: Path, tmp_path: Path) -> HostPaths:
    """A fresh root holding a copy of one CA: 3072-bit keys are too slow to make per test."""
    root = tmp_path / "root"
    shutil.copytree(pristine, root)
    return HostPaths.under(root)


def openssl(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *args], input=input, capture_output=True, text=True, timeout=30
    )


def openssl_verify(paths: HostPaths, cert: x509.Certificate) -> None:
    leaf = paths.root / "leaf.pem"
    leaf.write_bytes(cert.public_bytes(PEM))
    for purpose in ("sslserver", "sslclient"):
        done = openssl("verify", "-CAfile", str(paths.ca_cert), "-purpose", purpose, str(leaf))
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip().endswith(": OK")

"""Signing a proxy's CSR: natively with the CA key, or through oVirt's own script.

Both backends refuse a bad CSR with ``BadRequest`` (it is the requester's fault) and turn
everything else that goes wrong (unusable PKI, a failing script) into ``SignerError``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from engine_agent import pki
from wsproxy_agent import commands, flocks
from wsproxy_agent.errors import AgentError
from wsproxy_agent.files import write_atomic
from wsproxy_agent.paths import HostPaths

DEFAULT_LIFETIME_DAYS = 398
# oVirt's pki-enroll-request.sh waits 20 s for its lock (--timeout); wait as long.
LOCK_TIMEOUT = 20.0


@dataclass(frozen=True)
class Issued:
    cert_pem: str
    serial: str  # lowercase hex, no leading zeros
    not_before: datetime
    not_after: datetime

    @classmethod
    def of(cls, cert: x509.Certificate) -> Issued:
        return cls(
            cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
            serial=format(cert.serial_number, "x"),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
        )


class SignerError(AgentError):
    """Signing failed for a reason on the engine's side; ``sentence`` says what to do."""


class Signer(Protocol):
    kind: str

    def sign(self, csr_pem: bytes, fqdn: str) -> Issued: ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


class NativeSigner:
    """Signs with the CA key itself (a standalone CA, or oVirt's when its script is absent)."""

    kind = "native"

    def __init__(
        self,
        paths: HostPaths,
        lifetime_days: int = DEFAULT_LIFETIME_DAYS,
        clock: Callable[[], datetime] = _utc_now,
        lock_timeout: float = LOCK_TIMEOUT,
    ) -> None:
        self.paths = paths
        self.lifetime_days = lifetime_days
        self.clock = clock
        self.lock_timeout = lock_timeout
        self._loaded: tuple[tuple[int, ...], pki.CertificateAuthority] | None = None

    def sign(self, csr_pem: bytes, fqdn: str) -> Issued:
        csr = pki.check_csr(csr_pem, fqdn)
        try:
            # The lock oVirt's scripts take on ca.pem (in the versions that lock ca.pem), so
            # we never sign while engine-setup renews or replaces the CA. The CA is looked at
            # under the lock, every time, so a renewed CA is picked up without a restart.
            with _flock(self.paths.ca_cert, self.lock_timeout):
                ca = self._ca()
                cert = pki.issue_certificate(
                    ca, csr.public_key(), fqdn, now=self.clock(), lifetime_days=self.lifetime_days
                )
        except pki.PkiError as exc:
            raise SignerError(exc.sentence) from None
        return Issued.of(cert)

    def _ca(self) -> pki.CertificateAuthority:
        """The CA, read again only when ca.pem or its key changed on disk: reading checks
        the RSA key's primes, which takes longer than the rest of an enrollment together
        (0.2 to 0.3 s for a 3072-bit key)."""
        # Looked at before reading, so a change in between reads again next time.
        stamp = _stamp(self.paths.ca_cert) + _stamp(self.paths.ca_key)
        if self._loaded is None or self._loaded[0] != stamp:
            self._loaded = (stamp, pki.load_ca(self.paths))
        return self._loaded[1]


def _stamp(path: Path) -> tuple[int, ...]:
    """What changes whenever a file is replaced or written: the ctime cannot be set back."""
    try:
        st = os.stat(path)
    except OSError:
        return (-1,)  # load_ca says what is wrong with it
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class OvirtSigner:
    """Signs through oVirt's pki-enroll-request.sh, so its CA database stays the record.

    The script takes oVirt's CA lock itself (depending on the version, a flock on ca.pem or
    on /tmp/ovirt-engine-pki.v2.lock). We must not hold ca.pem's lock around it: the
    versions that lock ca.pem would wait for us until their --timeout and fail. Our own
    lock, on the requests directory, only keeps two of our signings from interleaving
    their request and certificate files.
    """

    kind = "ovirt"

    def __init__(
        self,
        paths: HostPaths,
        lifetime_days: int = DEFAULT_LIFETIME_DAYS,
        timeout: float = 60,
        lock_timeout: float = LOCK_TIMEOUT,
    ) -> None:
        self.paths = paths
        self.lifetime_days = lifetime_days
        self.timeout = timeout
        self.lock_timeout = lock_timeout

    def argv(self, fqdn: str, ca_subject: x509.Name) -> list[str]:
        return [
            str(self.paths.pki_enroll_script),
            f"--name=websocket-proxy-{fqdn}",
            f"--subject={pki.format_subject(pki.subject_for(ca_subject, fqdn))}",
            f"--san=DNS:{fqdn}",
            f"--days={self.lifetime_days}",
        ]

    def sign(self, csr_pem: bytes, fqdn: str) -> Issued:
        csr = pki.check_csr(csr_pem, fqdn)
        request, issued = self.paths.ovirt_request(fqdn), self.paths.ovirt_issued_cert(fqdn)
        try:
            ca_cert = pki.load_ca_cert(self.paths)
            argv = self.argv(fqdn, ca_cert.subject)
            with _flock(self.paths.requests_dir, self.lock_timeout):
                before = _read_or_none(issued)
                if _certifies_key_of(before, csr, ca_cert):
                    # Signed for this very request (a proxy makes a new key for each one) by
                    # a run that never recorded it: the engine died while the script signed.
                    # Hand that certificate out rather than have the CA issue a second.
                    return Issued.of(self._check_issued(before, None, issued, csr, fqdn))
                # The re-encoded CSR, so the script signs exactly what check_csr accepted
                # (no second PEM block or trailing bytes for openssl to read differently).
                write_atomic(
                    request,
                    csr.public_bytes(serialization.Encoding.PEM),
                    mode=0o644,
                    keep_backup=False,
                )
                try:
                    commands.run(argv, timeout=self.timeout)
                except commands.CommandFailed as exc:
                    raise SignerError(exc.sentence) from None
                after = _read_or_none(issued)
        except pki.PkiError as exc:
            raise SignerError(exc.sentence) from None
        return Issued.of(self._check_issued(after, before, issued, csr, fqdn))

    def _check_issued(
        self,
        data: bytes | None,
        before: bytes | None,
        path: Path,
        csr: x509.CertificateSigningRequest,
        fqdn: str,
    ) -> x509.Certificate:
        script = self.paths.pki_enroll_script
        # A signing always makes a new serial, so unchanged bytes mean nothing was signed.
        if data is None or data == before:
            raise SignerError(f"{script} reported success but wrote no new certificate at {path}.")
        try:
            cert = x509.load_pem_x509_certificate(data)
        except ValueError:
            raise SignerError(f"{script} wrote {path}, which is not a PEM certificate.") from None
        if pki.spki(cert.public_key()) != pki.spki(csr.public_key()):
            raise SignerError(
                f"{path} certifies a different key than the request; another signing may have "
                "raced ours, so retry, and check the engine's PKI if it happens again."
            )
        try:
            names = list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            names = []  # cryptography 51 refuses to build an empty SubjectAlternativeName
        if names != [x509.DNSName(fqdn)]:
            raise SignerError(
                f"{path} does not name exactly DNS:{fqdn}, so the proxy would refuse it; check "
                f"what {script} does with --san."
            )
        return cert


def make_signer(kind: str, paths: HostPaths, lifetime_days: int = DEFAULT_LIFETIME_DAYS) -> Signer:
    if kind == NativeSigner.kind:
        return NativeSigner(paths, lifetime_days)
    if kind == OvirtSigner.kind:
        return OvirtSigner(paths, lifetime_days)
    raise SignerError(f"The signer {kind!r} is unknown; set signer to 'ovirt' or 'native'.")


def default_signer_kind(paths: HostPaths) -> str:
    """'ovirt' where oVirt's script can be run, so its CA database stays complete."""
    script = paths.pki_enroll_script
    return (
        OvirtSigner.kind if script.is_file() and os.access(script, os.X_OK) else NativeSigner.kind
    )


@contextlib.contextmanager
def _flock(path: Path, timeout: float) -> Iterator[None]:
    """An exclusive flock on ``path`` (a file or a directory), given up after ``timeout``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise pki.PkiError(
            f"Cannot open {path} to lock it: {exc.strerror}; check the engine's PKI with "
            "'wsproxy-agent engine init'."
        ) from None
    try:
        if not flocks.take_exclusive(fd, timeout):
            raise SignerError(
                f"{path} stayed locked for {timeout:g} s (another signing or "
                "engine-setup is running); try again when it has finished."
            )
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _certifies_key_of(
    data: bytes | None, csr: x509.CertificateSigningRequest, ca_cert: x509.Certificate
) -> bool:
    """Whether ``data`` is a certificate the CA issued for the CSR's key, not yet expired."""
    if data is None:
        return False
    try:
        cert = x509.load_pem_x509_certificate(data)
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return (
        pki.spki(cert.public_key()) == pki.spki(csr.public_key())
        and cert.not_valid_after_utc > _utc_now()
    )


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None

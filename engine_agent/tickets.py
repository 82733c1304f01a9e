"""Console tickets signed as the engine signs them, from the engine's own PKI files.

oVirt signs console tickets with the key in ``keys/engine.p12``; proxies check them against
``certs/engine.cer`` (their ``CERT_FOR_DATA_VERIFICATION``). ``engine ticket`` uses the same
pair, so a proxy can be tried without a running engine or web UI.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from engine_agent import pki
from engine_agent.pki import ENGINE_P12_PASSWORD, PkiError
from protocol.ticket import issue_ticket
from wsproxy_agent.paths import HostPaths

SALT_BYTES = 8  # as oVirt's TicketEncoder


@dataclass(frozen=True)
class TicketSigner:
    key: rsa.RSAPrivateKey
    cert_pem: str

    def issue(
        self,
        host: str,
        port: int,
        *,
        ttl_seconds: int,
        ssl_target: bool = False,
        path: str | None = None,
        token: str | None = None,
    ) -> str:
        return issue_ticket(
            self.key,
            self.cert_pem,
            host,
            port,
            now=datetime.now(UTC),
            ttl_seconds=ttl_seconds,
            ssl_target=ssl_target,
            salt=secrets.token_bytes(SALT_BYTES),
            path=path,
            token=token,
        )


def load_signer(paths: HostPaths) -> TicketSigner:
    """The engine's key and certificate; refuses a key that is not the certificate's."""
    cert = pki.load_engine_cert(paths)
    key = _engine_key(paths)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise PkiError(
            f"The engine key is not RSA; oVirt's proxies verify console tickets with RSA-PSS "
            f"only. Check {paths.engine_p12}."
        )
    # Signed with another key, every ticket would be refused by proxies that trust the
    # certificate; better to say so here than to send an administrator chasing proxies.
    if pki.spki(key.public_key()) != pki.spki(cert.public_key()):
        raise PkiError(
            f"The engine key does not belong to {paths.engine_cert}; proxies would refuse "
            "every ticket it signs. Restore the matching pair from the engine backup."
        )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return TicketSigner(key, pem)


def _engine_key(paths: HostPaths) -> PrivateKeyTypes:
    # oVirt keeps the key only in engine.p12; 'engine init --create-ca' writes a PEM too.
    if paths.engine_p12.exists():
        raw = _read(paths.engine_p12)
        try:
            key, _, _ = pkcs12.load_key_and_certificates(raw, ENGINE_P12_PASSWORD)
        except ValueError:
            raise PkiError(
                f"{paths.engine_p12} cannot be opened with oVirt's store password, or is "
                "damaged; restore it from the engine backup."
            ) from None
        if key is None:
            raise PkiError(f"{paths.engine_p12} holds no private key; restore it from backup.")
        return key
    if not paths.engine_key.exists():
        raise PkiError(
            f"The engine key is missing (neither {paths.engine_p12} nor {paths.engine_key}); "
            "run 'wsproxy-agent engine init' on the engine host (with --create-ca when there "
            "is no oVirt CA)."
        )
    try:
        return serialization.load_pem_private_key(_read(paths.engine_key), password=None)
    except (ValueError, TypeError):  # TypeError: the key is encrypted
        raise PkiError(
            f"{paths.engine_key} is not an unencrypted PEM private key; restore it from backup."
        ) from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise PkiError(f"Cannot read {path}: {e.strerror}; run this as root.") from None

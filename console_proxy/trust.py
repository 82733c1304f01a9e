"""The key console tickets must be signed with: CERT_FOR_DATA_VERIFICATION's, and no other.

Read again when the file changes (the proxy agent rewrites it on every join and renewal,
and the engine certificate may have been renewed meanwhile).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from console_proxy.reloading import Reloading
from wsproxy_agent.errors import AgentError


class TrustError(AgentError):
    """CERT_FOR_DATA_VERIFICATION cannot be used to check tickets."""


class TicketKey:
    def __init__(self, path: Path, log: Any) -> None:
        self.path = path
        self._current = Reloading("ticket_key", (path,), self._load, _describe, log)

    def public_key(self) -> rsa.RSAPublicKey:
        return self._current.get()[0]

    def reload(self) -> None:
        self._current.reload()

    def _load(self) -> tuple[rsa.RSAPublicKey, x509.Certificate]:
        try:
            cert = x509.load_pem_x509_certificate(self.path.read_bytes())
        except FileNotFoundError:
            raise TrustError(
                f"{self.path} (CERT_FOR_DATA_VERIFICATION) does not exist; "
                "'wsproxy-agent proxy join' installs the engine certificate there."
            ) from None
        except (OSError, ValueError) as exc:
            raise TrustError(
                f"{self.path} (CERT_FOR_DATA_VERIFICATION) is not a PEM certificate: {exc}"
            ) from None
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise TrustError(
                f"{self.path} (CERT_FOR_DATA_VERIFICATION) holds no RSA key; oVirt engines "
                "sign console tickets with RSA."
            )
        return key, cert


def _describe(loaded: tuple[rsa.RSAPublicKey, x509.Certificate]) -> dict[str, Any]:
    cert = loaded[1]
    return {"subject": cert.subject.rfc4514_string(), "serial": format(cert.serial_number, "x")}

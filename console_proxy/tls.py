"""TLS: the server context from SSL_* settings, and the client context for ``ssl_target``.

Each new connection takes the context ``ServerTls.context()`` returns at that moment; an open
connection keeps the one it was made with, so installing a renewed certificate drops no
console.
"""

from __future__ import annotations

import ssl
from typing import Any

from cryptography import x509

from console_proxy.reloading import Reloading
from console_proxy.settings import ServeSettings
from wsproxy_agent.errors import AgentError

_MIN_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


class TlsError(AgentError):
    """The certificate, key or TLS settings cannot be used."""


class ServerTls:
    def __init__(self, settings: ServeSettings, log: Any) -> None:
        assert settings.ssl_certificate is not None
        self.settings = settings
        self.cert = settings.ssl_certificate
        # oVirt (websockify) reads the key from the certificate file when SSL_KEY is empty.
        self.key = settings.ssl_key or settings.ssl_certificate
        self._current = Reloading(
            "tls_certificate", (self.cert, self.key), self._load, _describe, log
        )

    def context(self) -> ssl.SSLContext:
        return self._current.get()[0]

    def reload(self) -> None:
        self._current.reload()

    def _load(self) -> tuple[ssl.SSLContext, x509.Certificate]:
        # A fresh context each time: loading a pair into a context in use would leave it
        # half-changed when the new key does not match.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = _MIN_VERSIONS[self.settings.ssl_min_version]
        if self.settings.ssl_ciphers:
            try:
                context.set_ciphers(self.settings.ssl_ciphers)
            except ssl.SSLError:
                raise TlsError(
                    f"SSL_CIPHERS {self.settings.ssl_ciphers!r} selects no cipher OpenSSL "
                    "knows; see 'openssl ciphers'."
                ) from None
        for path in (self.cert, self.key):
            if not path.is_file():
                raise TlsError(f"{path} (SSL_CERTIFICATE or SSL_KEY) does not exist.")
        try:
            cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
            context.load_cert_chain(self.cert, self.key)
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise TlsError(
                f"Cannot use the certificate {self.cert} with the key {self.key}: "
                f"{_why(exc)}; both must be PEM and the key must belong to the certificate."
            ) from None
        return context, cert


def _describe(loaded: tuple[ssl.SSLContext, x509.Certificate]) -> dict[str, Any]:
    cert = loaded[1]
    return {
        "serial": format(cert.serial_number, "x"),
        "subject": cert.subject.rfc4514_string(),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


def _why(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


def target_context() -> ssl.SSLContext:
    """For ``ssl_target`` consoles: TLS to the VM's display, without checking its certificate.

    As oVirt's proxy: it hands ``ssl_target`` to websockify, which wraps the target socket
    in TLS from the first byte with the ssl module's defaults, verifying nothing. (Later
    oVirt versions instead answer a VNC server's VeNCrypt offer with TLS inside RFB, also
    unverified; that is not done here.) The ticket names only host and port and the engine
    hands the proxy no CA for the hosts' display certificates, so there is nothing to check
    against: the ticket's signature is what vouches for the target.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context

"""Harness: ``engine_agent.pki.check_csr``, the engine's reading of a proxy's CSR.

The first byte picks what the rest is: PEM text as sent, DER wrapped in PEM, or a fuzzed
CertificationRequestInfo that the harness signs with a fixed key (so mutations get past the
signature check). Allowed outcomes: a CSR, or BadRequest. A CSR that passes must also get
through what the engine does next with it: list what it asked for, and be signed.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["engine_agent.pki", "protocol", "fuzz.certs"]):
    from engine_agent import pki
    from fuzz import certs
    from protocol.errors import BadRequest
    from tests.support import der

PEM_TEXT, DER, SIGNED_INFO = range(3)
LABEL = "CERTIFICATE REQUEST"
REQUEST_KEY = certs.PROXY_KEY


def request_bytes(mode: int, rest: bytes) -> bytes:
    if mode == DER:
        return der.pem(rest, LABEL)
    if mode == SIGNED_INFO:
        return der.pem(der.signed(rest, REQUEST_KEY), LABEL)
    return rest


def TestOneInput(data: bytes) -> None:
    mode = data[0] % 3 if data else PEM_TEXT
    try:
        csr = pki.check_csr(request_bytes(mode, data[1:]), certs.FQDN)
    except BadRequest as exc:
        assert exc.sentence, repr(exc)
        return
    ignored = pki.ignored_requests(csr, certs.FQDN)
    assert all(isinstance(line, str) for line in ignored), ignored
    cert = pki.issue_certificate(
        certs.CA, csr.public_key(), certs.FQDN, now=certs.NOW, lifetime_days=398
    )
    assert cert.public_key() == csr.public_key()


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()

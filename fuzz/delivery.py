"""Harness: ``proxy_agent.verify.check_delivery``, the proxy's reading of the engine's reply.

The first byte picks what the rest is:

* ``BUNDLE``: three arbitrary byte strings as the proxy, CA and engine certificate PEM;
* ``PROXY_TBS`` / ``ENGINE_TBS`` / ``CA_TBS``: a fuzzed TBSCertificate that the harness
  signs with the CA key and puts in that place, the other two being the good ones, so that
  mutations get past the signature checks to the checks behind them;
* ``DER``: the rest as DER, wrapped in PEM, as the proxy certificate.

Allowed outcomes: a Delivery, or DeliveryRefused.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["proxy_agent.verify", "fuzz.reader"]):
    from cryptography.hazmat.primitives.serialization import Encoding

    from fuzz import certs
    from fuzz.reader import Reader
    from proxy_agent.verify import Delivery, DeliveryRefused, check_delivery
    from tests.support import der

BUNDLE, PROXY_TBS, ENGINE_TBS, CA_TBS, DER = range(5)
LABEL = "CERTIFICATE"
GOOD = [c.public_bytes(Encoding.PEM) for c in (certs.PROXY_CERT, certs.CA.cert, certs.ENGINE_CERT)]
PLACE = {PROXY_TBS: 0, CA_TBS: 1, ENGINE_TBS: 2, DER: 0}


def bundle(mode: int, r: Reader) -> list[bytes]:
    if mode == BUNDLE:
        return [r.take(r.byte() * 8), r.take(r.byte() * 8), r.rest()]
    rest = r.rest()
    cert = rest if mode == DER else der.signed(rest, certs.CA_KEY)
    parts = list(GOOD)
    parts[PLACE[mode]] = der.pem(cert, LABEL)
    return parts


def TestOneInput(data: bytes) -> None:
    r = Reader(data)
    cert, ca, engine = bundle(r.byte() % 5, r)
    try:
        delivery = check_delivery(cert, ca, engine, certs.PROXY_KEY, certs.FQDN, certs.NOW)
    except DeliveryRefused as exc:
        assert exc.sentence, repr(exc)
        return
    assert isinstance(delivery, Delivery)
    assert [s.lower() for s in delivery.san] == [f"dns:{certs.FQDN}"], delivery.san


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()

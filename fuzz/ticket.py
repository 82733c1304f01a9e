"""Harness: ``protocol.ticket.verify_ticket``, the console ticket from a browser's URL path.

Allowed outcomes: a ConsoleTarget (whose port is a port, whose host is printable text, and
which a fresh ticket carries unchanged) or a TicketError with a sentence. The mode byte:

- RAW: the rest is the ticket text, as a browser would send it.
- DATA: the rest is the ``data`` value, signed by the trusted key with a valid window, so the
  fuzzer reaches the target parsing behind the signature.
- FIELDS: the rest is the ticket's JSON; the harness signs whatever string fields its
  ``signedFields`` names, so the fuzzer reaches the signedFields rules and the dates.
"""

from __future__ import annotations

import base64
import json
import sys
from datetime import UTC, datetime
from typing import Any

import atheris

with atheris.instrument_imports(include=["protocol"]):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    from protocol.ticket import TicketError, issue_ticket, verify_ticket

RAW, DATA, FIELDS = 0, 1, 2
NOW = datetime(2030, 1, 1, tzinfo=UTC)
VALID_FROM, VALID_TO = "20291231235900", "20300101000100"


def _fixed_key() -> rsa.RSAPrivateKey:
    """An RSA key from two Mersenne primes: the same on every run, so a saved input that
    carries a signature stays validly signed. Worthless as a key, cheap to sign with."""
    p, q, e = 2**521 - 1, 2**607 - 1, 65537
    d = pow(e, -1, (p - 1) * (q - 1))
    public = rsa.RSAPublicNumbers(e, p * q)
    dmp1, dmq1, iqmp = rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q)
    return rsa.RSAPrivateNumbers(p, q, d, dmp1, dmq1, iqmp, public).private_key()


KEY = _fixed_key()
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)


def sign(fields: dict[str, Any]) -> str:
    names = str(fields.get("signedFields", "")).split(",")
    message = "".join(value for name in names if isinstance(value := fields.get(name.strip()), str))
    signature = KEY.sign(message.encode("utf-8", "surrogatepass"), PSS, hashes.SHA256())
    fields["v2_signature"] = base64.b64encode(signature).decode()
    return base64.b64encode(json.dumps(fields).encode()).decode()


def with_data(data: str) -> str:
    fields = {"salt": "AAECAwQFBgc=", "validFrom": VALID_FROM, "validTo": VALID_TO, "data": data}
    return sign({**fields, "signedFields": "salt,validFrom,validTo,data"})


def with_fields(text: str) -> str | None:
    try:
        fields = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return sign(fields) if isinstance(fields, dict) else None


def check(ticket: str) -> None:
    try:
        target = verify_ticket(ticket, KEY.public_key(), now=NOW)
    except TicketError as exc:
        assert exc.sentence and exc.reason, repr(exc)
        return
    assert 1 <= target.port <= 65535, target
    assert target.host and target.host.isprintable(), target
    again = issue_ticket(
        KEY,
        "",
        target.host,
        target.port,
        now=NOW,
        ssl_target=target.ssl_target,
        salt=b"\x00" * 8,
        path=target.path,
        token=target.token,
    )
    assert verify_ticket(again, KEY.public_key(), now=NOW) == target, target


def TestOneInput(data: bytes) -> None:
    mode = data[0] % 3 if data else RAW
    text = data[1:].decode("utf-8", "surrogateescape")
    if mode == DATA:
        check(with_data(text))
    elif mode == FIELDS:
        ticket = with_fields(text)
        if ticket is not None:
            check(ticket)
    else:
        check(text)


if __name__ == "__main__":
    atheris.enabled_hooks.add("RegEx")
    atheris.enabled_hooks.add("str")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()

"""oVirt console tickets: issue one as the engine does, verify one as the proxy must.

The browser opens ``wss://<proxy>:<port>/<ticket>``. The ticket (DESIGN §6) is base64 of a
JSON object whose string fields ``salt``, ``validFrom``, ``validTo`` (UTC ``%Y%m%d%H%M%S``)
and ``data`` (URL-encoded JSON: ``host``, ``port`` as a string, ``ssl_target``, optional
``path`` and ``token``) are signed: ``v2_signature`` is RSASSA-PSS (SHA-256, MGF1-SHA-256,
maximum salt length) over the UTF-8 values of the fields named in ``signedFields``,
concatenated in that order. This matches oVirt's ``TicketEncoder`` (Java) and
``ovirt_engine.ticket`` (Python).

Where oVirt's decoder is laxer we are not: only ``v2_signature`` counts (the SHA-1
``signature`` beside it is ignored), the key is the one handed in (the proxy's
``CERT_FOR_DATA_VERIFICATION``), never the ``certificate`` inside the ticket, and every
field we act on must be signed. Pure: no files, no clock; ``now`` is handed in.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import quote, unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from protocol.errors import ErrorCode, ProtocolError

# A real ticket, with the engine certificate's PEM inside, is 3 to 5 KiB even percent-encoded.
MAX_TICKET_BYTES = 16 * 1024

DATE_FORMAT = "%Y%m%d%H%M%S"
_DATE = re.compile(r"[0-9]{14}")
_PORT = re.compile(r"[0-9]{1,5}")
_MAX_HOST = 255

# Names a signature may cover. Signed values are concatenated without separators, so a field
# name the attacker invents (its value is theirs, since the JSON around the signed values is
# not signed) could take bytes from a neighbour, e.g. the head of 'data'. Known names with
# strict formats leave no such room. 'digest' is what oVirt's engine signs beside the others.
_SIGNABLE = frozenset({"salt", "digest", "validFrom", "validTo", "data"})
# What the proxy acts on: an unsigned one of these could be rewritten on the way (a longer
# life, another VM's console), so a ticket that leaves one out is refused.
_MUST_SIGN = ("validFrom", "validTo", "data")

# encodeURI's set, which oVirt's web UI uses (GWT URL.encode) on the data JSON.
_ENCODE_URI_SAFE = "!*'();,/?:@&=+$#"

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)

_AGAIN = "open the console again from the web UI to get a fresh one."


class TicketReason(StrEnum):
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    BAD_SIGNATURE = "bad_signature"
    MISSING_FIELD = "missing_field"
    NOT_BASE64 = "not_base64"
    NOT_JSON = "not_json"
    OVERSIZED = "oversized"
    BAD_FIELD = "bad_field"
    UNSIGNED_FIELDS = "unsigned_fields"


class TicketError(ProtocolError):
    """A console ticket was refused: ``reason`` for logs and close frames, ``sentence`` for people."""

    code = ErrorCode.UNAUTHORIZED

    def __init__(self, reason: TicketReason, sentence: str) -> None:
        super().__init__(sentence)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.sentence}"


@dataclass(frozen=True)
class ConsoleTarget:
    host: str
    port: int
    ssl_target: bool
    path: str | None
    token: str | None


def issue_ticket(
    key: rsa.RSAPrivateKey,
    cert_pem: str,
    host: str,
    port: int,
    *,
    now: datetime,
    ttl_seconds: int = 120,
    ssl_target: bool = False,
    salt: bytes,
    path: str | None = None,
    token: str | None = None,
) -> str:
    """A ticket for ``host:port`` valid from ``now`` for ``ttl_seconds``, as the engine signs it.

    The result is what goes after ``wss://<proxy>:<port>/``. ``salt`` is the caller's 8
    random bytes (this module draws no randomness, so tests can repeat a ticket).
    """
    _check_target(ConsoleTarget(host, port, ssl_target, path, token))
    if ttl_seconds <= 0:
        raise _bad(f"A console ticket must live at least one second, not {ttl_seconds}.")
    start = _utc(now)
    try:
        end = start + timedelta(seconds=ttl_seconds)
    except OverflowError:
        raise _bad(f"A console ticket cannot live {ttl_seconds} seconds.") from None
    data = {"host": host, "port": str(port), "ssl_target": ssl_target, "path": path, "token": token}
    signed = {
        "salt": base64.b64encode(salt).decode("ascii"),
        "validFrom": start.strftime(DATE_FORMAT),
        "validTo": end.strftime(DATE_FORMAT),
        "data": quote(json.dumps(data, separators=(",", ":")), safe=_ENCODE_URI_SAFE),
    }
    signature = key.sign(_signed_bytes(signed, signed), _PSS, hashes.SHA256())
    ticket = {
        **signed,
        "signedFields": ",".join(signed),
        "v2_signature": base64.b64encode(signature).decode("ascii"),
        "certificate": cert_pem,
    }
    return base64.b64encode(json.dumps(ticket, separators=(",", ":")).encode()).decode("ascii")


def verify_ticket(ticket: str, trusted: rsa.RSAPublicKey, *, now: datetime) -> ConsoleTarget:
    """The console target of ``ticket`` if ``trusted`` signed it and it is valid at ``now``.

    ``ticket`` is the URL path without its leading '/', percent-encoded or not. Every
    refusal is a :class:`TicketError`.
    """
    fields = _decode(ticket)
    signed_names = _signed_names(fields)
    _check_signature(fields, signed_names, trusted)
    valid_from = _date(fields, "validFrom")
    valid_to = _date(fields, "validTo")
    if valid_from > valid_to:
        raise _bad(f"The console ticket ends before it starts; {_AGAIN}")
    moment = _utc(now)
    if moment < valid_from:
        raise TicketError(
            TicketReason.NOT_YET_VALID,
            f"The console ticket is valid only from {_show(valid_from)}, but this host's clock "
            f"says {_show(moment)}; set both the engine's and this proxy's clock by NTP.",
        )
    if moment > valid_to:
        raise TicketError(
            TicketReason.EXPIRED, f"The console ticket expired at {_show(valid_to)}; {_AGAIN}"
        )
    return _target(fields["data"])


def _decode(ticket: str) -> dict[str, Any]:
    if not ticket:
        raise TicketError(
            TicketReason.MISSING_FIELD,
            "The console URL has no ticket after the port; open the console from the web UI, "
            "which adds one.",
        )
    if len(ticket) > MAX_TICKET_BYTES:
        raise TicketError(
            TicketReason.OVERSIZED,
            f"The console ticket is {len(ticket)} characters, more than the {MAX_TICKET_BYTES} "
            f"a real one needs; {_AGAIN}",
        )
    try:
        # Browsers may percent-encode the path; base64 has no '%', so this is a no-op otherwise.
        # Not unquote_plus: '+' is a base64 character.
        text = unquote(ticket, errors="strict") if "%" in ticket else ticket
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeError, binascii.Error, ValueError):
        raise TicketError(
            TicketReason.NOT_BASE64,
            f"The console ticket in the URL is not base64; {_AGAIN}",
        ) from None
    decoded = _json(raw, "The console ticket does not hold a JSON object")
    if not isinstance(decoded, dict):
        raise TicketError(
            TicketReason.NOT_JSON, f"The console ticket does not hold a JSON object; {_AGAIN}"
        )
    return decoded


def _json(raw: bytes | str, what: str) -> Any:
    try:
        return json.loads(raw, object_pairs_hook=_no_repeats)
    except _RepeatedKey as repeated:
        raise TicketError(
            TicketReason.NOT_JSON, f"{what}: it names '{repeated.key}' twice; {_AGAIN}"
        ) from None
    # RecursionError: deeply nested arrays are valid JSON that the parser cannot finish.
    except (ValueError, RecursionError):
        raise TicketError(TicketReason.NOT_JSON, f"{what}; {_AGAIN}") from None


class _RepeatedKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_repeats(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    # With a key twice, parsers disagree on which value counts; we refuse to guess.
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise _RepeatedKey(name[:40])
        result[name] = value
    return result


def _signed_names(fields: dict[str, Any]) -> list[str]:
    listed = _string(fields, "signedFields")
    names = [name.strip() for name in listed.split(",")]
    unknown = [name for name in names if name not in _SIGNABLE]
    if unknown:
        raise _bad(
            f"The console ticket's signature covers '{unknown[0][:40]}', which no oVirt engine "
            f"signs; {_AGAIN}"
        )
    if len(set(names)) != len(names):
        raise _bad(f"The console ticket's signedFields names a field twice; {_AGAIN}")
    unsigned = [name for name in _MUST_SIGN if name not in names]
    if unsigned:
        raise TicketError(
            TicketReason.UNSIGNED_FIELDS,
            f"The console ticket's signature does not cover {', '.join(unsigned)}, which could "
            f"have been changed on the way; {_AGAIN}",
        )
    return names


def _check_signature(fields: dict[str, Any], names: list[str], trusted: rsa.RSAPublicKey) -> None:
    encoded = _string(
        fields,
        "v2_signature",
        missing="The console ticket has no v2_signature (RSA-PSS); the engine must be "
        "oVirt 4.4 or later, older SHA-1 signatures are not accepted.",
    )
    try:
        signature = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (UnicodeError, binascii.Error, ValueError):
        raise TicketError(
            TicketReason.BAD_SIGNATURE, f"The console ticket's signature is damaged; {_AGAIN}"
        ) from None
    message = _signed_bytes(fields, names)
    try:
        trusted.verify(signature, message, _PSS, hashes.SHA256())
    except InvalidSignature:
        raise TicketError(
            TicketReason.BAD_SIGNATURE,
            "The console ticket is not signed by the engine certificate in "
            "CERT_FOR_DATA_VERIFICATION; check that file holds the certificate of the engine "
            "the web UI belongs to.",
        ) from None


def _signed_bytes(fields: dict[str, Any], names: Iterable[str]) -> bytes:
    return b"".join(_string(fields, name).encode("utf-8", "surrogatepass") for name in names)


def _string(fields: dict[str, Any], name: str, *, missing: str | None = None) -> str:
    if name not in fields:
        raise TicketError(
            TicketReason.MISSING_FIELD,
            missing or f"The console ticket has no '{name}' field; {_AGAIN}",
        )
    value = fields[name]
    if not isinstance(value, str):
        raise _bad(f"The console ticket's '{name}' is not a string; {_AGAIN}")
    return value


def _date(fields: dict[str, Any], name: str) -> datetime:
    text = fields[name]  # signed, hence present and a string
    # strptime alone takes '2026111' and other short forms; a signed value has 14 digits.
    if not _DATE.fullmatch(text):
        raise _bad(f"The console ticket's {name} is not a date as YYYYmmddHHMMSS; {_AGAIN}")
    try:
        return datetime.strptime(text, DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise _bad(f"The console ticket's {name} is not a real date; {_AGAIN}") from None


def _target(encoded: str) -> ConsoleTarget:
    data = _json(unquote(encoded), "The console ticket's data is not URL-encoded JSON")
    if not isinstance(data, dict):
        raise _bad(f"The console ticket's data is not a JSON object; {_AGAIN}")
    for name in ("host", "port", "ssl_target"):
        if name not in data:
            raise TicketError(
                TicketReason.MISSING_FIELD,
                f"The console ticket's data has no '{name}'; {_AGAIN}",
            )
    port = data["port"]
    if not (isinstance(port, str) and _PORT.fullmatch(port)):
        raise _bad(f"The console ticket's port is not a port number; {_AGAIN}")
    target = ConsoleTarget(
        host=data["host"],
        port=int(port),
        ssl_target=data["ssl_target"],
        path=data.get("path"),
        token=data.get("token"),
    )
    _check_target(target)
    return target


def _check_target(target: ConsoleTarget) -> None:
    host = target.host
    # The proxy hands the host to the resolver or connects to it: a name or an address,
    # ASCII as oVirt sends it, never anything a log line or a lookup would misread.
    if not (
        isinstance(host, str)
        and 0 < len(host) <= _MAX_HOST
        and host.isascii()
        and host.isprintable()
        and " " not in host
    ):
        raise _bad(
            "The console host must be a host name or IP address in ASCII, without spaces or "
            "control characters."
        )
    if isinstance(target.port, bool) or not 1 <= target.port <= 65535:
        raise _bad(f"The console port must be between 1 and 65535, not {target.port}.")
    if not isinstance(target.ssl_target, bool):
        raise _bad("The console ticket's ssl_target must be true or false.")
    for name, value in (("path", target.path), ("token", target.token)):
        if value is not None and not (isinstance(value, str) and value.isprintable()):
            raise _bad(f"The console {name} must be text without control characters.")


def _bad(sentence: str) -> TicketError:
    return TicketError(TicketReason.BAD_FIELD, sentence)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return moment.astimezone(UTC)


def _show(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")

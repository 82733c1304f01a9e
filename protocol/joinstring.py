"""The join string: everything a proxy needs to find and trust the engine, on one line.

    wsproxy://<token id>.<token secret>@<host>:<port>/?curve=<key>&pin=<key>[&port=<n>]

``curve`` is the engine's CurveZMQ public key and ``pin`` its Ed25519 identity public key,
both base64url without padding, so the string survives a shell, a chat window and a URL
parser. The proxy refuses any other engine during the Curve handshake and verifies every
reply against the pinned identity key. The optional ``port`` is the websocket proxy port
the token was made for. Without a token (the Salt-style path) there is no ``token@`` part.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

from protocol import identity, tokens
from protocol.errors import BadRequest

SCHEME = "wsproxy"
MAX_LENGTH = 1024
_KEY_BYTES = 32


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def unb64(text: str, what: str) -> bytes:
    """A 32-byte key from base64url; a damaged one is refused with a sentence."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != _KEY_BYTES:
        raise BadRequest(f"The join string's {what} is damaged; copy the whole string again.")
    return raw


def format_engine_key(curve_key: bytes, identity_key: bytes) -> str:
    """The engine's two public keys as one pasteable value, for ``proxy join --engine-key``."""
    return f"{b64(curve_key)}.{b64(identity_key)}"


def parse_engine_key(text: str) -> tuple[bytes, bytes]:
    curve, _, ident = text.strip().partition(".")
    return unb64(curve, "engine key"), unb64(ident, "engine key")


@dataclass(frozen=True)
class JoinString:
    host: str
    port: int
    curve_key: bytes
    pin: bytes
    token: tokens.Token | None = None
    proxy_port: int | None = None

    @property
    def fingerprint(self) -> str:
        return identity.fingerprint(self.pin)

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        user = f"{self.token}@" if self.token else ""
        fields = {"curve": b64(self.curve_key), "pin": b64(self.pin)}
        if self.proxy_port is not None:
            fields["port"] = str(self.proxy_port)
        query = urlencode(fields)
        return f"{SCHEME}://{user}{self.address}/?{query}"


def parse(text: str) -> JoinString:
    text = text.strip()
    if len(text) > MAX_LENGTH:
        raise BadRequest("The join string is far too long; copy it again from 'token create'.")
    try:
        url = urlsplit(text)
        port = url.port
    except ValueError:
        raise BadRequest(
            "The join string is not in the form wsproxy://...; copy it again."
        ) from None
    if url.scheme != SCHEME or not url.hostname:
        raise BadRequest(f"A join string starts with {SCHEME}://; copy the whole line again.")
    if port == 0:
        raise BadRequest("The join string's engine port is 0; copy the whole string again.")
    query = parse_qs(url.query, strict_parsing=False)
    curve = query.get("curve", [""])[0]
    pin = query.get("pin", [""])[0]
    token = tokens.parse(url.username) if url.username else None
    proxy_port = query.get("port", [""])[0]
    # isdigit() alone also admits digits like '²' that int() refuses or '٣' that it reads as 3.
    if proxy_port and not (
        proxy_port.isascii() and proxy_port.isdigit() and 0 < int(proxy_port) < 65536
    ):
        raise BadRequest("The join string's proxy port is damaged; copy the whole string again.")
    return JoinString(
        host=url.hostname,
        port=6101 if port is None else port,
        curve_key=unb64(curve, "engine key"),
        pin=unb64(pin, "engine pin"),
        token=token,
        proxy_port=int(proxy_port) if proxy_port else None,
    )
